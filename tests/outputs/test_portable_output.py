"""The output is the deliverable: moved or rerun it keeps working, its views describe the whole output, others can
read it, and `modomo index` refuses what is not an output."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.outputs.contact_sheet import PLACEHOLDER, layout
from pipeline.outputs.sinks import LocalSink
from tests.outputs.test_report import Links

PHOTOS = ("living-room-02-small.jpg", "living-room-01.jpg")


def transform(inputs: Path, out: Path, bundle: Path, *extra: str):
    return CliRunner().invoke(
        app,
        [
            "transform",
            str(inputs),
            "--style",
            "boho",
            "--models",
            str(bundle),
            "--out",
            str(out),
            "--size",
            "128",
            "--steps",
            "1",
            "--retries",
            "0",
            "--report",
            "--contact-sheet",
            "--json",
            *extra,
        ],
    )


def local_links(page: str) -> list[str]:
    """Every src/href in report.html that names a file (not a URL, not the page's own state)."""
    parser = Links()
    parser.feed(page)
    urls = parser.urls
    embedded = re.search(r"<script type=application/json id=jobs>(.*?)</script>", page, re.S)
    for job in json.loads(embedded.group(1)):
        urls += [u for v in job.get("v", []) for u in v[4:6] if u] + ([job["in"]] if job.get("in") else [])
        urls += list(job.get("mp", {}).values())
    return [u for u in urls if not u.startswith(("#", "http:", "https:", "data:"))]


def facts(page: str) -> dict[str, str]:
    """The report's summary facts, name -> value text."""
    return {
        name: html.unescape(re.sub(r"<[^>]+>", "", value))
        for name, value in re.findall(r'<div class="fact">([^<]+)<b>(.*?)</b></div>', page)
    }


def sheet_cells_filled(out: Path, jobs: int) -> bool:
    """Whether every picture cell of contact-sheet.jpg shows a picture, not a grey placeholder."""
    grid = layout([{"variations": [{"n": 1}]}] * jobs)
    pixels = np.asarray(Image.open(out / "contact-sheet.jpg").convert("RGB"), dtype=np.float32)
    for row in range(jobs):
        for column in (0, 1):
            left, top, right, bottom = grid.cell_box(row, column)
            centre = (
                pixels[
                    (top + bottom) // 2 - 10 : (top + bottom) // 2 + 10,
                    (left + right) // 2 - 10 : (left + right) // 2 + 10,
                ]
                .reshape(-1, 3)
                .mean(axis=0)
            )
            if np.abs(centre - PLACEHOLDER).max() < 6:
                return False
    return True


@pytest.fixture(scope="module")
def moved(tiny_bundle, rooms, tmp_path_factory):
    """An output made under umask 022, then moved, then the same command rerun on the moved folder with the
    model loader made to fail: (moved folder, first summary, rerun result, report before, report after)."""
    folder = tmp_path_factory.mktemp("portable")
    inputs = folder / "photos"
    (inputs / "bed").mkdir(parents=True)
    shutil.copy(rooms / PHOTOS[0], inputs / "bed" / "room.jpg")
    shutil.copy(rooms / PHOTOS[1], inputs / "living.jpg")
    previous = os.umask(0o022)
    try:
        first = transform(inputs, folder / "out", tiny_bundle)
    finally:
        os.umask(previous)
    assert first.exit_code == 0, first.output
    before = (folder / "out" / "report.html").read_text()
    shutil.move(folder / "out", folder / "moved")
    with pytest.MonkeyPatch.context() as patch:

        def no_models(*args, **kwargs):
            raise AssertionError("a rerun with nothing to do loaded the models")

        patch.setattr("pipeline.run.engines.local.load_stack", no_models)
        again = transform(inputs, folder / "moved", tiny_bundle)
    return folder / "moved", json.loads(first.stdout), again, before, (folder / "moved" / "report.html").read_text()


def test_a_moved_output_resumes_without_loading_a_model(moved):
    out, first, again, _, _ = moved
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["counts"] == {"ok": 0, "failed": 0, "skipped": 2, "results": 0}
    assert summary["loaded"] is False and summary["journal_reads"] == 1
    for record in summary["images"]:  # paths a caller can open: the output as given, joined
        assert record["outputs"]["result"].startswith(str(out)) and Path(record["outputs"]["result"]).is_file()


def test_every_picture_the_moved_report_and_sheet_reference_exists(moved):
    out, _, _, _, page = moved
    links = local_links(page)
    assert len(links) >= 2 * 5  # per job: result, thumbnail, the photo, depth, edges, masks
    missing = [link for link in links if not (out / link).is_file()]
    assert not missing, missing
    assert sheet_cells_filled(out, 2)


def test_a_rerun_that_skips_everything_keeps_the_totals_and_adds_a_history_line(moved):
    _, _, _, before, after = moved
    assert facts(before)["jobs"] == facts(after)["jobs"] == "2 ok · 0 failed"
    for name in ("results", "mean quality", "at or above threshold"):
        assert facts(before)[name] == facts(after)[name], name
    assert (facts(before)["runs"], facts(after)["runs"]) == ("1", "2")
    text = re.sub(r"<(style|script)\b.*?</\1>|<[^>]+>", " ", after, flags=re.S)  # what a reader sees
    assert "done before" not in text and "skipped" not in text
    assert '"t":"skipped"' not in after and "skipped (" not in after  # no job carries an internal state


def test_index_of_the_moved_output_points_at_files_that_exist(moved):
    out = moved[0]
    result = CliRunner().invoke(app, ["index", str(out), "--json"])
    assert result.exit_code == 0, result.output
    with open(out / "index.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for row in rows:
        for column in ("result", "thumbnail"):
            assert not os.path.isabs(row[column]) and (out / row[column]).is_file(), row[column]


def test_the_journal_keeps_paths_relative_to_the_output(moved):
    out = moved[0]
    lines = [json.loads(line) for line in (out / ".modomo" / "journal.jsonl").read_text().splitlines()]
    paths = [
        p
        for line in lines
        for p in [*line["outputs"].values(), *(q for v in line["variations"] for q in v["outputs"].values())]
    ]
    assert len(paths) >= 2 * 7  # result, thumbnail, metadata, the photo, depth, edges, masks; and per variation
    assert all(not os.path.isabs(p) and "://" not in p and (out / p).is_file() for p in paths), paths


def test_journal_lines_of_earlier_versions_are_placed_in_the_moved_output(moved, tmp_path):
    """Lines written with absolute paths where the output used to be still resume, index and report."""
    out = tmp_path / "copy"
    shutil.copytree(moved[0], out)
    journal = out / ".modomo" / "journal.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    for line in lines:
        line["outputs"] = {k: f"/home/someone/old out/{v}" for k, v in line["outputs"].items()}
        for variation in line["variations"]:
            variation["outputs"] = {k: f"/home/someone/old out/{v}" for k, v in variation["outputs"].items()}
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert CliRunner().invoke(app, ["index", str(out)]).exit_code == 0
    with open(out / "index.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all((out / row["result"]).is_file() for row in rows)
    assert {row["result"] for row in rows} == {"bed/room.boho.png", "living.boho.png"}


def test_results_follow_the_umask(moved):
    out = moved[0]
    for name in (
        "living.boho.png",
        "living.boho.thumb.jpg",
        "living.boho.json",
        "index.csv",
        "report.html",
        "contact-sheet.jpg",
        "bed/room.boho.png",
    ):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_a_sink_writes_with_the_modes_of_its_umask(tmp_path):
    for mask, mode in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        previous = os.umask(mask)
        try:
            written = LocalSink(tmp_path / f"out-{mask:o}").write("a/b.txt", b"x")
        finally:
            os.umask(previous)
        assert stat.S_IMODE(os.stat(written).st_mode) == mode, oct(mask)


@pytest.mark.parametrize("target", ["missing", "plain"])
def test_index_of_a_folder_that_is_no_output_is_refused_and_creates_nothing(tmp_path, target):
    folder = tmp_path / target
    if target == "plain":
        folder.mkdir()
        (folder / "photo.jpg").write_bytes(b"x")
    result = CliRunner().invoke(app, ["index", str(folder)])
    assert result.exit_code == 2
    assert "not a modomo output" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (not folder.exists()) if target == "missing" else sorted(os.listdir(folder)) == ["photo.jpg"]
