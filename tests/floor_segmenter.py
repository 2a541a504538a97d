"""A tiny SegFormer that knows where a room photo's floor is, for the tests of --mode stage.

The tiny bundle's scene segmentation is random: it calls a room's pixels bags, mirrors and vans, never floor, so a
staging on it finds no floor to stand furniture on. This one is the same tiny architecture, taught in a couple of
seconds (Adam, a hundred-odd steps) the layout of the test rooms as seen at the working size: ceiling along the top,
wall, a window on the left, floor below 55 % of the height. It is saved with `save_pretrained` beside the tiny
bundle's other models (linked, not copied) and loaded back through the code that loads real weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FLOOR_FROM = 0.55  # the floor starts at this share of the height
CEILING_TO = 0.12
WINDOW = (0.08, 0.2, 0.3, 0.5)  # x0, y0, x1, y1 as shares of the width and height


def layout(height: int, width: int) -> np.ndarray:
    """The ADE20K label map the model is taught, at one size."""
    from pipeline.models.ade20k import ade20k_labels

    labels = ade20k_labels()
    scene = np.full((height, width), labels.index("wall"))
    scene[round(FLOOR_FROM * height) :] = labels.index("floor")
    scene[: round(CEILING_TO * height)] = labels.index("ceiling")
    x0, y0, x1, y1 = WINDOW
    scene[round(y0 * height) : round(y1 * height), round(x0 * width) : round(x1 * width)] = labels.index("windowpane")
    return scene


def fit(folder: Path, photos: list, steps: int = 120, seed: int = 5) -> Path:
    """The tiny SegFormer taught `layout` on the photos (PIL images) and their mirror images, saved in `folder`."""
    import torch
    from PIL import Image

    from pipeline.models import segformer

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model, processor = segformer.build_in_memory("tiny", seed=seed)
        pictures = [p.convert("RGB") for p in photos]
        pictures += [p.transpose(Image.FLIP_LEFT_RIGHT) for p in pictures]
        pixels = processor(images=pictures, return_tensors="pt")["pixel_values"]
        side = pixels.shape[-1] // 4  # SegFormer's logits are at a quarter of its input
        target = torch.from_numpy(np.stack([layout(side, side)] * len(pictures))).long()
        optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(pixel_values=pixels).logits, target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def floor_bundle(tiny: Path, folder: Path, photos: list) -> Path:
    """The tiny bundle with this scene segmentation in place of its random one (every other part linked)."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in tiny.iterdir():
        if entry.name != "segmentation":
            (folder / entry.name).symlink_to(entry)
    fit(folder / "segmentation", photos)
    return folder
