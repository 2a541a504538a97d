"""contact-sheet.jpg: a row per job with its input and each variation, labelled, paged, written through the sink.

The pictures are flat colours, so a cell's colour on the sheet says which file was drawn where.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

from pipeline.outputs.contact_sheet import (
    MAX_WIDTH,
    PLACEHOLDER,
    ROWS_PER_PAGE,
    cell_labels,
    font,
    layout,
    sheet_name,
    write_contact_sheet,
)
from pipeline.outputs.sinks import LocalSink

INPUT = (230, 200, 40)
VARIATION_COLOURS = [(200, 40, 40), (40, 160, 60), (40, 70, 200)]
RESULT_ONLY = (190, 60, 190)


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (128, 96)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def job(sink: LocalSink, n: int, variations: int = 3, status: str = "ok") -> dict:
    """Job n with its variations' thumbnails and results written into the sink, best first."""
    record = {
        "key": f"rooms/room-{n:03d}.jpg",
        "style": ("boho", "modern")[n % 2],
        "status": status,
        "error": None,
        "outputs": {},
        "variations": [],
    }
    for v in range(1, variations + 1):
        stem = f"rooms/room-{n:03d}.{record['style']}.v{v}"
        outputs = {
            "result": sink.write(f"{stem}.png", jpeg(RESULT_ONLY)),
            "thumbnail": sink.write(f"{stem}.thumb.jpg", jpeg(VARIATION_COLOURS[v - 1])),
            "metadata": str(sink.path(f"{stem}.json")),
        }
        record["variations"].append(
            {"n": v, "seed": 100 + v, "quality": 0.9 - 0.1 * v + 0.004, "passed": v == 1, "outputs": outputs}
        )
    if record["variations"]:
        record.update(outputs=record["variations"][0]["outputs"], quality=record["variations"][0]["quality"])
    return record


def inputs(record: dict) -> bytes | None:
    return jpeg(INPUT)


def sheet(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def centre(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    left, top, right, bottom = box
    return (
        pixels[(top + bottom) // 2 - 10 : (top + bottom) // 2 + 10, (left + right) // 2 - 10 : (left + right) // 2 + 10]
        .reshape(-1, 3)
        .mean(axis=0)
    )


def close(colour: np.ndarray, expected: tuple[int, int, int], tolerance: int = 24) -> bool:
    return bool(np.abs(colour - np.array(expected)).max() <= tolerance)


def inked(pixels: np.ndarray, box: tuple[int, int, int, int]) -> int:
    """How many pixels in a region are far from the paper: drawn text."""
    left, top, right, bottom = box
    region = pixels[top:bottom, left:right]
    return int((np.abs(region - np.array([246, 244, 240])).max(axis=2) > 80).sum())


@pytest.fixture
def sink(tmp_path) -> LocalSink:
    return LocalSink(tmp_path / "out")


@pytest.mark.parametrize(
    "jobs, pages", [(1, 1), (ROWS_PER_PAGE, 1), (ROWS_PER_PAGE + 1, 2), (2 * ROWS_PER_PAGE + 3, 3)]
)
def test_pages_for_n_jobs(sink, jobs, pages):
    records = [job(sink, n, variations=1) for n in range(jobs)]
    written = write_contact_sheet(records, sink, inputs)
    assert [Path(p).name for p in written] == [sheet_name(p) for p in range(1, pages + 1)]
    assert sorted(p.name for p in sink.root.glob("contact-sheet*.jpg")) == sorted(Path(p).name for p in written)
    grid = layout(records)
    last = jobs - (pages - 1) * ROWS_PER_PAGE
    for number, path in enumerate(written, start=1):
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.width <= MAX_WIDTH
            assert image.height == grid.height(ROWS_PER_PAGE if number < pages else last)
    assert sheet_name(1) == "contact-sheet.jpg" and sheet_name(2) == "contact-sheet-2.jpg"


def test_rows_show_the_input_then_every_variation_with_labels(sink):
    records = [job(sink, n) for n in range(3)]
    [path] = write_contact_sheet(records, sink, inputs)
    pixels, grid = sheet(Path(path)), layout(records)
    assert grid.columns == 4
    for row in range(3):
        assert close(centre(pixels, grid.cell_box(row, 0)), INPUT)
        for column, colour in enumerate(VARIATION_COLOURS, start=1):
            box = grid.cell_box(row, column)
            assert close(centre(pixels, box), colour), (row, column, centre(pixels, box))
            assert inked(pixels, (box[0], box[3], box[2], box[3] + grid.label_h)) > 150  # two lines of labels
        left, top = grid.cell_box(row, 0)[:2]
        assert inked(pixels, (left, top - grid.key_h, grid.width - 60, top)) > 300  # the key above the row
    assert inked(pixels, (60, 60, grid.width - 60, grid.header_h - 24)) > 300  # the page's header


def test_labels_say_style_variation_and_quality():
    """The variation's number only where a job has several: one result is simply the style's result."""
    several = {"style": "boho", "variations": [{"n": 1}, {"n": 2}]}
    assert cell_labels(several, {"n": 2, "quality": 0.8149}) == ["boho · v2", "quality 0.81"]
    assert cell_labels(several, {"n": 1, "quality": None}) == ["boho · v1", "quality n/a"]
    one = {"style": "boho", "variations": [{"n": 1}]}
    assert cell_labels(one, {"n": 1, "quality": 0.8149}) == ["boho", "quality 0.81"]
    assert isinstance(font(22), ImageFont.FreeTypeFont)  # a real TrueType face, not the 11 px bitmap


def test_row_titles_carry_no_internal_state():
    """A sheet is for a client: a job done by an earlier run is just done; a failed one says so."""
    from pipeline.outputs.contact_sheet import key_line

    assert key_line({"key": "bed/room.jpg", "style": "boho", "status": "skipped"}, 1, 1) == "bed/room.jpg  ·  boho"
    assert key_line({"key": "bed/room.jpg", "style": "boho", "status": "ok"}, 1, 1) == "bed/room.jpg  ·  boho"
    assert key_line({"key": "x.jpg", "style": "boho", "status": "failed"}, 0, 0) == "x.jpg  ·  boho  ·  not rendered"


def test_long_titles_shrink_instead_of_being_cut():
    from PIL import ImageDraw

    from pipeline.outputs.contact_sheet import KEY_SIZE, MIN_KEY_SIZE, row_title

    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    title = "catalogue/2026/spring/" * 6 + "living-room-with-a-very-long-name.jpg  ·  scandinavian"
    text, face = row_title(draw, title, 2360)
    assert text == title and MIN_KEY_SIZE <= face.size < KEY_SIZE and draw.textlength(title, font=face) <= 2360
    assert row_title(draw, "room.jpg  ·  boho", 2360)[1].size == KEY_SIZE


def drawn_text(monkeypatch) -> list[tuple[str, int]]:
    """Every text drawn on a sheet, with its face's size."""
    from PIL import ImageDraw

    drawn: list[tuple[str, int]] = []
    original = ImageDraw.ImageDraw.text

    def text(self, xy, content, *args, **kwargs):
        drawn.append((str(content), getattr(kwargs.get("font"), "size", 0)))
        return original(self, xy, content, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", text)
    return drawn


def failed(key: str, error: str) -> dict:
    return {"key": key, "style": "boho", "status": "failed", "error": error, "outputs": {}, "variations": []}


def test_a_failed_job_is_a_card_a_client_reads(sink, monkeypatch):
    drawn = drawn_text(monkeypatch)
    long = "manifest line 7: --preserve toilet, bathtub, stairs, fireplace: the keep mask covers the whole photo"
    records = [job(sink, 0), failed("rooms/broken.jpg", "truncated or corrupt image: broken data stream")]
    records.append(failed("rooms/x.jpg", "room 'moon base': choose auto or one of bedroom, kitchen"))
    records.append(failed("rooms/y.jpg", long))
    [path] = write_contact_sheet(records, sink, inputs)
    pixels, grid = sheet(Path(path)), layout(records)
    assert close(centre(pixels, grid.cell_box(1, 0)), INPUT)  # the input is still shown
    left, top, _, bottom = grid.cell_box(1, grid.first_result)
    card = pixels[top:bottom, left : grid.width - 60].reshape(-1, 3)
    assert (np.abs(card.astype(int) - (200, 198, 194)).sum(axis=1) < 6).mean() > 0.9  # one grey card, no result
    texts = [text for text, _ in drawn]
    cards = [f"{a} {b}" for a, b in zip(texts, texts[1:], strict=False) if a == "not rendered"]
    assert "not rendered (photo unreadable)" in cards and "not rendered (unknown room)" in cards
    assert "not rendered (nothing left to restyle)" in cards
    assert not any("corrupt" in text or "toilet" in text or "…" in text for text in texts)  # no raw, no cut error
    drawn.clear()
    write_contact_sheet([job(sink, 0, variations=1), records[1]], sink, inputs)  # one result column: the card wraps
    assert "(photo unreadable)" in [text for text, _ in drawn] and not any("…" in text for text, _ in drawn)


def test_the_title_is_never_cut_and_every_row_heading_is_one_size(sink, monkeypatch):
    drawn = drawn_text(monkeypatch)
    records = [job(sink, n) for n in range(3)]
    records[1] = {**records[1], "key": "catalogue/2026/spring/" * 3 + "living-room-with-a-long-name.jpg"}
    [path] = write_contact_sheet(records, sink, inputs)
    titles = [(text, size) for text, size in drawn if text.startswith(("rooms/", "catalogue/"))]
    assert len(titles) == 3 and len({size for _, size in titles}) == 1  # the long one shrinks them all
    assert 14 <= titles[0][1] < 28 and not any("…" in text for text, _ in titles)
    header = next(text for text, _ in drawn if "jobs 1–3 of 3" in text)
    assert "…" not in header
    drawn.clear()
    write_contact_sheet([job(sink, 0, variations=1)], sink, inputs)  # a narrow sheet: the header shrinks, never cut
    assert any(text.endswith("jobs 1–1 of 1  ·  page 1 of 1") and "…" not in text for text, _ in drawn)


def test_missing_or_broken_input_gets_a_placeholder(sink):
    records = [job(sink, n, variations=1) for n in range(3)]
    given = {records[0]["key"]: None, records[1]["key"]: b"not an image", records[2]["key"]: jpeg(INPUT)}
    [path] = write_contact_sheet(records, sink, lambda record: given[record["key"]])
    pixels, grid = sheet(Path(path)), layout(records)
    for row in (0, 1):
        box = grid.cell_box(row, 0)
        corner = pixels[box[1] + 4 : box[1] + 14, box[0] + 4 : box[0] + 14].reshape(-1, 3).mean(axis=0)
        assert close(corner, PLACEHOLDER, 8)
        assert (np.abs(pixels[box[1] : box[3], box[0] : box[2]] - np.array(PLACEHOLDER)).max(axis=2) > 80).sum() > 100
        assert close(centre(pixels, grid.cell_box(row, 1)), VARIATION_COLOURS[0])
    assert close(centre(pixels, grid.cell_box(2, 0)), INPUT)


def test_older_records_and_missing_thumbnails_use_what_there_is(sink):
    older = job(sink, 0, variations=1)
    older.pop("variations")  # a record from before variations: its own outputs are the one result
    no_thumb = job(sink, 1, variations=2)
    no_thumb["variations"][1]["outputs"].pop("thumbnail")
    skipped = job(sink, 2, variations=1, status="skipped")
    records = [older, no_thumb, skipped]
    [path] = write_contact_sheet(records, sink, inputs)
    pixels, grid = sheet(Path(path)), layout(records)
    assert close(centre(pixels, grid.cell_box(0, 1)), VARIATION_COLOURS[0])
    assert close(centre(pixels, grid.cell_box(1, 2)), RESULT_ONLY)  # no thumbnail: the result itself
    assert close(centre(pixels, grid.cell_box(2, 1)), VARIATION_COLOURS[0])  # skipped jobs belong on the sheet


def test_sheets_go_through_the_sink(sink):
    class Recording:
        def __init__(self, inner):
            self.inner, self.writes = inner, []

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def write(self, relative, data, content_type=None, metadata=None):
            self.writes.append((relative, content_type, data[:3]))
            return self.inner.write(relative, data, content_type)

    recording = Recording(sink)
    records = [job(sink, n, variations=1) for n in range(ROWS_PER_PAGE + 1)]
    write_contact_sheet(records, recording, inputs)
    assert recording.writes == [
        ("contact-sheet.jpg", "image/jpeg", b"\xff\xd8\xff"),
        ("contact-sheet-2.jpg", "image/jpeg", b"\xff\xd8\xff"),
    ]
    assert write_contact_sheet([], recording, inputs) == []
