"""Results at the photo's own resolution (--output-size): super-resolution, then the kept pixels at full size.

A run works at its working size (768 px on the long side, say); a client wants the room at the size of the
photo taken. The result is enlarged by the preset's super-resolution network (Real-ESRGAN) and brought to the
exact size by Lanczos, which alone does the job when there is no network or nothing to enlarge. The network
runs over tiles of the result, each with a margin of context it crops away, so the memory a photo needs is
bounded by the tile, not by the photo: Real-ESRGAN x4plus peaks 1.1 GB above baseline per 256 px tile in
fp32 (measured on the CPU for a 4032x3024 output), about half of that in fp16, so a batch of 4 tiles leaves a
16 GB GPU room for the SD stack. Where the keep mask holds the original (--preserve, --mask-dir), the photo's
own full-resolution pixels are put back over the enlarged result: a kept sofa is the photo's sofa, not the
working-size copy enlarged.

This module imports torch only when a network runs, so `output_size` is usable where torch is not.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image

from pipeline.errors import UsageError
from pipeline.frames import Frame
from pipeline.stages.preserve import made_alpha

TILE = 256  # input pixels per tile side (benchmarks/upscale-cpu.json: x4plus peaks 1.1 GB above baseline in fp32)
OVERLAP = 16  # context around a tile, cropped away after: covers what an edge changes in RRDBNet's output
REGION_MARGIN = 8  # working-size px around what a declutter or a staging made, enlarged with it (context, the seam)


def output_size(
    original_size: tuple[int, int], working_size: tuple[int, int], option: str | int | None
) -> tuple[int, int] | None:
    """The results' size on disk for a photo of `original_size`: None for `working` (and whenever the answer is
    the working size itself: nothing to enlarge), the photo's size for `original`, else a long side in pixels
    with the photo's aspect ratio (not the working size's, which is rounded to the model's multiple)."""
    if option is None or option == "working":
        return None
    width, height = (int(v) for v in original_size)
    if option == "original":
        size = (width, height)
    else:
        try:
            long_side = int(option)
        except (TypeError, ValueError):
            raise UsageError(f"--output-size {option!r}: choose working, original, or a long side in pixels") from None
        if long_side < 1:
            raise UsageError(f"--output-size {option!r}: a long side must be a positive number of pixels")
        if width >= height:
            size = (long_side, max(1, int(height * long_side / width + 0.5)))
        else:
            size = (max(1, int(width * long_side / height + 0.5)), long_side)
    return None if size == tuple(working_size) else size


def tile_starts(length: int, tile: int) -> list[int]:
    """Tile origins along one axis: every `tile` pixels, the last one flush with the end (so all tiles have
    one size and batch together; the last overlaps its neighbour instead of being short)."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, tile), length - tile]


def windows(width: int, height: int, tile: int, overlap: int) -> Iterator[tuple[tuple[int, int, int, int], tuple]]:
    """(core, window) boxes (x0, y0, x1, y1) in input pixels: the core is written out, the window is what the
    network sees. Windows have one size, `overlap` px of context around the core, shifted inward at the
    picture's edges, where the picture's own border is the context the whole picture would have had."""
    tw, th = min(tile, width), min(tile, height)
    ww, wh = min(width, tw + 2 * overlap), min(height, th + 2 * overlap)
    for y in tile_starts(height, th):
        for x in tile_starts(width, tw):
            wx = min(max(x - overlap, 0), width - ww)
            wy = min(max(y - overlap, 0), height - wh)
            yield (x, y, x + tw, y + th), (wx, wy, wx + ww, wy + wh)


class Upscaler:
    """Brings each frame's result to its `target_size`: super-resolution over tiles, Lanczos to the exact size,
    then the original photo's own pixels where the keep mask holds them."""

    def __init__(self, model=None, device=None, tile: int = TILE, overlap: int = OVERLAP, batch: int | None = None):
        """`model` is a spandrel ImageModelDescriptor or None (Lanczos only), in the precision it was loaded in;
        `device` defaults to the model's own; `batch` tiles go through the network at once (default: 4 on CUDA,
        1 on the CPU, where a bigger batch only costs memory)."""
        self.model = model
        self.tile = max(8, int(tile))
        self.overlap = max(0, int(overlap))
        self.device = self.dtype = None
        if model is not None:
            import torch

            self.device = torch.device(device) if device is not None else model.device
            self.dtype = model.dtype
            model.to(self.device)
        self.batch = batch or (4 if self.device is not None and self.device.type == "cuda" else 1)

    @property
    def scale(self) -> int:
        return int(self.model.scale) if self.model is not None else 1

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if not frame.ok or frame.result is None or frame.target_size is None:
                continue
            target = tuple(int(v) for v in frame.target_size)
            if target == frame.result.size:
                continue
            alpha = made_alpha(frame)
            if frame.changes is not None and frame.original is not None:  # a declutter, a staging: what it made
                frame.result = self.enlarge_region(frame, target, alpha)
                continue
            enlarged = self.resize(frame.result.convert("RGB"), target)
            if alpha is not None and frame.original is not None:
                enlarged = keep_original(enlarged, frame.original, alpha)
            frame.result = enlarged
        return frames

    def enlarge_region(self, frame: Frame, target: tuple[int, int], alpha: np.ndarray | None) -> Image.Image:
        """A declutter or a staging at a larger size: the photo itself at that size, with only the box around what
        was made enlarged (super-resolution, then Lanczos) and blended in through the seam; nothing else of the result
        is resampled from the working size, and an emptied corner of a 12 MP photo costs a corner's enlargement."""
        photo = frame.original.convert("RGB")
        if photo.size != target:
            photo = photo.resize(target, Image.LANCZOS)
        box = made_box(alpha, REGION_MARGIN) if alpha is not None else None
        if box is None:  # nothing was taken out: the photo
            return photo
        width, height = frame.result.size
        x0, y0, x1, y1 = box
        big = (
            round(x0 * target[0] / width),
            round(y0 * target[1] / height),
            round(x1 * target[0] / width),
            round(y1 * target[1] / height),
        )
        crop = self.resize(frame.result.convert("RGB").crop(box), (big[2] - big[0], big[3] - big[1]))
        canvas = photo.copy()
        canvas.paste(crop, big[:2])
        return keep_original(canvas, photo, alpha)

    def resize(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        """`image` at exactly `size`: through the network when it enlarges, then Lanczos; Lanczos alone when
        there is no network or the target is no larger than the image on either side."""
        width, height = size
        if self.model is not None and (width > image.width or height > image.height):
            image = self.super_resolve(image)
        return image if image.size == (width, height) else image.resize((width, height), Image.LANCZOS)

    def super_resolve(self, image: Image.Image) -> Image.Image:
        """The network's output for the whole image (scale x its size), computed tile by tile; each tile's core
        is cropped out of its window's output, so seams carry no border effect when the overlap covers the
        network's reach. Memory on the device is one batch of tiles, whatever the image's size."""
        import torch

        scale, (width, height) = self.scale, image.size
        pixels = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)  # uint8 C x H x W
        out = np.empty((height * scale, width * scale, 3), dtype=np.uint8)
        boxes = list(windows(width, height, self.tile, self.overlap))
        with torch.inference_mode():
            for start in range(0, len(boxes), self.batch):
                chunk = boxes[start : start + self.batch]
                batch = torch.stack([pixels[:, wy0:wy1, wx0:wx1] for _, (wx0, wy0, wx1, wy1) in chunk])
                batch = batch.to(device=self.device, dtype=self.dtype) / 255.0
                result = self.model(batch)
                for ((x0, y0, x1, y1), (wx0, wy0, _, _)), tensor in zip(chunk, result, strict=True):
                    core = tensor[:, (y0 - wy0) * scale : (y1 - wy0) * scale, (x0 - wx0) * scale : (x1 - wx0) * scale]
                    rgb = core.float().mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)
                    out[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = rgb.cpu().numpy()
        return Image.fromarray(out)


def made_box(alpha: np.ndarray, margin: int) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) around the pixels a result made (`alpha` below 1), `margin` px wider on every side
    (context for the super-resolution's tiles, and room for the seam's enlarged edge); None when it made none."""
    made = np.asarray(alpha) < 1.0
    rows, cols = np.flatnonzero(made.any(axis=1)), np.flatnonzero(made.any(axis=0))
    if rows.size == 0:
        return None
    height, width = made.shape
    return (
        max(int(cols[0]) - margin, 0),
        max(int(rows[0]) - margin, 0),
        min(int(cols[-1]) + 1 + margin, width),
        min(int(rows[-1]) + 1 + margin, height),
    )


def keep_original(result: Image.Image, original: Image.Image, keep: np.ndarray) -> Image.Image:
    """`result` with the original photo's own pixels where `keep` (float H x W at the working size, 1 = the
    original) says so. The mask is enlarged smoothly (bilinear) to the result's size; the photo is resized only
    if its size differs. Only the mask's bounding box is blended, so a small kept object costs little at 12 MP."""
    import cv2

    size = result.size
    alpha = cv2.resize(np.asarray(keep, dtype=np.float32), size, interpolation=cv2.INTER_LINEAR)
    np.clip(alpha, 0.0, 1.0, out=alpha)
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return result
    photo = original.convert("RGB")
    if photo.size != size:
        photo = photo.resize(size, Image.LANCZOS)
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    made = np.array(result)
    box = (slice(y0, y1), slice(x0, x1))
    source = np.asarray(photo.crop((x0, y0, x1, y1)), dtype=np.float32)
    blend = made[box].astype(np.float32)
    blend -= source
    blend *= 1.0 - alpha[box][..., None]
    blend += source  # alpha 1: exactly the photo's pixel (the rest rounds away below half a level)
    made[box] = np.clip(blend.round(), 0, 255).astype(np.uint8)
    return Image.fromarray(made)
