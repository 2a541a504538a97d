"""Depth stage: a transformers depth model, normalised into the depth ControlNet's input image."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.frames import Frame


def normalise_depth(depth: np.ndarray) -> Image.Image:
    """Min-max scale a relative depth map to 0..255 (near = bright, as the ControlNet was trained)."""
    depth = np.nan_to_num(depth.astype(np.float32))
    low, high = float(depth.min()), float(depth.max())
    scaled = (depth - low) / (high - low) if high > low else np.zeros_like(depth)
    grey = (scaled * 255.0).round().astype(np.uint8)
    return Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")


class ImageModel:
    """A transformers vision model with its image processor, on a device in a format: one forward pass per batch."""

    def __init__(self, model, processor, device: torch.device, dtype: torch.dtype):
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype

    def forward(self, images: list[Image.Image]):
        """The model's output for the images, preprocessed by its processor, as one batch."""
        inputs = self.processor(images=images, return_tensors="pt")
        return self.model(pixel_values=inputs["pixel_values"].to(self.device, self.dtype))


class DepthEstimator(ImageModel):
    """Runs the depth model on a batch of frames in one forward pass."""

    @torch.inference_mode()
    def estimate(self, images: list[Image.Image]) -> list[np.ndarray]:
        """Relative depth per image (float, the image's size), in one forward pass."""
        predicted = self.forward(images).predicted_depth  # (B, h, w)
        maps = []
        for image, depth in zip(images, predicted, strict=True):
            width, height = image.size
            resized = F.interpolate(
                depth[None, None].float(), size=(height, width), mode="bicubic", align_corners=False
            )
            maps.append(resized[0, 0].cpu().numpy())
        return maps

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        todo = [f for f in frames if f.ok]
        if todo:
            for frame, depth in zip(todo, self.estimate([f.image for f in todo]), strict=True):
                frame.depth = normalise_depth(depth)
        return frames
