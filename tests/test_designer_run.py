"""A designer's run: a folder of phone-style photos (HEIC on its side, Display P3, EXIF-rotated, large)
restyled with --variations 3 --output-size original --contact-sheet --report in one run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import ExifTags, Image
from typer.testing import CliRunner

from modomo_cli.app import app
from tests.inputs.test_phone_photos import p3_profile
from tests.outputs.test_report import Browser, page_jobs

UPRIGHT = {"phone.heic": (180, 240), "p3.jpg": (320, 240), "turned.jpg": (200, 300), "large.jpg": (2400, 1800)}


def oriented(room: Image.Image, size: tuple[int, int], orientation: int) -> tuple[Image.Image, bytes]:
    """The room stored as a camera would, on its side, with the EXIF orientation that turns it upright."""
    upright = room.resize(size)
    stored = upright.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = "Apple", "iPhone 15"
    return stored, exif.tobytes()


@pytest.fixture(scope="module")
def designer_run(tiny_bundle, rooms, tmp_path_factory):
    folder = tmp_path_factory.mktemp("designer")
    photos = folder / "client"
    photos.mkdir()
    room = Image.open(rooms / "living-room-01.jpg").convert("RGB")
    stored, exif = oriented(room, UPRIGHT["phone.heic"], 6)
    stored.save(photos / "phone.heic", "HEIF", exif=exif, quality=90)
    room.resize(UPRIGHT["p3.jpg"]).save(photos / "p3.jpg", quality=92, icc_profile=p3_profile())
    stored, exif = oriented(room, UPRIGHT["turned.jpg"], 8)
    stored.save(photos / "turned.jpg", quality=92, exif=exif)
    room.resize(UPRIGHT["large.jpg"]).save(photos / "large.jpg", quality=90)
    out = folder / "out"
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(photos),
            "--models",
            str(tiny_bundle),
            "--out",
            str(out),
            "--style",
            "boho",
            "--size",
            "128",
            "--steps",
            "2",
            "--retries",
            "0",
            "--variations",
            "3",
            "--output-size",
            "original",
            "--contact-sheet",
            "--report",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_every_result_is_at_its_photos_upright_original_size_three_per_job(designer_run):
    out, summary = designer_run
    assert {r["key"] for r in summary["images"]} == set(UPRIGHT)
    for record in summary["images"]:
        assert record["status"] == "ok" and len(record["variations"]) == 3, record
        for variation in record["variations"]:
            with Image.open(variation["outputs"]["result"]) as made:
                assert made.size == UPRIGHT[record["key"]], (record["key"], made.size)
        meta = json.loads(open(record["outputs"]["metadata"]).read())
        assert meta["output_size"] == list(UPRIGHT[record["key"]]) and meta["size"][0] <= 128
    assert "upscale" in summary["stages"]
    phone = next(r for r in summary["images"] if r["key"] == "phone.heic")
    assert json.loads(open(phone["outputs"]["metadata"]).read())["capture"]["camera"] == "Apple iPhone 15"


def test_the_contact_sheet_shows_each_photo_and_its_three_results(designer_run, tmp_path):
    from pipeline.outputs.contact_sheet import layout

    out, summary = designer_run
    sheet = Image.open(out / "contact-sheet.jpg").convert("RGB")
    assert not (out / "contact-sheet-2.jpg").exists()  # four jobs: one page
    grid = layout(summary["images"])
    for row, record in enumerate(summary["images"]):
        for column, variation in enumerate(record["variations"], start=1):
            thumb = Image.open(variation["outputs"]["thumbnail"]).convert("RGB")
            x0, y0, x1, y1 = grid.cell_box(row, column)
            scale = min((x1 - x0) / thumb.width, (y1 - y0) / thumb.height)  # fitted in the cell, centred
            width, height = round(thumb.width * scale), round(thumb.height * scale)
            left, top = x0 + (x1 - x0 - width) // 2, y0 + (y1 - y0 - height) // 2
            shown = sheet.crop((left + 2, top + 2, left + width - 2, top + height - 2))
            assert np.asarray(shown, dtype=np.float32).std() > 5  # a picture, not the empty page
            expected = np.asarray(thumb.resize((8, 8)), dtype=np.float32)
            assert np.abs(expected - np.asarray(shown.resize((8, 8)), dtype=np.float32)).mean() < 25, (
                record["key"],
                variation["n"],
            )
    sheet.save(tmp_path / "sheet.png")


def test_the_report_shows_the_variations_side_by_side(designer_run, tmp_path):
    out, summary = designer_run
    jobs = page_jobs((out / "report.html").read_text(encoding="utf-8"))
    assert len(jobs) == 4
    browser = Browser(tmp_path / "profile")
    try:
        browser.load((out / "report.html").as_uri())
        thumbs = browser.evaluate("document.querySelectorAll('#grid .card figure:not(.photo) img').length")
        photos = browser.evaluate("document.querySelectorAll('#grid .card figure.photo img').length")
        shot = browser.screenshot(tmp_path / "report.png")
    finally:
        browser.close()
    assert thumbs == 12 and photos == 4
    assert shot.std() > 10
