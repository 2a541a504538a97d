"""A room set's later rows may repeat the set's own `style_ref` (a catalogue script writes it on every row): such a
row is the row without it; another reference fails that row alone, at plan time. Tiny models, 128 px."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.options import TransformOptions
from pipeline.run.plan import build_plan

BASE = ["--size", "128", "--steps", "2", "--retries", "0", "--json"]
PLAIN = "input,style_ref,set\nphotos/1.jpg,refs/hero.jpg,lounge\nphotos/2.jpg,,lounge\nphotos/3.jpg,,lounge\n"
REPEATED = (  # the set's reference on every row: by its own name, and by a copy's (the same content)
    "input,style_ref,set\n"
    "photos/1.jpg,refs/hero.jpg,lounge\n"
    "photos/2.jpg,refs/hero.jpg,lounge\n"
    "photos/3.jpg,refs/copy.jpg,lounge\n"
)
OTHER = REPEATED + "photos/4.jpg,refs/other.jpg,lounge\n"  # a fourth photo with a reference of its own


def photo(rooms: Path, target: Path, turn: int) -> Path:
    """A room photo, mirrored and rotated by `turn` so each file is its own picture."""
    image = Image.open(rooms / "living-room-02-small.jpg").convert("RGB")
    image = image.rotate(turn * 7) if turn % 2 == 0 else image.transpose(Image.FLIP_LEFT_RIGHT).rotate(turn * 7)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, quality=92)
    return target


def catalogue(rooms: Path, folder: Path) -> Path:
    """photos/1..4.jpg, refs/hero.jpg, refs/copy.jpg (hero's bytes under another name) and refs/other.jpg."""
    for n in (1, 2, 3, 4):
        photo(rooms, folder / "photos" / f"{n}.jpg", turn=n)
    hero = photo(rooms, folder / "refs" / "hero.jpg", turn=5)
    shutil.copy(hero, folder / "refs" / "copy.jpg")
    photo(rooms, folder / "refs" / "other.jpg", turn=6)
    return folder


def manifest(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def plan_of(path: Path, out: Path):
    return build_plan(TransformOptions(manifest=str(path), out=str(out), models="tiny"))


def transform(bundle: Path, path: Path, out: Path, code: int = 0) -> dict:
    result = CliRunner().invoke(
        app, ["transform", "--manifest", str(path), "--models", str(bundle), "--out", str(out), *BASE]
    )
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_a_repeated_set_reference_makes_the_same_jobs_as_none(rooms, tmp_path):
    """Identity, version, job and settings of every row: the same as with the later rows' cells empty."""
    folder = catalogue(rooms, tmp_path)
    plain = plan_of(manifest(folder, "plain.csv", PLAIN), tmp_path / "out")
    repeated = plan_of(manifest(folder, "repeated.csv", REPEATED), tmp_path / "out")
    assert [i.identity for i in repeated.items] == [i.identity for i in plain.items]
    assert [i.version for i in repeated.items] == [i.version for i in plain.items]
    assert [i.job for i in repeated.items] == [i.job for i in plain.items]
    assert all(i.job.error is None and i.job.reference is None for i in repeated.items[1:])
    assert repeated.items[0].job.reference is not None and "+ref:" in repeated.items[0].version
    assert repeated.result_hashes() == plain.result_hashes()


def test_another_reference_on_a_later_row_fails_that_row_at_plan_time(rooms, tmp_path):
    folder = catalogue(rooms, tmp_path)
    plan = plan_of(manifest(folder, "other.csv", OTHER), tmp_path / "out")  # no model is loaded to build a plan
    errors = [item.job.error for item in plan.items]
    assert errors[:3] == [None, None, None]
    assert errors[3].startswith("manifest line 5: style_ref ") and "other.jpg" in errors[3]
    assert "room set 'lounge'" in errors[3] and "(line 2)" in errors[3]
    none_first = "input,style_ref,set\nphotos/1.jpg,,lounge\nphotos/2.jpg,refs/hero.jpg,lounge\n"
    [anchor, member] = plan_of(manifest(folder, "none.csv", none_first), tmp_path / "out2").items
    assert anchor.job.error is None
    assert member.job.error.startswith("manifest line 3:") and "has no style_ref" in member.job.error


def test_adding_the_repeat_redoes_nothing_and_another_fails_alone(tiny_bundle, rooms, tmp_path):
    """Run the set, add the set's reference to its later rows: nothing to do. A new row with another reference:
    that row fails (exit 3), the rest stays done. The later photos follow the anchor's result all along."""
    folder = catalogue(rooms, tmp_path)
    out = tmp_path / "out"
    first = transform(tiny_bundle, manifest(folder, "plain.csv", PLAIN), out)
    assert [i["status"] for i in first["images"]] == ["ok"] * 3
    again = transform(tiny_bundle, manifest(folder, "repeated.csv", REPEATED), out)
    assert [i["status"] for i in again["images"]] == ["skipped"] * 3
    lines = [json.loads(line) for line in (out / ".modomo" / "journal.jsonl").read_text().splitlines()]
    done = {entry["key"]: entry for entry in lines if entry["status"] == "ok"}
    anchor = done["photos/1.jpg"]
    for key in ("photos/2.jpg", "photos/3.jpg"):
        assert done[key]["reference"]["digest"] == anchor["digest"]  # the anchor's result, not the hero
        assert "+ref:" not in done[key]["version"]
    # Into an output of its own, the repeated manifest makes the very same results.
    fresh = transform(tiny_bundle, folder / "repeated.csv", tmp_path / "fresh")
    assert [(i["key"], i["status"], i["seed"]) for i in fresh["images"]] == [
        (i["key"], "ok", i["seed"]) for i in first["images"]
    ]
    for mine, theirs in zip(fresh["images"], first["images"], strict=True):
        assert Path(mine["outputs"]["result"]).read_bytes() == Path(theirs["outputs"]["result"]).read_bytes()
    third = transform(tiny_bundle, manifest(folder, "other.csv", OTHER), out, code=3)
    status = {i["key"]: (i["status"], i["error"]) for i in third["images"]}
    assert [status[f"photos/{n}.jpg"] for n in (1, 2, 3)] == [("skipped", None)] * 3
    assert status["photos/4.jpg"][0] == "failed" and status["photos/4.jpg"][1].startswith("manifest line 5:")
