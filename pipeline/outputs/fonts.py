"""The face for text drawn into pictures (contact sheet, disclosure label): legible at print size."""

from __future__ import annotations

from functools import cache

from PIL import ImageFont


@cache
def font(size: int, bold: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans from the system, else Pillow's bundled TrueType font, else its bitmap one.

    Labels must stay legible at print size, which the bitmap font (a fixed ~11 px) is not.
    """
    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf", size)
    except OSError:
        pass
    try:
        return ImageFont.load_default(size=size)  # FreeType-rendered from Pillow 10.1
    except (TypeError, OSError):
        return ImageFont.load_default()
