"""The validate stage's quality score (sanity x change x structure) on a real room photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from pipeline.frames import Frame, Item
from pipeline.stages.validate import Validator, quality, structure


@pytest.fixture(scope="module")
def before(rooms) -> Image.Image:
    """The real living room, downscaled to 512 px on the long side."""
    with Image.open(rooms / "living-room-01.jpg") as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
    image.thumbnail((512, 512), Image.LANCZOS)
    assert max(image.size) == 512
    return image


def channel_swap(image: Image.Image) -> Image.Image:
    return Image.fromarray(np.asarray(image)[:, :, [2, 0, 1]].copy())


def hue_shift(image: Image.Image) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    h = h.point(lambda x: (x + 85) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def tint(image: Image.Image) -> Image.Image:
    return Image.blend(image, Image.new("RGB", image.size, (200, 120, 40)), 0.3)


def shifted(image: Image.Image) -> Image.Image:
    """Shifted right by 15% of the width (wrapping round)."""
    pixels = np.asarray(image)
    return Image.fromarray(np.roll(pixels, round(0.15 * image.width), axis=1))


def noise(image: Image.Image) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (image.height, image.width, 3), dtype=np.uint8))


def black(image: Image.Image) -> Image.Image:
    return Image.new("RGB", image.size, (0, 0, 0))


def white(image: Image.Image) -> Image.Image:
    return Image.new("RGB", image.size, (255, 255, 255))


def flat(image: Image.Image) -> Image.Image:
    return Image.new("RGB", image.size, (128, 128, 128))


def score(before: Image.Image, after: Image.Image) -> float:
    value, parts = quality(before, after)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(parts["sanity"] * parts["change"] * parts["structure"], abs=1e-4)
    return value


@pytest.fixture(scope="module")
def recoloured_score(before) -> float:
    return min(score(before, change(before)) for change in (channel_swap, hue_shift, tint))


def test_the_image_itself_keeps_the_room_but_is_not_a_result(before):
    """Unchanged is not a result: every layout part says 1, the change part says 0, and so does the score."""
    value, parts = quality(before, before.copy())
    assert parts == {"sanity": pytest.approx(1.0, abs=1e-3), "change": 0.0, "structure": pytest.approx(1.0, abs=1e-3)}
    assert value == 0.0


@pytest.mark.parametrize("change", [channel_swap, hue_shift, tint], ids=["channel-swap", "hue-shift", "tint"])
def test_recoloured_copy_scores_high(before, change):
    after = change(before)
    assert not np.array_equal(np.asarray(after), np.asarray(before))
    assert score(before, after) > 0.6


def test_mildly_blurred_copy_keeps_the_layout_but_barely_changes(before, recoloured_score):
    value, parts = quality(before, before.filter(ImageFilter.GaussianBlur(1.5)))
    assert parts["structure"] > 0.6
    assert parts["change"] < 0.5 and value < recoloured_score


@pytest.mark.parametrize(
    "make",
    [
        ImageOps.mirror,
        shifted,
        noise,
        black,
        white,
        flat,
    ],
    ids=["mirrored", "shifted-15pct", "noise", "black", "white", "flat"],
)
def test_broken_layouts_score_below_a_recoloured_copy(before, recoloured_score, make):
    value = score(before, make(before))
    assert value < recoloured_score
    assert value < 0.5, f"{make.__name__}: {value}"


def test_unrelated_room_scores_below_a_recoloured_copy(before, recoloured_score, rooms):
    with Image.open(rooms / "living-room-02-small.jpg") as image:
        unrelated = ImageOps.exif_transpose(image).convert("RGB")
    value = score(before, unrelated)
    assert value < recoloured_score
    assert value < 0.5


@pytest.mark.parametrize("make", [black, white, flat], ids=["black", "white", "flat"])
def test_black_and_flat_frames_score_exactly_zero(before, make):
    value, parts = quality(before, make(before))
    assert parts["sanity"] == 0.0
    assert value == 0.0


def test_real_before_after_pair_beats_broken_layouts(before, rooms):
    """A real restyle (layout kept, style changed) must outscore a mirror, another room, a flat frame, noise."""
    original = before  # scores are the same at full size (checked: 0.2278 either way), 512 px is faster
    with Image.open(rooms / "living-room-01.restyled.png") as image:
        restyled = image.convert("RGB")
    assert restyled.size != original.size  # the function resizes
    with Image.open(rooms / "living-room-02-small.jpg") as image:
        unrelated = ImageOps.exif_transpose(image).convert("RGB")
    pair = score(original, restyled)
    others = {
        "mirrored": score(original, ImageOps.mirror(original)),
        "unrelated room": score(original, unrelated),
        "flat": score(original, flat(original)),
        "noise": score(original, noise(original)),
    }
    below = {name: value for name, value in others.items() if value >= pair}
    assert not below, f"real pair scores {pair}, not above {below}"


def test_structure_ignores_size_of_after(before):
    bigger = before.resize((before.width * 2, before.height * 2), Image.BICUBIC)
    assert structure(before, bigger) > 0.95


def test_validator_fills_quality_on_ok_frames_only(before):
    item = Item("room.jpg", Path("/in/room.jpg"), Path("/in"))
    good = Frame(item=item, seed=1, image=before, result=channel_swap(before))
    failed = Frame(item=item, seed=2, image=before, result=before)
    failed.fail("generate broke")
    empty = Frame(item=item, seed=3, image=before)
    frames = Validator()([good, failed, empty])
    assert frames == [good, failed, empty]
    assert good.quality == pytest.approx(score(before, channel_swap(before)))
    assert set(good.quality_parts) == {"sanity", "change", "structure"}
    assert failed.quality is None and failed.quality_parts == {}
    assert empty.quality is None


def jpeg_copy(image: Image.Image, quality: int = 85) -> Image.Image:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_change_part_is_calibrated_on_synthetic_cases_and_the_real_pair(before, rooms):
    """0 for the photo itself and its re-encodes; 1 for a recolour and the real restyle; a 10 % brightness
    change most of the way; a slight blur barely."""
    from PIL import ImageEnhance

    from pipeline.stages.validate import change

    with Image.open(rooms / "living-room-01.restyled.png") as image:
        restyled = image.convert("RGB")
    assert change(before, before) == 0.0
    assert change(before, jpeg_copy(before, 85)) == 0.0
    assert change(before, jpeg_copy(before, 60)) == 0.0
    assert change(before, before.filter(ImageFilter.GaussianBlur(1.5))) < 0.2
    assert change(before, ImageEnhance.Brightness(before).enhance(1.1)) > 0.8
    for after in (channel_swap(before), hue_shift(before), tint(before), restyled):
        assert change(before, after) == 1.0


def test_change_is_measured_where_the_result_was_meant_to_change(before):
    """A keep mask takes its region out: a result changed only inside the kept region is untouched where it
    counts; one changed only outside it is a full change."""
    from pipeline.stages.validate import change

    keep = np.zeros((before.height, before.width), dtype=np.float32)
    keep[:, : before.width // 2] = 1.0
    inside, outside = np.asarray(before).copy(), np.asarray(before).copy()
    inside[:, : before.width // 2] = np.asarray(channel_swap(before))[:, : before.width // 2]
    outside[:, before.width // 2 :] = np.asarray(channel_swap(before))[:, before.width // 2 :]
    assert change(before, Image.fromarray(inside), keep) == 0.0
    assert change(before, Image.fromarray(outside), keep) == 1.0
    assert change(before, Image.fromarray(outside), np.ones_like(keep)) == 0.0  # nothing meant to change


def test_an_untouched_result_fails_and_is_retried(before):
    """Through the Validator, the way a run scores: an untouched result scores 0 with its change part."""
    item = Item("room.jpg", Path("/in/room.jpg"), Path("/in"))
    untouched = Frame(item=item, seed=1, image=before, result=before.copy())
    Validator()([untouched])
    assert untouched.quality_parts["change"] == 0.0 and untouched.quality == 0.0
