"""Scene parsing: an ADE20K label per pixel, so a room's fixed parts (windows, doors, fireplace, stairs) can be kept.

COCO's detector sees furniture, not the room itself; a SegFormer trained on ADE20K labels walls, windows and
stairs. The user names architecture in plain words (`window`, `stairs`, or `architecture` for the usual four);
`pipeline.stages.parts` names the parts and turns a frame's label map into the bool mask of those parts.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.frames import Frame


class SceneSegmenter:
    """Runs a semantic-segmentation model on a batch of frames in one forward pass; sets each `frame.scene`."""

    def __init__(self, model, processor, device: torch.device, dtype: torch.dtype):
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype

    @torch.inference_mode()
    def segment(self, images: list[Image.Image]) -> list[np.ndarray]:
        """An ADE20K label map per image (uint8, the image's own height x width), in one forward pass."""
        inputs = self.processor(images=images, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        logits = self.model(pixel_values=pixels).logits  # (B, classes, h/4, w/4)
        maps = []
        for image, scores in zip(images, logits, strict=True):
            width, height = image.size
            resized = F.interpolate(scores[None].float(), size=(height, width), mode="bilinear", align_corners=False)
            maps.append(resized[0].argmax(dim=0).to(torch.uint8).cpu().numpy())
        return maps

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        todo = [f for f in frames if f.ok and f.image is not None]
        if todo:
            for frame, scene in zip(todo, self.segment([f.image for f in todo]), strict=True):
                frame.scene = scene
        return frames
