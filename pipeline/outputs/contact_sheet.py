"""contact-sheet.jpg: every job of an output on a few pictures that travel by chat or email.

One row per job (an input in one style), in the records' order, so the styles of an input sit on adjacent
rows: the input, then each result of the job best first, labelled with style, variation and quality, and
the input's key above the row, every title of a page at one size. A failed job's row shows a card a client
reads instead of results (`not rendered (photo unreadable)`: outputs.reasons; the full reason is in the report
and the index). A page holds ROWS_PER_PAGE rows; later pages are contact-sheet-2.jpg, contact-sheet-3.jpg, ...

A job styled by a reference image shows it after the input ("reference", or "anchor result" for a room set's
photo styled by its anchor's result), in a column the whole sheet keeps for it. A room set's rows are adjacent
(the records' order), joined by a bar in the margin, and their titles name the set and its anchor.

Every page of a run shares one layout (the widest job decides the columns), so cells line up across pages.

Each page shows generated results, so it is marked as AI-edited like they are (IPTC's digital source type in its
XMP, see provenance), and signed when the run signs: the pictures the page shows are its ingredients.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw

from pipeline.errors import ImageError, ModomoError
from pipeline.inputs import imaging
from pipeline.outputs.fonts import font
from pipeline.outputs.provenance import packet, sheet_description
from pipeline.outputs.reasons import not_rendered
from pipeline.outputs.report import variations

NAME = "contact-sheet"
ROWS_PER_PAGE = 8
MAX_WIDTH = 2480  # A4 at 300 dpi: prints, and stays legible in a chat preview
MARGIN, GAP = 60, 24
CELL_MAX, CELL_MIN = 300, 160  # thumbnails are 256 px on the long side: barely enlarged
HEADER_SIZE, KEY_SIZE, LABEL_SIZE = 34, 28, 22
MIN_KEY_SIZE = 14  # the smallest a row's title shrinks to before it is cut
JPEG_QUALITY = 88
PAPER, INK, MUTED = (246, 244, 240), (34, 33, 31), (111, 106, 98)
PASS, LOW, BAD, PLACEHOLDER, CELL = (47, 138, 91), (183, 121, 31), (179, 57, 47), (200, 198, 194), (232, 228, 221)
ACCENT = (184, 105, 58)  # the report's accent: a room set's bar and a reference's frame
SET_BAR = 8  # px: the bar in the left margin that joins a room set's rows


@dataclass(frozen=True)
class Layout:
    """Where everything goes on a page: the same for every page of one sheet."""

    columns: int  # the input, the reference column when any job has one, and the most results any job shows
    cell_w: int
    cell_h: int
    reference: bool = False  # column 1 holds each job's reference image (empty for a job without one)

    @property
    def first_result(self) -> int:
        """The column of a row's first result: after the input and the reference column."""
        return 2 if self.reference else 1

    @property
    def width(self) -> int:
        return 2 * MARGIN + self.columns * self.cell_w + (self.columns - 1) * GAP

    @property
    def header_h(self) -> int:
        return MARGIN + HEADER_SIZE + 2 * GAP

    @property
    def key_h(self) -> int:
        return KEY_SIZE + 14

    @property
    def label_h(self) -> int:
        return 2 * (LABEL_SIZE + 8)

    @property
    def row_h(self) -> int:
        return self.key_h + self.cell_h + self.label_h + GAP

    def height(self, rows: int) -> int:
        return self.header_h + rows * self.row_h + MARGIN - GAP

    def row_top(self, row: int) -> int:
        return self.header_h + row * self.row_h

    def cell_box(self, row: int, column: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of a cell's picture; its labels sit below it."""
        left = MARGIN + column * (self.cell_w + GAP)
        top = self.row_top(row) + self.key_h
        return left, top, left + self.cell_w, top + self.cell_h


def layout(records: list[dict]) -> Layout:
    """Columns for the widest job, cells as large as CELL_MAX allows within MAX_WIDTH."""
    most = max((len(variations(r)) for r in records), default=1)
    reference = any(reference_preview(r) for r in records)
    fit = (MAX_WIDTH - 2 * MARGIN + GAP) // (CELL_MIN + GAP)  # columns that fit at the smallest cell
    columns = max(2 + reference, min(1 + reference + most, fit))
    cell_w = min(CELL_MAX, (MAX_WIDTH - 2 * MARGIN - (columns - 1) * GAP) // columns)
    return Layout(columns, cell_w, cell_w * 3 // 4, reference)


def reference_preview(record: dict) -> str | None:
    """Where the job's reference image can be read (the run's small copy, or the anchor result's thumbnail)."""
    return (record.get("reference") or {}).get("preview") or None


def is_member(record: dict) -> bool:
    """Whether the job is a room set's photo styled by its anchor's result (not by a reference image)."""
    reference = record.get("reference") or {}
    return bool(reference.get("anchor")) or bool(record.get("set") and not record.get("anchor"))


def reference_labels(record: dict) -> list[str]:
    """The two lines under a reference: what it is, then its scale (or, for a set's photo, the anchor's key)."""
    reference = record.get("reference") or {}
    if is_member(record):
        return ["anchor result", f"from {reference.get('source') or 'the anchor'}"]
    scale = reference.get("scale")
    return ["reference", f"scale {scale:.2f}" if isinstance(scale, (int, float)) else ""]


def sheet_name(page: int) -> str:
    """contact-sheet.jpg for the first page, contact-sheet-2.jpg for the second, ..."""
    return f"{NAME}.jpg" if page == 1 else f"{NAME}-{page}.jpg"


def cell_labels(record: dict, variation: dict) -> list[str]:
    """The two lines under a result: its style (and variation, when the job has several), then its quality."""
    quality = variation.get("quality")
    quality_text = f"quality {quality:.2f}" if isinstance(quality, (int, float)) else "quality n/a"
    style = record.get("style") or "no style"
    several = len(variations(record)) > 1
    return [f"{style} · v{variation.get('n', 1)}" if several else style, quality_text]


def _decode(data: bytes | None, name: str) -> Image.Image | None:
    """Pixels or None: one unreadable picture must not cost the sheet (min_side=1: thumbnails may be tiny)."""
    if not data:
        return None
    try:
        return imaging.decode(data, name, min_side=1)
    except ImageError:
        return None


def load_input(record: dict, read_input: Callable[[dict], bytes | None]) -> Image.Image | None:
    """The job's input, or None when it cannot be read or decoded (the row then shows a placeholder)."""
    try:
        data = read_input(record)
    except (OSError, ModomoError):
        data = None
    return _decode(data, record.get("key") or "input")


def load_result(variation: dict, sink) -> Image.Image | None:
    """A variation's thumbnail (its result when it has none) from the sink, or None."""
    outputs = variation.get("outputs") or {}
    return load_output(outputs.get("thumbnail") or outputs.get("result"), sink)


def load_output(location: str | None, sink) -> Image.Image | None:
    """A picture of the output (a thumbnail, a result, a reference's copy) from the sink, or None."""
    if not location:
        return None
    try:
        data = sink.read(sink.relative(location))
    except (OSError, ModomoError):
        return None
    return _decode(data, location)


def fit_text(draw: ImageDraw.ImageDraw, text: str, face, width: int) -> str:
    """The text, shortened with an ellipsis in the middle until it fits: a key's end is its file name."""
    if draw.textlength(text, font=face) <= width:
        return text
    keep = len(text)
    while keep > 1:
        keep -= max(1, keep // 10)
        short = text[: keep // 2] + "…" + text[len(text) - keep // 2 :]
        if draw.textlength(short, font=face) <= width:
            return short
    return "…"


def wrap(draw: ImageDraw.ImageDraw, text: str, face, width: int, lines: int) -> list[str]:
    """Word-wrapped lines within `width` (a newline in the text starts a line), at most `lines` of them, the last
    one cut with an ellipsis."""
    out: list[str] = []
    for paragraph in str(text).split("\n"):
        out.append("")
        for word in paragraph.split():
            if out[-1] and draw.textlength(f"{out[-1]} {word}", font=face) > width:
                out.append(word)
            else:
                out[-1] = f"{out[-1]} {word}".strip()
    if len(out) > lines:
        out = out[: lines - 1] + [out[lines - 1] + " " + " ".join(out[lines:])]
    return [fit_text(draw, line, face, width) for line in out]


def draw_cell(canvas: Image.Image, box: tuple[int, int, int, int], image: Image.Image | None, missing: str) -> None:
    """The picture fitted (aspect kept) and centred in its box, or a grey box saying what is missing."""
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    if image is None:
        draw.rectangle(box, fill=PLACEHOLDER)
        face = font(LABEL_SIZE)
        text = fit_text(draw, missing, face, width - 16)
        draw.text((left + width // 2, top + height // 2), text, fill=INK, font=face, anchor="mm")
        return
    draw.rectangle(box, fill=CELL)
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    fitted = imaging.resize_to(image, size)
    canvas.paste(fitted, (left + (width - size[0]) // 2, top + (height - size[1]) // 2))


def draw_labels(
    draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], lines: list[str], colours: list[tuple[int, int, int]]
) -> None:
    """Up to two lines under a cell, each cut to the cell's width."""
    face = font(LABEL_SIZE)
    for i, (line, colour) in enumerate(zip(lines, colours, strict=False)):
        y = box[3] + 6 + i * (LABEL_SIZE + 8)
        draw.text((box[0], y), fit_text(draw, line, face, box[2] - box[0]), fill=colour, font=face)


def key_line(record: dict, shown: int, total: int) -> str:
    """The text above a row: its room set, the input's key, its style, and whether it failed or has more results."""
    parts = [record.get("key") or record.get("input") or "?", record.get("style") or "no style"]
    if record.get("set"):
        parts.insert(0, f"Room set {record['set']}" + (" — anchor" if record.get("anchor") else ""))
    if record.get("status") == "failed":
        parts.append("not rendered")
    if total > shown:
        parts.append(f"{total - shown} more not shown")
    return "  ·  ".join(parts)


def fitting_font(draw: ImageDraw.ImageDraw, text: str, width: int, size: int, smallest: int = MIN_KEY_SIZE):
    """The largest bold face, from `size` down to `smallest`, in which the whole text fits `width`: a title
    is shrunk rather than cut (only a text too long even at the smallest size is cut, in the middle)."""
    for step in range(size, smallest - 1, -2):
        if draw.textlength(text, font=font(step, True)) <= width:
            return font(step, True)
    return font(smallest, True)


def row_title(draw: ImageDraw.ImageDraw, line: str, width: int, size: int = KEY_SIZE):
    """A row's title and its face: at the page's title size (`title_size`), cut only past the smallest size."""
    face = fitting_font(draw, line, width, size)
    return fit_text(draw, line, face, width), face


def title_size(draw: ImageDraw.ImageDraw, records: list[dict], grid: Layout) -> int:
    """One size for every row title of a page: the largest in which each fits (a long one shrinks them all)."""
    sizes = []
    for record in records:
        results = variations(record) if record.get("status") != "failed" else []
        line = key_line(record, min(len(results), grid.columns - grid.first_result), len(results))
        sizes.append(getattr(fitting_font(draw, line, grid.width - 2 * MARGIN, KEY_SIZE), "size", KEY_SIZE))
    return min(sizes, default=KEY_SIZE)


def draw_row(
    canvas: Image.Image,
    row: int,
    record: dict,
    grid: Layout,
    sink,
    read_input: Callable[[dict], bytes | None],
    size: int = KEY_SIZE,
) -> None:
    """One job: key above, then the input and each result (or the error) with labels below."""
    draw = ImageDraw.Draw(canvas)
    results = variations(record) if record.get("status") != "failed" else []
    shown = results[: grid.columns - grid.first_result]
    text, face = row_title(draw, key_line(record, len(shown), len(results)), grid.width - 2 * MARGIN, size)
    top = grid.row_top(row) + KEY_SIZE - getattr(face, "size", KEY_SIZE)  # a smaller face keeps the line's foot
    draw.text((MARGIN, top), text, fill=BAD if record.get("status") == "failed" else INK, font=face)
    box = grid.cell_box(row, 0)
    draw_cell(canvas, box, load_input(record, read_input), "input unavailable")
    draw_labels(draw, box, ["input"], [MUTED])
    if grid.reference and reference_preview(record):
        draw_reference(canvas, row, record, grid, sink)
    if record.get("status") == "failed":
        draw_error(canvas, record, row, grid)
        return
    if not shown:
        draw_cell(canvas, grid.cell_box(row, grid.first_result), None, "no result")
    for column, variation in enumerate(shown, start=grid.first_result):
        box = grid.cell_box(row, column)
        draw_cell(canvas, box, load_result(variation, sink), "result unavailable")
        passed = variation.get("passed")
        draw_labels(
            draw, box, cell_labels(record, variation), [INK, PASS if passed else LOW if passed is False else MUTED]
        )


def draw_reference(canvas: Image.Image, row: int, record: dict, grid: Layout, sink) -> None:
    """The image that styled the job, framed in the accent colour so it is not taken for a result."""
    draw = ImageDraw.Draw(canvas)
    box = grid.cell_box(row, 1)
    missing = "anchor result unavailable" if is_member(record) else "reference unavailable"
    draw_cell(canvas, box, load_output(reference_preview(record), sink), missing)
    draw.rectangle(box, outline=ACCENT, width=3)
    draw_labels(draw, box, reference_labels(record), [ACCENT, MUTED])


def draw_set_bars(draw: ImageDraw.ImageDraw, records: list[dict], grid: Layout) -> None:
    """A bar in the left margin along each run of one room set's rows: a set reads as one group, two sets as two."""
    left, start = MARGIN // 2 - SET_BAR // 2, 0
    for row in range(1, len(records) + 1):
        name = records[start].get("set")
        if row < len(records) and records[row].get("set") == name:
            continue
        if name:
            bottom = grid.row_top(row - 1) + grid.row_h - GAP
            draw.rectangle((left, grid.row_top(start), left + SET_BAR - 1, bottom), fill=ACCENT)
        start = row


def draw_error(canvas: Image.Image, record: dict, row: int, grid: Layout) -> None:
    """A failed job's card where its result would be: `not rendered (photo unreadable)`, in words a client reads
    (the full reason is in the report and the index)."""
    left, top, _, bottom = grid.cell_box(row, grid.first_result)
    right, draw, face = grid.width - MARGIN, ImageDraw.Draw(canvas), font(LABEL_SIZE)
    draw.rectangle((left, top, right, bottom), fill=PLACEHOLDER)
    lines = wrap(draw, not_rendered(record.get("error")).replace(" (", "\n("), face, right - left - 16, 3)
    middle = (top + bottom) // 2 - (len(lines) - 1) * (LABEL_SIZE + 8) // 2
    for i, line in enumerate(lines):
        draw.text(((left + right) // 2, middle + i * (LABEL_SIZE + 8)), line, fill=INK, font=face, anchor="mm")


def render_page(
    records: list[dict],
    page: int,
    pages: int,
    first: int,
    total: int,
    grid: Layout,
    sink,
    read_input: Callable[[dict], bytes | None],
) -> Image.Image:
    """One page: a header line, then a row per job."""
    canvas = Image.new("RGB", (grid.width, grid.height(len(records))), PAPER)
    draw = ImageDraw.Draw(canvas)
    count = f"jobs {first + 1}–{first + len(records)} of {total}  ·  page {page} of {pages}"
    header, width = f"modomo contact sheet  ·  {count}", grid.width - 2 * MARGIN
    face = fitting_font(draw, header, width, HEADER_SIZE)
    if draw.textlength(header, font=face) > width:  # never cut: the count is what a reader needs
        header, face = count, fitting_font(draw, count, width, HEADER_SIZE)
    draw.text((MARGIN, MARGIN), header, fill=INK, font=face)
    rule = grid.header_h - GAP
    draw.line((MARGIN, rule, grid.width - MARGIN, rule), fill=PLACEHOLDER, width=2)
    size = title_size(draw, records, grid)
    for row, record in enumerate(records):
        draw_row(canvas, row, record, grid, sink, read_input, size)
    draw_set_bars(draw, records, grid)
    return canvas


class Shown:
    """The sink, read through: what a page read from it (the pictures it shows), in order, once each."""

    def __init__(self, sink):
        self.sink = sink
        self.read_back: dict[str, bytes] = {}

    def __getattr__(self, name):
        return getattr(self.sink, name)

    def read(self, relative: str) -> bytes | None:
        data = self.sink.read(relative)
        if data:
            self.read_back.setdefault(relative, data)
        return data


def write_contact_sheet(
    records: list[dict], sink, read_input: Callable[[dict], bytes | None], signing=None
) -> list[str]:
    """Write contact-sheet.jpg (and -2, -3, ... past ROWS_PER_PAGE jobs) through the sink; their locations.

    `records` are the summary's image records (skipped ones included: their results are on disk). Results
    are read from the sink as thumbnails; `read_input(record)` gives the input's bytes (None when gone), and
    any rendition will do: the run's own `input` output, at working size, is far cheaper than the original.
    Every page is marked as AI-edited; with `signing` (the run's Credentials) it is signed too, the pictures
    it shows as its ingredients. Nothing is written for no records.
    """
    grid = layout(records)
    pages = math.ceil(len(records) / ROWS_PER_PAGE)
    written = []
    for page in range(1, pages + 1):
        first = (page - 1) * ROWS_PER_PAGE
        rows = records[first : first + ROWS_PER_PAGE]
        shown = Shown(sink)
        canvas = render_page(rows, page, pages, first, len(records), grid, shown, read_input)
        buffer = io.BytesIO()
        canvas.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True, xmp=packet(sheet_description(len(rows))))
        data = buffer.getvalue()
        if signing is not None:
            data = sign_page(signing, data, sheet_name(page), shown.read_back, first, len(rows))
        written.append(sink.write(sheet_name(page), data, "image/jpeg"))
    return written


def sign_page(signing, data: bytes, name: str, shown: dict[str, bytes], first: int, jobs: int) -> bytes:
    """A page with its C2PA manifest: the pictures it shows as ingredients; one line if c2pa refuses."""
    from c2pa import C2paError

    from pipeline.outputs.signing import Parent, sign_sheet

    parts = [Parent(picture, relative.rsplit("/", 1)[-1]) for relative, picture in shown.items()]
    about = {"sheet": name, "jobs": f"{first + 1}-{first + jobs}", "shown": [part.title for part in parts]}
    try:
        return sign_sheet(signing, data, name, parts, about)
    except C2paError as exc:
        raise ModomoError(f"cannot sign {name}: {' '.join(str(exc).split())}") from None
