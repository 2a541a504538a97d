"""Edges stage: an OpenCV Canny map, thresholds from the style, as the canny ControlNet's input."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from pipeline.frames import Frame


def canny(image: Image.Image, low: int, high: int) -> Image.Image:
    """White edges on black, three channels, the image's size."""
    grey = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, low, high)
    return Image.fromarray(np.stack([edges] * 3, axis=-1), "RGB")


class EdgeDetector:
    """Canny on each frame; cheap, CPU only."""

    def __init__(self, low: int, high: int):
        self.low = low
        self.high = high

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if frame.ok:
                frame.edges = canny(frame.image, self.low, self.high)
        return frames
