"""Catalogue runs: --manifest (one job per row), --room auto (CLIP zero-shot), per-row settings."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.inputs.manifest import COLUMNS
from pipeline.outputs.index import write_index
from pipeline.outputs.sinks import LocalSink
from styles import ROOMS

PHOTO = "living-room-02-small.jpg"


def transform(*args) -> tuple[int, dict | None, str]:
    result = CliRunner().invoke(app, ["transform", *map(str, args), "--json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None, result.stderr


def tiny(bundle: Path, out: Path, *extra) -> list:
    return ["--models", bundle, "--out", out, "--size", "128", "--steps", "2", "--retries", "0", *extra]


def catalogue(folder: Path, rooms: Path, rows: list[dict], name: str = "jobs.csv") -> Path:
    """Two photos (a.jpg, sub/b.jpg) and a manifest of `rows` beside them."""
    if not (folder / "a.jpg").exists():
        (folder / "sub").mkdir(parents=True)
        photo = Image.open(rooms / PHOTO).convert("RGB")
        photo.save(folder / "a.jpg")
        photo.transpose(Image.FLIP_LEFT_RIGHT).save(folder / "sub" / "b.jpg")
    path = folder / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path
    columns = [c for c in COLUMNS if any(c in row for row in rows)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def meta(record: dict) -> dict:
    return json.loads(Path(record["outputs"]["metadata"]).read_text())


THREE_ROWS = [
    {"input": "a.jpg", "style": "boho", "room": "bedroom", "seed": "7"},
    {
        "input": "sub/b.jpg",
        "style": "modern",
        "room": "kitchen",
        "prompt": "marble counters",
        "seed": "8",
        "negative_prompt": "clutter",
    },
    {"input": "a.jpg", "style": "boho,scandinavian", "room": "auto", "name": "a-variant"},
]


def test_three_rows_restyled_as_each_row_says(tiny_bundle, rooms, tmp_path):
    manifest = catalogue(tmp_path / "cat", rooms, THREE_ROWS)
    code, summary, stderr = transform("--manifest", manifest, *tiny(tiny_bundle, tmp_path / "out"))
    assert code == 0, stderr
    rows = [(r["key"], r["style"], r["status"]) for r in summary["images"]]
    assert rows == [
        ("a.jpg", "boho", "ok"),
        ("sub/b.jpg", "modern", "ok"),
        ("a.jpg", "boho", "ok"),
        ("a.jpg", "scandinavian", "ok"),
    ]
    first, second, third, fourth = map(meta, summary["images"])
    assert first["seed"] == 7 and first["room"] == "bedroom" and "bohemian bedroom" in first["prompt"]
    assert second["seed"] == 8 and second["room"] == "kitchen"
    assert second["prompt"].endswith(", marble counters") and second["negative_prompt"].endswith(", clutter")
    assert third["room"] in ROOMS and 0 < third["room_probability"] <= 1 and third["room"] in third["prompt"]
    assert fourth["room"] == third["room"]  # classified once per photo, shared by the row's styles
    assert [first["manifest"]["line"], second["manifest"]["line"], third["manifest"]["line"]] == [2, 3, 4]
    names = sorted(str(Path(r["outputs"]["result"]).relative_to(tmp_path / "out")) for r in summary["images"])
    assert names == ["a-variant.boho.png", "a-variant.scandinavian.png", "a.boho.png", "sub/b.modern.png"]


def test_an_edited_row_is_redone_alone(tiny_bundle, rooms, tmp_path):
    manifest = catalogue(tmp_path / "cat", rooms, THREE_ROWS)
    out = tmp_path / "out"
    assert transform("--manifest", manifest, *tiny(tiny_bundle, out))[0] == 0
    edited = [dict(row) for row in THREE_ROWS]
    edited[1]["prompt"] = "walnut counters"
    catalogue(tmp_path / "cat", rooms, edited)
    code, summary, stderr = transform("--manifest", manifest, *tiny(tiny_bundle, out))
    assert code == 0, stderr
    assert [r["status"] for r in summary["images"]] == ["skipped", "ok", "skipped", "skipped"]
    assert meta(summary["images"][1])["prompt"].endswith(", walnut counters")


def test_a_bad_row_fails_alone_with_its_line_under_its_own_style(tiny_bundle, rooms, tmp_path):
    rows = [
        {"input": "a.jpg"},
        {"input": "sub/b.jpg", "seed": "x7", "style": "boho"},
        {"input": "missing.jpg", "style": "boho,industrial"},
        {"input": "a.jpg", "preserve": "lamp"},
        {"input": "a.jpg", "room": "attic", "style": "scandinavian"},
        {"input": "sub/b.jpg", "style": "modern"},
    ]
    manifest = catalogue(tmp_path / "cat", rooms, rows)
    out = tmp_path / "out"
    code, summary, _ = transform("--manifest", manifest, *tiny(tiny_bundle, out))
    assert code == 3
    failed = [(r["error"].split(":")[0], r["style"]) for r in summary["images"] if r["status"] == "failed"]
    assert failed == [
        ("manifest line 3", "boho"),
        ("manifest line 4", "boho"),
        ("manifest line 4", "industrial"),
        ("manifest line 5", "modern"),
        ("manifest line 6", "scandinavian"),
    ]
    errors = {r["error"].split(":")[0]: r["error"] for r in summary["images"] if r["status"] == "failed"}
    assert "seed 'x7'" in errors["manifest line 3"]
    assert "cannot read" in errors["manifest line 4"] and "lamp" in errors["manifest line 5"]
    assert "attic" in errors["manifest line 6"]
    assert sum(r["status"] == "ok" for r in summary["images"]) == 2
    with open(out / "index.csv", encoding="utf-8-sig", newline="") as handle:  # in the manifest's order
        index = [(int(r["manifest_line"]), r["style"], r["status"]) for r in csv.DictReader(handle)]
    assert [line for line, _, _ in index] == [2, 3, 4, 4, 5, 6, 7]
    assert index[1:3] == [(3, "boho", "failed"), (4, "boho", "failed")] and index[-1] == (7, "modern", "ok")


def test_an_unknown_style_in_a_row_is_a_usage_error_before_models_load(tiny_bundle, rooms, tmp_path, monkeypatch):
    manifest = catalogue(tmp_path / "cat", rooms, [{"input": "a.jpg"}, {"input": "a.jpg", "style": "art-deco"}])
    monkeypatch.setattr("pipeline.run.engines.local.load_stack", lambda *a, **k: pytest.fail("models loaded"))
    result = CliRunner().invoke(
        app, ["transform", "--manifest", str(manifest), *map(str, tiny(tiny_bundle, tmp_path / "out"))]
    )
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "line 3: unknown style 'art-deco'" in result.stderr and str(manifest) in result.stderr


def test_a_repeated_row_is_one_job_and_the_run_says_so(tiny_bundle, rooms, tmp_path):
    rows = [{"input": "a.jpg", "style": "boho"}, {"input": "sub/b.jpg"}, {"input": "a.jpg", "style": "boho"}]
    manifest = catalogue(tmp_path / "cat", rooms, rows)
    code, summary, stderr = transform("--manifest", manifest, *tiny(tiny_bundle, tmp_path / "out"))
    assert code == 0, stderr
    assert [(r["key"], r["style"]) for r in summary["images"]] == [("a.jpg", "boho"), ("sub/b.jpg", "modern")]
    assert "manifest line 4 repeats line 2" in stderr


def test_a_rows_styles_are_listed_in_the_order_it_gives(tiny_bundle, rooms, tmp_path):
    """The index, rebuilt from the journal, lists a row's styles as the row orders them (not by name, and not
    by the command's --style order), and keeps that order on a rerun that skips every job."""
    rows = [{"input": "a.jpg", "style": "scandinavian,boho"}, {"input": "sub/b.jpg", "style": "boho,modern"}]
    manifest = catalogue(tmp_path / "cat", rooms, rows)
    out = tmp_path / "out"
    for _ in range(2):
        code, _, stderr = transform("--manifest", manifest, *tiny(tiny_bundle, out, "--style", "modern,boho"))
        assert code == 0, stderr
        assert listed_order(out, manifest) == ROW_ORDER
    # The order is the rows', whatever order the writer threads finished in: the journal reversed, the same index.
    journal = out / ".modomo" / "journal.jsonl"
    journal.write_text("".join(reversed(journal.read_text().splitlines(keepends=True))))
    write_index(LocalSink(out))
    assert listed_order(out, manifest) == ROW_ORDER


ROW_ORDER = [("a.jpg", "scandinavian"), ("a.jpg", "boho"), ("sub/b.jpg", "boho"), ("sub/b.jpg", "modern")]


def listed_order(out: Path, manifest: Path) -> list[tuple[str, str]]:
    listed = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    return [(str(Path(r["input"]).relative_to(manifest.parent)), r["style"]) for r in listed]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("input,colour\na.jpg,red\n", "unknown column 'colour'"),
        ("photo,style\na.jpg,boho\n", "no 'input' column"),
        (None, "cannot read"),
    ],
)
def test_a_bad_manifest_is_a_usage_error_before_models_load(tiny_bundle, rooms, tmp_path, content, reason):
    manifest = tmp_path / "jobs.csv"
    if content is not None:
        manifest.write_text(content)
    result = CliRunner().invoke(
        app, ["transform", "--manifest", str(manifest), *map(str, tiny(tiny_bundle, tmp_path / "out"))]
    )
    assert result.exit_code == 2 and reason in result.stderr and "loading" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_jsonl_manifest_and_shards_cover_every_row_once(tiny_bundle, rooms, tmp_path):
    rows = [{"input": "a.jpg", "seed": i} for i in range(5)] + [{"input": "sub/b.jpg", "style": ["boho"]}]
    manifest = catalogue(tmp_path / "cat", rooms, rows, "jobs.jsonl")
    out, done = tmp_path / "out", []
    for shard in ("0/2", "1/2"):
        code, summary, stderr = transform("--manifest", manifest, *tiny(tiny_bundle, out), "--shard", shard)
        assert code == 0, stderr
        done += [r["id"] for r in summary["images"]]
    assert len(done) == len(set(done)) == 6
    assert len(list(out.glob("a.modern-*.png"))) == 5  # one photo on five rows: five results, none lost


def test_a_manifest_given_as_an_input_is_pointed_to_manifest(tiny_bundle, rooms, tmp_path):
    manifest = catalogue(tmp_path / "cat", rooms, [{"input": "a.jpg"}])
    code, _, stderr = transform(manifest, *tiny(tiny_bundle, tmp_path / "out"))
    assert code == 2 and f"{manifest}: a list of jobs, not a photo; pass it as --manifest {manifest}" in stderr


def test_inputs_and_a_manifest_together_are_refused(tiny_bundle, rooms, tmp_path):
    manifest = catalogue(tmp_path / "cat", rooms, [{"input": "a.jpg"}])
    result = CliRunner().invoke(
        app,
        ["transform", str(rooms / PHOTO), "--manifest", str(manifest), *map(str, tiny(tiny_bundle, tmp_path / "out"))],
    )
    assert result.exit_code == 2 and "not both" in result.stderr


def test_two_rows_with_one_name_are_refused(tiny_bundle, rooms, tmp_path):
    manifest = catalogue(
        tmp_path / "cat", rooms, [{"input": "a.jpg", "name": "x"}, {"input": "sub/b.jpg", "name": "x"}]
    )
    result = CliRunner().invoke(
        app, ["transform", "--manifest", str(manifest), *map(str, tiny(tiny_bundle, tmp_path / "out"))]
    )
    assert result.exit_code == 2 and "lines 2 and 3" in result.stderr


# -- --room auto ----------------------------------------------------------------------------------------------


def test_room_auto_is_the_default_with_clip(tiny_bundle, rooms, tmp_path):
    code, summary, stderr = transform(rooms / PHOTO, *tiny(tiny_bundle, tmp_path / "out", "--style", "boho,modern"))
    assert code == 0, stderr
    assert summary["settings"]["room"] == "auto" and "room" in summary["stages"]
    boho, modern = map(meta, summary["images"])
    assert boho["room"] == modern["room"] in ROOMS and boho["room_probability"] == modern["room_probability"]
    assert f"a bohemian {boho['room']}," in boho["prompt"]
    assert "room" in summary["images"][0]["timings"]


def test_room_auto_needs_clip_and_the_default_warns_once(tiny_bundle, rooms, tmp_path):
    bundle = tmp_path / "no-clip"
    shutil.copytree(tiny_bundle, bundle, ignore=shutil.ignore_patterns("clip"))
    result = CliRunner().invoke(
        app, ["transform", str(rooms / PHOTO), "--room", "auto", *map(str, tiny(bundle, tmp_path / "out"))]
    )
    assert result.exit_code == 2 and "--room auto needs the preset's CLIP" in result.stderr
    code, summary, stderr = transform(rooms / PHOTO, *tiny(bundle, tmp_path / "out"))
    assert code == 0 and summary["settings"]["room"] == "living room"
    assert stderr.count("warning:") == 1 and "living room" in stderr


def test_room_classifier_is_batched_and_sums_to_one(tiny_stack, rooms):
    from pipeline.frames import Frame, Item
    from pipeline.stages.room import RoomClassifier

    model, processor = tiny_stack.clip
    classify = RoomClassifier(model, processor, tiny_stack.device, tiny_stack.dtype)
    photo = Image.open(rooms / PHOTO).convert("RGB")
    images = [photo, photo.transpose(Image.FLIP_LEFT_RIGHT), photo.rotate(90, expand=True)]
    probs = classify.probabilities(images)
    assert len(probs) == 3 and all(sum(p.values()) == pytest.approx(1, abs=1e-4) for p in probs)
    assert list(probs[0]) == list(ROOMS)
    frames = [
        Frame(Item(f"{i}.jpg", None, "."), seed=i, image=im, room=room)
        for i, (im, room) in enumerate(zip(images, ["auto", "bedroom", "auto"], strict=True))
    ]
    classify(frames)
    assert frames[1].room == "bedroom" and frames[0].room in ROOMS and frames[2].room in ROOMS
    assert frames[0].room == max(probs[0], key=probs[0].get)


def test_inputs_outside_the_manifests_folder_stay_inside_the_output(tiny_bundle, rooms, tmp_path):
    (tmp_path / "photos").mkdir()
    shutil.copy(rooms / PHOTO, tmp_path / "photos" / "c.jpg")
    manifest = catalogue(
        tmp_path / "cat",
        rooms,
        [{"input": "../photos/c.jpg"}, {"input": str(tmp_path / "photos" / "c.jpg"), "seed": "3"}],
    )
    code, summary, stderr = transform("--manifest", manifest, *tiny(tiny_bundle, tmp_path / "out"))
    assert code == 0, stderr
    results = [Path(r["outputs"]["result"]) for r in summary["images"]]
    assert all(p.parent == tmp_path / "out" and p.name.startswith("c.modern-") for p in results)
    assert summary["images"][0]["input"] == str(tmp_path / "photos" / "c.jpg")


def test_dry_run_checks_the_whole_run_without_loading_a_model(tiny_bundle, rooms, tmp_path, monkeypatch):
    rows = [
        {"input": "a.jpg", "style": "boho"},
        {"input": "sub/b.jpg", "seed": "x7"},
        {"input": "gone.jpg"},
        {"input": "sub/b.jpg", "style": "modern,industrial"},
    ]
    manifest = catalogue(tmp_path / "cat", rooms, rows)
    out = tmp_path / "out"
    assert transform("--manifest", manifest, *tiny(tiny_bundle, out))[0] == 3  # a real run: two rows fail
    monkeypatch.setattr("pipeline.run.engines.local.load_stack", lambda *a, **k: pytest.fail("models loaded"))
    code, plan, stderr = transform("--manifest", manifest, *tiny(tiny_bundle, out), "--dry-run")
    assert code == 3, stderr  # the problems are reported, one line each
    assert plan["jobs"] == 5 and plan["done"] == 3 and plan["to_do"] == 2
    assert plan["problems"] == [p for p in plan["problems"] if p.startswith("manifest line ")]
    assert [p.split(":")[0] for p in plan["problems"]] == ["manifest line 3", "manifest line 4"]
    problems = [line for line in stderr.splitlines() if line.startswith("problem")]
    assert len(problems) == 2 and "seed 'x7'" in problems[0]
    assert "5 jobs" in stderr and "2 to do, 3 done" in stderr
    clean = catalogue(tmp_path / "cat", rooms, [rows[0], rows[3]], name="clean.csv")
    code, plan, stderr = transform("--manifest", clean, *tiny(tiny_bundle, tmp_path / "fresh"), "--dry-run")
    assert code == 0 and plan["problems"] == [] and plan["to_do"] == 3
    assert "a.jpg -> a.boho.png" in "\n".join(plan["examples"])
    assert not (tmp_path / "fresh" / "index.csv").exists()  # nothing written but the output folder itself
