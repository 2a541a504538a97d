"""Edges stage: the canny ControlNet's input (OpenCV Canny, thresholds from the style) and, for a style with
[controls.lines], the lines ControlNet's (straight segments from OpenCV's line segment detector)."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from pipeline.frames import Frame

LINE_BASE = 512  # MLSD maps are drawn 1 px wide at 512 px: wider in proportion on larger images


def canny(image: Image.Image, low: int, high: int) -> Image.Image:
    """White edges on black, three channels, the image's size."""
    grey = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, low, high)
    return Image.fromarray(np.stack([edges] * 3, axis=-1), "RGB")


def line_segments(image: Image.Image, min_length: float) -> np.ndarray:
    """Straight segments (x0, y0, x1, y1) at least `min_length` of the long side long, from OpenCV's line
    segment detector (LSD, von Gioi et al.): no weights, the same kind of map MLSD draws."""
    grey = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    found = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD).detect(grey)[0]
    if found is None:
        return np.zeros((0, 4), np.float32)
    segments = found.reshape(-1, 4)
    lengths = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
    return segments[lengths >= min_length * max(image.size)]


def lines(image: Image.Image, min_length: float) -> Image.Image:
    """White straight segments on black, three channels, the image's size: the lines (MLSD) ControlNet's input."""
    width, height = image.size
    canvas = np.zeros((height, width), np.uint8)
    thickness = max(1, round(max(width, height) / LINE_BASE))
    for x0, y0, x1, y1 in line_segments(image, min_length):
        cv2.line(canvas, (round(x0), round(y0)), (round(x1), round(y1)), 255, thickness, cv2.LINE_AA)
    return Image.fromarray(np.stack([canvas] * 3, axis=-1), "RGB")


def outside(image: Image.Image, removal: np.ndarray | None) -> Image.Image:
    """A control map with nothing drawn where a declutter takes things out: the lines of the room around what is
    removed carry into the hole, the outlines of what is removed do not come back."""
    if removal is None or not removal.any():
        return image
    pixels = np.array(image)
    pixels[removal] = 0
    return Image.fromarray(pixels, image.mode)


class EdgeDetector:
    """Canny on each frame, and the lines map when the style uses it (`min_length` given), blank where a declutter
    takes things out; cheap, CPU only."""

    def __init__(self, low: int, high: int, min_length: float | None = None):
        self.low = low
        self.high = high
        self.min_length = min_length

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if frame.ok:
                frame.edges = canny(frame.image, self.low, self.high)
                if self.min_length is not None:
                    frame.lines = outside(lines(frame.image, self.min_length), frame.changes)
        return frames
