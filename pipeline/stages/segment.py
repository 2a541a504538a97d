"""Segmentation stage: SAM2 turns every detected box into a pixel mask, one prompt call per image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from pipeline.frames import Frame

if TYPE_CHECKING:
    from sam2.sam2_image_predictor import SAM2ImagePredictor


class Segmenter:
    """Outlines each frame's detected objects with a SAM2 image predictor (boxes as prompts)."""

    def __init__(self, predictor: SAM2ImagePredictor):
        self.predictor = predictor

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        """Set `.mask` (bool, H x W) on every object of every ok frame; frames without objects are skipped."""
        with torch.inference_mode():
            for frame in frames:
                if frame.ok and frame.image is not None and frame.objects:
                    self._segment(frame)
        return frames

    def _segment(self, frame: Frame) -> None:
        """Embed the image once and predict all its boxes in one call."""
        image = frame.image if frame.image.mode == "RGB" else frame.image.convert("RGB")
        pixels = np.array(image)  # writable copy: torchvision warns on read-only arrays
        height, width = pixels.shape[:2]
        boxes = np.array([obj.box for obj in frame.objects], dtype=np.float32).reshape(-1, 4)
        self.predictor.set_image(pixels)
        try:
            masks, _, _ = self.predictor.predict(box=boxes, multimask_output=False)
        finally:
            self.predictor.reset_predictor()  # drop the embedding: it is not reused
        # One box gives (1, H, W), several give (N, 1, H, W): bring both to (N, H, W).
        masks = np.asarray(masks).reshape(len(boxes), -1, height, width)[:, 0]
        for obj, mask in zip(frame.objects, masks, strict=True):
            obj.mask = mask > 0.5
