"""The summary's figures count what they name: results per minute (a job with --variations N makes N), photos as
distinct input files (not jobs or manifest rows), a run with nothing left to do says so instead of zeros; and PNG
results are written at the compression level that pays (benchmarks/README.md), losslessly."""

from __future__ import annotations

import csv
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.inputs.imaging import PNG_COMPRESS_LEVEL, encode

PHOTO = "living-room-02-small.jpg"


def transform(tiny_bundle: Path, source: Path | None, out: Path, *extra) -> tuple[dict, str]:
    args = [str(source)] if source is not None else []
    result = CliRunner().invoke(
        app,
        ["transform", *args, "--models", str(tiny_bundle), "--out", str(out), "--size", "64", "--steps", "2"]
        + ["--retries", "0", "--json", *map(str, extra)],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def two_photos(rooms: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.open(rooms / PHOTO).convert("RGB")
    photo.save(folder / "a.jpg")
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "b.jpg")
    return folder


def zlib_level(png: bytes) -> int:
    """The FLEVEL bits of the first IDAT's zlib header: 0 for levels 0-1, 1 for 2-5, 2 for 6, 3 for 7-9."""
    at = 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        if kind == b"IDAT":
            return png[at + 9] >> 6
        at += 12 + length
    raise AssertionError("no IDAT chunk")


def flevel(level: int) -> int:
    return 0 if level <= 1 else 1 if level <= 5 else 2 if level == 6 else 3


def test_results_per_minute_counts_variations_and_a_done_rerun_says_nothing_to_do(tiny_bundle, rooms, tmp_path):
    inputs, out = two_photos(rooms, tmp_path / "in"), tmp_path / "out"
    summary, stderr = transform(tiny_bundle, inputs, out, "--variations", "2")
    seconds = summary["seconds"]
    assert summary["counts"]["ok"] == 2 and summary["counts"]["results"] == 4 and seconds > 0
    assert summary["results_per_minute"] == pytest.approx(60 * 4 / seconds)
    assert summary["images_per_minute"] == pytest.approx(60 * 2 / seconds)  # jobs per minute, as documented
    assert f"{summary['results_per_minute']:.1f} results/minute" in stderr
    assert "images/minute" not in stderr
    assert "from 2 photos" in stderr
    results = [v["outputs"]["result"] for r in summary["images"] for v in r["variations"]]
    assert len(results) == 4 and all(p.endswith(".png") for p in results)
    for path in results:  # written at the chosen level
        assert zlib_level(Path(path).read_bytes()) == flevel(PNG_COMPRESS_LEVEL), path

    again, stderr = transform(tiny_bundle, inputs, out, "--variations", "2")
    assert again["counts"] == {"ok": 0, "failed": 0, "skipped": 2, "results": 0}
    assert "nothing to do: 2 jobs already done" in stderr
    for zero in ("run time", "model load", "cost ", "0.0 s", "/minute"):
        assert zero not in stderr, (zero, stderr)


def test_manifest_rows_over_the_same_photo_count_it_once(tiny_bundle, rooms, tmp_path):
    folder = two_photos(rooms, tmp_path / "cat")
    manifest = folder / "jobs.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["input", "prompt"])
        writer.writeheader()
        writer.writerows([{"input": "a.jpg"}, {"input": "a.jpg", "prompt": "oak floor"}, {"input": "b.jpg"}])
    summary, stderr = transform(tiny_bundle, None, tmp_path / "out", "--manifest", manifest)
    assert summary["counts"]["ok"] == 3
    assert summary["photos"] == 2
    assert "3 ok, 0 failed, 0 skipped, from 2 photos" in stderr


def test_png_results_are_encoded_at_the_chosen_level_and_stay_lossless(monkeypatch):
    pixels = np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    pixels[:, :64] //= 8  # some structure, so the levels differ in size
    image = Image.fromarray(pixels)
    seen = []
    save = Image.Image.save
    monkeypatch.setattr(
        Image.Image, "save", lambda self, fp, fmt=None, **kw: seen.append(kw) or save(self, fp, fmt, **kw)
    )
    data = encode(image, "png", xmp=b"<x/>")
    assert seen[-1].get("compress_level") == PNG_COMPRESS_LEVEL
    monkeypatch.undo()
    assert zlib_level(data) == flevel(PNG_COMPRESS_LEVEL)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), pixels)


def test_the_chosen_level_is_the_one_benchmarked():
    readme = (Path(__file__).resolve().parents[2] / "benchmarks" / "README.md").read_text()
    assert f"`compress_level={PNG_COMPRESS_LEVEL}`" in readme
