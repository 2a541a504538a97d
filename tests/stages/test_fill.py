"""--mode declutter's first fill on a real room photo: the photo byte for byte outside what is taken out, LaMa's
fill inside, and that fill the one a direct spandrel call makes at the working size.

The tiny bundle's LaMa (big-lama's architecture, random) runs on the CPU at 256 px and below.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.errors import ModomoError
from pipeline.frames import Frame, Item
from pipeline.models import lama
from pipeline.models.presets import bundle
from pipeline.stages.fill import Filler, shrink_mask, working_size

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def weight(tiny_bundle) -> str:
    return bundle(tiny_bundle).lama


@pytest.fixture(scope="module")
def network(weight):
    """The tiny bundle's LaMa, loaded as a run loads it."""
    return lama.load(weight, CPU)


@pytest.fixture(scope="module")
def photo(rooms) -> Image.Image:
    """A real room photo at a working size of 4:3."""
    return Image.open(rooms / "living-room-02-small.jpg").convert("RGB").resize((320, 240), Image.LANCZOS)


def box(size: tuple[int, int], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    removal = np.zeros(size[::-1], dtype=bool)
    removal[y0:y1, x0:x1] = True
    return removal


def frame_of(image: Image.Image, removal: np.ndarray | None) -> Frame:
    return Frame(item=Item(key="room.jpg", path=Path("room.jpg"), root=Path(".")), seed=0, image=image, removal=removal)


def spandrel_fill(weight: str, image: Image.Image, removal: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """What the fill should be, from spandrel directly: the photo (Lanczos) and the mask (any coverage) at `size`,
    LaMa, its output rounded to bytes and brought back to the photo's size with Lanczos."""
    from spandrel import ModelLoader

    model = ModelLoader().load_from_file(weight).eval()
    small = np.asarray(image.resize(size, Image.LANCZOS) if image.size != size else image)
    cover = cv2.resize(removal.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    with torch.inference_mode():
        out = model(
            torch.from_numpy(small.copy()).permute(2, 0, 1)[None].float() / 255.0,
            torch.from_numpy(cover)[None, None].float(),
        )
    filled = Image.fromarray((out[0] * 255.0).round().clamp(0, 255).byte().permute(1, 2, 0).numpy())
    return np.asarray(filled.resize(image.size, Image.LANCZOS) if filled.size != image.size else filled)


@pytest.mark.parametrize("size", [256, 512])  # the photo brought down to 256x192, and kept at its 320x240
def test_the_fill_is_lama_inside_and_the_photo_outside(network, weight, photo, size):
    removal = box(photo.size, 61, 73, 187, 203)  # a sofa-sized box, its edges off the working size's grid
    frame = frame_of(photo, removal)
    Filler(network, CPU, size=size)([frame])
    start, original = np.asarray(frame.start), np.asarray(photo)
    assert frame.start.mode == "RGB" and frame.start.size == photo.size
    assert np.array_equal(start[~removal], original[~removal])  # byte for byte
    assert np.abs(start[removal].astype(int) - original[removal]).mean() > 10  # the sofa is gone
    expected = spandrel_fill(weight, photo, removal, working_size(photo.size, size))
    assert np.array_equal(start[removal], expected[removal])


def test_working_size_never_enlarges_and_keeps_multiples_of_8():
    assert working_size((320, 240), 256) == (256, 192)
    assert working_size((320, 240), 512) == (320, 240)  # smaller than the limit: as it is
    assert working_size((300, 203), 512) == (296, 200)  # rounded down, never up
    assert working_size((1536, 1024), 512) == (512, 336)
    for size in [(769, 577), (128, 1000), (512, 512)]:
        width, height = working_size(size, 512)
        assert width % 8 == height % 8 == 0 and max(width, height) <= 512
        assert width <= size[0] and height <= size[1]


def test_a_thin_removal_survives_the_working_size():
    removal = np.zeros((240, 320), dtype=bool)
    removal[100, 40:280] = True  # a one-pixel cable across the floor
    small = shrink_mask(removal, (256, 192))
    assert small.shape == (192, 256) and small.any(axis=1).sum() >= 1 and small[:, 40:220].any(axis=0).all()


def test_frames_with_nothing_to_take_out(network, photo):
    empty, plain, failed = frame_of(photo, np.zeros((240, 320), bool)), frame_of(photo, None), frame_of(photo, None)
    failed.removal = box(photo.size, 0, 0, 10, 10)
    failed.fail("earlier stage")
    wrong = frame_of(photo, np.ones((10, 10), bool))
    Filler(network, CPU)([empty, plain, failed, wrong])
    assert empty.start is photo  # nothing removed: the refine pass starts from the photo itself
    assert plain.start is None and failed.start is None  # not decluttered, or already failed
    assert wrong.start is None and "removal mask" in wrong.error


def test_without_lama_it_says_how_to_get_it():
    with pytest.raises(ModomoError) as caught:
        Filler(None, CPU)
    assert "modomo models download sd15 --declutter" in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1
