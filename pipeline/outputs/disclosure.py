"""`--disclose TEXT`: a small, legible label in a corner of every result and thumbnail, for the rules that ask
an altered listing photo to say so (California's AB 723, for one). Light text on a dark, slightly
transparent box: readable on light and dark photos alike. With --publish-originals the text may name the
unaltered original (`{original_url}`, `{original}`), and `--disclose-qr` sets a QR code of its address above the
label, large enough to scan from the thumbnail too."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.config import ORIGINAL, ORIGINAL_URL
from pipeline.outputs.fonts import font as face_of

SHARE = 0.032  # the text's height as a share of the picture's longer side
SMALLEST = 9  # px: a thumbnail's label stays readable...
TINIEST, WIDEST = 5, 0.6  # ...unless the picture is too narrow for it: then smaller, within 60 % of the width
MARGIN, PAD = 0.02, 0.35  # the box's distance from the corner (share of the long side), padding (share of text)
QR_MODULE, QR_SMALLEST, QR_QUIET = 0.004, 2, 3  # a QR module's side (share of the long side, at least 2 px); the
# light border around the code, in modules (a reader needs a quiet zone to find it)


def with_links(text: str | None, original: str | None, original_url: str | None) -> str | None:
    """The label with `{original}` (the published original's path in the output) and `{original_url}` (its
    address) filled in; other braces are the user's own text."""
    if not text:
        return text
    return text.replace(ORIGINAL_URL, original_url or "").replace(ORIGINAL, original or "")


def qr_code(data: str, long_side: int) -> Image.Image:
    """A QR code (segno, error correction M) of `data`, its modules sized for a picture of `long_side`, with its
    quiet zone: dark on white, L mode."""
    import segno

    scale = max(QR_SMALLEST, round(long_side * QR_MODULE))
    rows = segno.make(data, error="m", micro=False).matrix_iter(scale=scale, border=QR_QUIET)
    return Image.fromarray(np.array([[0 if dark else 255 for dark in row] for row in rows], dtype=np.uint8), "L")


def label_box(size: tuple[int, int], text: str) -> tuple[tuple[int, int, int, int], ImageFont.ImageFont]:
    """Where the label goes (bottom-right corner) and its face, for a picture of `size`: the text at SHARE of
    the long side, smaller if it would take more than WIDEST of the width, never under TINIEST."""
    width, height = size
    long_side = max(width, height)
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    for points in range(max(SMALLEST, round(long_side * SHARE)), TINIEST - 1, -1):
        font = face_of(points, bold=True)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(2, round((bottom - top) * PAD))
        if right - left + 2 * pad <= width * WIDEST:
            break
    margin = max(2, round(long_side * MARGIN))
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x1, y1 = width - margin, height - margin
    return (x1 - box_w, y1 - box_h, x1, y1), font


def disclose(image: Image.Image, text: str | None, qr: str | None = None) -> Image.Image:
    """The picture with `text` drawn in its bottom-right corner (the picture itself when there is no text), and
    with `qr`, a QR code of it right above the label."""
    if not text:
        return image
    (x0, y0, x1, y1), font = label_box(image.size, text)
    if qr:
        code = qr_code(qr, max(image.size))
        image = image.convert("RGB")
        image.paste(code.convert("RGB"), (x1 - code.width, max(0, y0 - code.height - max(2, (y1 - y0) // 4))))
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=max(2, (y1 - y0) // 4), fill=(20, 20, 20, 190))
    draw.text(((x0 + x1) / 2, (y0 + y1) / 2), text, font=font, fill=(255, 255, 255, 255), anchor="mm")
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert(image.mode if image.mode != "P" else "RGB")
