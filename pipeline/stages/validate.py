"""Validate stage: a first quality score in [0, 1], from a sanity part and a structure part.

- sanity: 0 for a frame that is near-uniform (a black frame, which is also how NaN latents
  decode, or a blank one), or blown out;
  rises to 1 as the result gains ordinary contrast.
- structure: how well the result keeps the input's layout: the agreement of edge
  *orientations* at a coarse scale (grey, 64 px on the long side), each pixel weighted by
  its edge strength in both images: sum(m_a m_b cos 2(t_a - t_b)) / sqrt(sum m_a^2 sum m_b^2).
  Doubling the angle makes a dark-to-light edge agree with a light-to-dark one, so recolouring
  and relighting do not count, while moved walls, mirrored or shifted layouts do. Below 0 is 0.

score = sanity x structure.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from pipeline.frames import Frame

COARSE = 64


def _orientation_field(image: Image.Image) -> np.ndarray:
    """Coarse gradients as complex numbers m * exp(2i theta): strength with sign-free orientation."""
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    height, width = grey.shape
    scale = COARSE / max(height, width)
    small = cv2.resize(grey, (max(8, round(width * scale)), max(8, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    z = (gx + 1j * gy).astype(np.complex64)
    magnitude = np.abs(z)
    return np.where(magnitude > 1e-6, z * z / np.maximum(magnitude, 1e-6), 0)


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
    """Edge-orientation agreement of the two images at a coarse scale, in [0, 1]."""
    if after.size != before.size:
        after = after.resize(before.size, Image.BICUBIC)
    a, b = _orientation_field(before), _orientation_field(after)
    denom = float(np.sqrt((np.abs(a) ** 2).sum() * (np.abs(b) ** 2).sum()))
    if denom < 1e-12:
        return 0.0
    return float(np.clip(np.real((a * np.conj(b)).sum()) / denom, 0.0, 1.0))


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
