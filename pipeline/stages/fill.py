"""--mode declutter's first fill: LaMa paints over what is taken out, and the refine pass starts from its picture.

LaMa works at no more than `size` px on the long side (512 by default, the size big-lama was trained at; a larger
input gains no detail and costs memory), in multiples of 8, never enlarging a smaller frame. The photo goes down
with Lanczos, the removal mask by area with any covered pixel counted in (so every pixel to take out is filled at the
working size), LaMa's fill comes back to the frame's size with Lanczos, and only the pixels to take out take it:
`frame.start` is the photo byte for byte everywhere else.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.errors import ModomoError
from pipeline.frames import Frame

SIZE = 512  # LaMa's working long side (big-lama's training size)
MULTIPLE = 8  # LaMa's sides are multiples of 8 (spandrel pads otherwise)


def working_size(size: tuple[int, int], limit: int = SIZE) -> tuple[int, int]:
    """(width, height) for LaMa: the frame's aspect ratio with a long side of at most `limit`, each side rounded
    down to a multiple of 8 (never above the frame's own)."""
    width, height = size
    scale = min(1.0, limit / max(width, height))
    return tuple(max(MULTIPLE, int(side * scale) // MULTIPLE * MULTIPLE) for side in (width, height))


def shrink_mask(removal: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The bool removal mask at `size` (width, height): a working pixel is taken out when any part of it is."""
    import cv2

    if removal.shape[::-1] == tuple(size):
        return removal.astype(bool)
    cover = cv2.resize(removal.astype(np.float32), tuple(size), interpolation=cv2.INTER_AREA)
    return cover > 0


class Filler:
    """Sets each frame's `start` (the refine pass's starting picture): the photo, LaMa's fill where `removal` is."""

    def __init__(self, lama, device=None, size: int = SIZE):
        """`lama` is a spandrel MaskedImageModelDescriptor (pipeline.models.lama), used in the precision it was
        loaded in; `device` defaults to its own; `size` is the working long side."""
        if lama is None:
            raise ModomoError(
                "--mode declutter needs LaMa, which the loaded models lack: fetch it with "
                "`modomo models download sd15 --declutter`, or give the bundle a lama/ folder"
            )
        import torch

        self.model = lama
        self.device = torch.device(device) if device is not None else lama.device
        self.dtype = lama.dtype
        self.size = max(MULTIPLE, int(size))
        lama.to(self.device)

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if not frame.ok or frame.image is None or frame.removal is None:
                continue
            removal = np.asarray(frame.removal, dtype=bool)
            if removal.shape != frame.image.size[::-1]:
                width, height = frame.image.size
                frame.fail(f"removal mask of {removal.shape[1]}x{removal.shape[0]} for a {width}x{height} frame")
                continue
            frame.start = self.fill(frame.image.convert("RGB"), removal) if removal.any() else frame.image
        return frames

    def fill(self, image: Image.Image, removal: np.ndarray) -> Image.Image:
        """`image` with LaMa's fill where `removal` is True, exactly `image` elsewhere."""
        size = working_size(image.size, self.size)
        small = image if image.size == size else image.resize(size, Image.LANCZOS)
        filled = self.inpaint(small, shrink_mask(removal, size))
        if filled.size != image.size:
            filled = filled.resize(image.size, Image.LANCZOS)
        out = np.array(image)
        out[removal] = np.asarray(filled)[removal]
        return Image.fromarray(out)

    def inpaint(self, image: Image.Image, mask: np.ndarray) -> Image.Image:
        """One LaMa pass: RGB image and bool mask (True = fill) of one size in, the filled RGB image out."""
        import torch

        pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None]
        with torch.inference_mode():
            tensor = pixels.to(device=self.device, dtype=self.dtype) / 255.0
            hole = torch.from_numpy(mask)[None, None].to(device=self.device, dtype=self.dtype)
            result = self.model(tensor, hole)
            rgb = result[0].float().mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)
        return Image.fromarray(rgb.cpu().numpy())
