"""The object preview: each detected object's mask tinted over the photo, with its box and label."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.frames import DetectedObject


def colour(index: int) -> tuple[int, int, int]:
    """Distinct, stable colours: golden-ratio hue steps."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_objects(image: Image.Image, objects: list[DetectedObject], alpha: float = 0.45) -> Image.Image:
    """The photo with masks blended in, boxes outlined and labels written (Pillow's built-in font)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    for i, obj in enumerate(objects):
        if obj.mask is not None and obj.mask.shape == pixels.shape[:2]:
            pixels[obj.mask] = pixels[obj.mask] * (1 - alpha) + np.array(colour(i), np.float32) * alpha
    out = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for i, obj in enumerate(objects):
        x0, y0, x1, y1 = obj.box
        draw.rectangle([x0, y0, x1, y1], outline=colour(i), width=2)
        text = f"{obj.label} {obj.confidence:.2f}"
        left, top, right, bottom = draw.textbbox((x0 + 3, y0 + 2), text, font=font)
        draw.rectangle([left - 2, top - 1, right + 2, bottom + 1], fill=(0, 0, 0))
        draw.text((x0 + 3, y0 + 2), text, fill=colour(i), font=font)
    return out
