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
from pipeline.stages.depth import ImageModel


class SceneSegmenter(ImageModel):
    """Runs a semantic-segmentation model on a batch of frames in one forward pass; sets each `frame.scene`."""

    @torch.inference_mode()
    def segment(self, images: list[Image.Image]) -> list[np.ndarray]:
        """An ADE20K label map per image (uint8, the image's own height x width), in one forward pass."""
        logits = self.forward(images).logits  # (B, classes, h/4, w/4)
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
