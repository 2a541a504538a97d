"""Small frictions: the progress line names the photo and style in hand and fits 80 columns with its ETA, an
odd --size says once what it became, the summary counts jobs and photos, and control maps shared by a photo's
styles are written once."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from modomo_cli.app import app
from modomo_cli.render import RunProgress, in_hand
from pipeline.frames import Frame, Item

PHOTO = "living-room-02-small.jpg"


def frame(key: str, style: str | None, seed: int = 1) -> Frame:
    return Frame(item=Item(key, Path("/in") / key, Path("/in")), seed=seed, style=style)


def test_the_progress_line_names_each_photo_once_with_its_style():
    assert (
        in_hand([frame("living-room-01.jpg", "boho"), frame("living-room-01.jpg", "boho", 2)])
        == "living-room-01.jpg (boho)"
    )
    assert in_hand([frame("a.jpg", "boho"), frame("b.jpg", "boho"), frame("c.jpg", "boho")]) == "a.jpg (boho) +2"
    assert in_hand([frame("a.jpg", None), frame("b.jpg", None)]) == "a.jpg +1"  # shared stages: no style yet


def test_the_progress_line_fits_80_columns_with_a_readable_eta():
    out = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    bar = RunProgress(True, out)
    bar("start", total=12)
    bar(
        "stage",
        frames=[frame("a-rather-long-file-name-for-a-living-room-photo.jpg", "scandinavian")] * 2,
        stage="generate",
    )
    shown = Console(file=io.StringIO(), width=80, color_system=None)
    with shown.capture() as capture:
        shown.print(bar.progress.make_tasks_table(bar.progress.tasks))
    lines = capture.get().rstrip("\n").splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 80, lines
    assert "0/12 eta" in lines[0] and "generate: a-rather-long" in lines[0]


def run(tiny_bundle, rooms, tmp_path, *extra) -> tuple[dict, str]:
    inputs = tmp_path / "in"
    inputs.mkdir(exist_ok=True)
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(rooms / PHOTO, inputs / name)
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(inputs),
            "--models",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "out"),
            "--steps",
            "1",
            "--retries",
            "0",
            "--json",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_an_odd_size_says_once_what_it_became_and_the_summary_counts_jobs_and_photos(tiny_bundle, rooms, tmp_path):
    summary, stderr = run(tiny_bundle, rooms, tmp_path, "--size", "130", "--style", "boho,modern")
    said = [line for line in stderr.splitlines() if "--size 130" in line]
    assert len(said) == 1 and "128 px" in said[0]
    assert summary["settings"]["size"] == 128
    assert summary["photos"] == 2
    assert "jobs        4 ok, 0 failed, 0 skipped, from 2 photos" in stderr


def test_maps_a_photos_styles_share_are_written_once(tiny_bundle, rooms, tmp_path):
    summary, _ = run(
        tiny_bundle, rooms, tmp_path, "--size", "128", "--style", "boho,modern,industrial", "--save-controls"
    )
    out = tmp_path / "out"
    for suffix in ("input.jpg", "depth.png", "masks.jpg"):
        assert len(list(out.glob(f"*.{suffix}"))) == 2, suffix  # one per photo
    assert len(list(out.glob("*.edges.png"))) == 6  # the edge map is each style's own
    for record in summary["images"]:
        assert Path(record["outputs"]["depth"]).is_file() and Path(record["outputs"]["edges"]).is_file()
        assert record["outputs"]["edges"].endswith(f".{record['style']}.edges.png")
    by_photo = {}
    for record in summary["images"]:
        by_photo.setdefault(record["key"], set()).add(record["outputs"]["input"])
    assert all(len(locations) == 1 for locations in by_photo.values())


def test_ctrl_c_while_the_models_load_is_one_line_and_exit_130(tiny_bundle, rooms, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("pipeline.run.engines.local.load_stack", interrupted)
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(rooms / PHOTO, inputs / "a.jpg")
    result = CliRunner().invoke(
        app, ["transform", str(inputs), "--models", str(tiny_bundle), "--out", str(tmp_path / "out"), "--size", "128"]
    )
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines() == ["error: interrupted while loading the models; nothing was written"]
