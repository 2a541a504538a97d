"""A catalogue that mixes restyle, declutter and stage rows (the manifest's `mode` and `remove` columns): each row's
job under its own mode and name, the same under shards and Ray, and a rerun that redoes nothing. The runs take the
tiny bundle whose scene segmentation knows the test room's floor (tests/floor_segmenter.py), where a staging
stands its furniture."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.run.test_scale_out import PHOTO, invoke, journal, tiny

ROWS = [
    ("a.jpg", "boho", "", ""),  # a restyle
    ("b.jpg", "", "declutter", ""),  # emptied
    ("c.jpg", "", "", "tv,clutter"),  # `remove` alone implies declutter
    ("a.jpg", "", "declutter", ""),  # the restyled photo emptied too: another job
    ("b.jpg", "scandinavian", "stage", ""),  # the emptied photo furnished too: another job
]


def catalogue(folder: Path, rooms: Path) -> Path:
    folder.mkdir()
    photo = Image.open(rooms / PHOTO).convert("RGB")
    for i, name in enumerate(("a.jpg", "b.jpg", "c.jpg")):
        (photo.transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else photo).save(folder / name)
    lines = ["input,style,mode,remove", *(",".join(f'"{c}"' if "," in c else c for c in row) for row in ROWS)]
    (folder / "jobs.csv").write_text("\n".join(lines) + "\n")
    return folder / "jobs.csv"


def results(summary: dict) -> list[tuple[str, str, str]]:
    return sorted((r["key"], r["style"], r["status"]) for r in summary["images"])


EXPECTED = [
    ("a.jpg", "boho", "ok"),
    ("a.jpg", "empty", "ok"),
    ("b.jpg", "empty", "ok"),
    ("b.jpg", "scandinavian", "ok"),
    ("c.jpg", "empty", "ok"),
]


@pytest.mark.parametrize("engine", ["shards", "ray"])
def test_a_mixed_catalogue_runs_each_row_in_its_mode_and_resumes(engine, floor_bundle, rooms, tmp_path, request):
    manifest = catalogue(tmp_path / "in", rooms)
    out = tmp_path / "out"
    base = ["--manifest", manifest, *tiny(floor_bundle, out, "--room", "living room")]
    if engine == "ray":
        request.getfixturevalue("ray_local")
        runs = [[*base, "--engine", "ray", "--actors", "1"]]  # the rows' modes under Ray (two actors: test_scale_out)
    else:
        runs = [[*base, "--shard", "0/2"], [*base, "--shard", "1/2"]]
    made = []
    for argv in runs:
        code, summary, stderr = invoke(*argv)
        assert code == 0, stderr
        made += [r for r in summary["images"] if r["status"] == "ok"]
    assert sorted((r["key"], r["style"], r["status"]) for r in made) == EXPECTED
    names = sorted(p.name for p in out.glob("*.png") if ".thumb" not in p.name)
    # the photo on two rows: each row's name carries its row's hash (as for two restyle rows of one photo)
    assert [re.sub(r"-[0-9a-f]{8}\.png$", "-ROW.png", n) for n in names] == [
        "a.boho-ROW.png", "a.empty-ROW.png", "b.empty-ROW.png", "b.scandinavian-ROW.png", "c.empty.png",
    ]  # fmt: skip
    meta = {name.split("-")[0].removesuffix(".png"): json.loads((out / name.replace(".png", ".json")).read_text())
            for name in names}  # fmt: skip
    meta = {f"{k}.png": v for k, v in meta.items()}
    assert "mode" not in meta["a.boho.png"]["settings"] and "declutter" not in meta["a.boho.png"]
    assert meta["b.empty.png"]["declutter"]["remove"] == "movable"
    assert meta["c.empty.png"]["declutter"]["remove"] == sorted(meta["c.empty.png"]["declutter"]["remove"])
    assert "tv" in meta["c.empty.png"]["declutter"]["remove"] and "bottle" in meta["c.empty.png"]["declutter"]["remove"]
    row = meta["c.empty.png"]["declutter"]  # the row's own `remove`: nothing else taken out
    assert set(row["removed"]) <= set(row["remove"]) and meta["b.empty.png"]["declutter"]["removed"]
    staged = meta["b.scandinavian.png"]
    assert staged["settings"]["mode"] == "stage" and staged["stage"]["region_area"] > 0.1
    assert {e["style"]: e.get("mode") for e in journal(out) if e["key"] == "b.jpg"} == {
        "empty": "declutter",
        "scandinavian": "stage",
    }
    entries = journal(out)
    assert len({e["settings"] for e in entries if e["style"] == "empty"}) == 1  # one recipe; rows differ by identity
    for argv in runs:  # again: every job found done, under its own mode
        code, summary, stderr = invoke(*argv)
        assert code == 0, stderr
        assert {r["status"] for r in summary["images"]} == {"skipped"}
    assert len(journal(out)) == len(entries)


def test_a_dry_run_lists_what_each_declutter_asks_to_take_out(tiny_bundle, rooms, tmp_path):
    manifest = catalogue(tmp_path / "in", rooms)
    code, found, stderr = invoke("--manifest", manifest, *tiny(tiny_bundle, tmp_path / "out"), "--dry-run")
    assert code == 0, stderr
    assert found["styles"] == ["modern", "boho", "empty", "scandinavian"]
    assert found["modes"] == {"modern": "restyle", "boho": "restyle", "empty": "declutter", "scandinavian": "stage"}
    assert found["removes"] == ["everything movable (2 jobs)", "clutter, tv (1 job)"]


@pytest.mark.parametrize(
    "row,words",
    [
        ('a.jpg,boho,declutter,""', "manifest line 2: a declutter row leaves style blank"),
        ("a.jpg,,restyle,tv", "manifest line 2: remove takes things out of the room"),
        ("a.jpg,,,unicorn", "manifest line 2: remove 'unicorn'"),
    ],
)
def test_a_bad_declutter_row_fails_alone_in_one_line(tiny_bundle, rooms, tmp_path, row, words):
    manifest = catalogue(tmp_path / "in", rooms)
    manifest.write_text(f"input,style,mode,remove\n{row}\nb.jpg,,declutter,\n")
    code, summary, stderr = invoke("--manifest", manifest, *tiny(tiny_bundle, tmp_path / "out"))
    assert code == 3, stderr  # some jobs failed
    failed = [r for r in summary["images"] if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"].startswith(words), failed[0]["error"]
    assert [r["status"] for r in summary["images"] if r["key"] == "b.jpg"] == ["ok"]


def test_an_unknown_mode_refuses_the_manifest(tiny_bundle, rooms, tmp_path):
    manifest = catalogue(tmp_path / "in", rooms)
    manifest.write_text("input,mode\na.jpg,tidy\n")
    code, _, stderr = invoke("--manifest", manifest, *tiny(tiny_bundle, tmp_path / "out"))
    assert code == 2 and "unknown mode 'tidy'" in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_one_style_restyled_and_staged_in_one_run_is_one_line(tiny_bundle, rooms, tmp_path):
    """Results are named by their style (room.boho.png): one style as a restyle and as a staging in one run is
    refused before any model loads."""
    manifest = catalogue(tmp_path / "in", rooms)
    manifest.write_text("input,style,mode\na.jpg,boho,\nb.jpg,boho,stage\n")
    code, _, stderr = invoke("--manifest", manifest, *tiny(tiny_bundle, tmp_path / "out"))
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "style 'boho' is asked for both as a restyle and as a stage in one run" in stderr
