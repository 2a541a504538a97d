"""Validate stage: a first quality score in [0, 1], from a sanity part and a structure part.

- sanity: 0 for a frame that is NaN, near-uniform (a black or blank frame), or blown out;
  rises to 1 as the result gains ordinary contrast.
- structure: how well the result keeps the input's layout: the correlation of coarse
  gradient-magnitude maps (grey, blurred, 64 px on the long side), so colour and fine
  texture changes do not count, but moved walls and furniture do. Negative correlation is 0.

score = sanity x structure.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from pipeline.frames import Frame

COARSE = 64


def _coarse_gradients(image: Image.Image) -> np.ndarray:
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    height, width = grey.shape
    scale = COARSE / max(height, width)
    small = cv2.resize(grey, (max(8, round(width * scale)), max(8, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (3, 3), 0)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    return np.hypot(gx, gy)


def sanity(result: Image.Image) -> float:
    """1 for an ordinary photo, 0 for NaN, near-uniform, black or blown-out frames."""
    pixels = np.asarray(result.convert("RGB"), dtype=np.float32) / 255.0
    if not np.isfinite(pixels).all():
        return 0.0
    mean, std = float(pixels.mean()), float(pixels.std())
    if std < 0.01 or mean < 0.02 or mean > 0.98:
        return 0.0
    clipped = float(((pixels < 0.005) | (pixels > 0.995)).mean())
    return float(np.clip(std / 0.08, 0.0, 1.0) * np.clip(1.0 - max(0.0, clipped - 0.25) * 2, 0.0, 1.0))


def structure(before: Image.Image, after: Image.Image) -> float:
    """Correlation of coarse gradient maps, clipped to [0, 1]."""
    a = _coarse_gradients(before)
    b = _coarse_gradients(after.resize(before.size, Image.BICUBIC) if after.size != before.size else after)
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if denom < 1e-12:
        return 0.0
    return float(np.clip((a * b).sum() / denom, 0.0, 1.0))


def quality(before: Image.Image, after: Image.Image) -> tuple[float, dict[str, float]]:
    """The score and its named parts."""
    parts = {"sanity": round(sanity(after), 4), "structure": round(structure(before, after), 4)}
    return round(parts["sanity"] * parts["structure"], 4), parts


class Validator:
    """Scores each rendered frame against its input."""

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if frame.ok and frame.result is not None:
                frame.quality, frame.quality_parts = quality(frame.image, frame.result)
        return frames
