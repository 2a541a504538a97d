"""--mode stage's passes on the tiny models (CPU): the first paints the region from noise (strength 1) with the
inpaint, depth and lines ControlNets, as diffusers' `StableDiffusionControlNetInpaintPipeline` does at strength 1;
the second redraws only the furniture it added, so outside that mask the result is the empty room's own pixels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from pipeline.frames import Frame, Item
from pipeline.stages.edges import EdgeDetector
from pipeline.stages.generate import GenerateSettings, Generator, diffusers_pipe, render_with_diffusers
from pipeline.stages.preserve import Compositor, held
from pipeline.stages.second_pass import SecondPass
from pipeline.stages.staging import stage_table
from tests.stages.test_declutter_pass import SIZE, pixels

SETTINGS = GenerateSettings(
    prompt="a bohemian living room, furnished with a sofa, two armchairs and a rug",
    negative_prompt="window, door, people",
    steps=6,
    guidance_scale=7.5,
    controlnet_conditioning_scale=(0.5, 0.5, 1.0),
    control_guidance_start=(0.0, 0.0, 0.0),
    control_guidance_end=(0.8, 0.6, 1.0),
    controls=("depth", "lines", "inpaint"),
    strength=1.0,
)


@pytest.fixture(scope="module")
def stage_stack(tiny_bundle, stack_shelf):
    """The tiny bundle as a staging loads it (depth, lines and inpaint ControlNets), on the CPU in fp32."""
    import torch

    from pipeline.models.catalog import resolve
    from pipeline.models.placement import LoadOptions

    options = LoadOptions(dtype="fp32", controls=("depth", "lines", "inpaint"))
    return stack_shelf(resolve(str(tiny_bundle)), torch.device("cpu"), options=options)


def make_frames(rooms, count: int = 2) -> list[Frame]:
    """Frames of one room (every other one mirrored) with a floor region, a depth ramp and the room's lines."""
    room = Image.open(rooms / "living-room-02-small.jpg").convert("RGB").resize(SIZE)
    ramp = np.repeat(np.linspace(40, 220, SIZE[1], dtype=np.uint8)[:, None], SIZE[0], axis=1)
    frames = []
    for i in range(count):
        image = room if i % 2 == 0 else room.transpose(Image.FLIP_LEFT_RIGHT)
        region = np.zeros((SIZE[1], SIZE[0]), bool)
        region[40 + 4 * i :, 8 : 120 - 8 * i] = True
        frame = Frame(Item(f"r{i}.jpg", None, "."), seed=3000 + i, image=image)
        frame.region, frame.depth = region, Image.fromarray(ramp).convert("RGB")
        EdgeDetector(80, 180, 0.04)([frame])
        frames.append(frame)
    return frames


def test_the_first_pass_equals_diffusers_inpaint_pipeline_at_strength_one(stage_stack, rooms):
    """A batch of two through modomo's loop, each against one `StableDiffusionControlNetInpaintPipeline` call with
    the empty room as `image`, the region as `mask_image`, strength 1 (the pass starts from noise)."""
    frames = make_frames(rooms, 2)
    Generator(stage_stack.pipe, SETTINGS, stage_stack.device)(frames)
    view = diffusers_pipe(stage_stack.pipe, SETTINGS.controls, inpaint=True)
    assert type(view).__name__ == "StableDiffusionControlNetInpaintPipeline"
    for frame in frames:
        assert np.abs(pixels(frame.result) - pixels(render_with_diffusers(view, SETTINGS, frame))).max() <= 2


def test_the_region_is_what_the_first_pass_paints(stage_stack, rooms):
    """Composited, the first pass is the photo's own pixels outside the region and its seam, and new inside."""
    frame = make_frames(rooms, 1)[0]
    Generator(stage_stack.pipe, SETTINGS, stage_stack.device)([frame])
    Compositor()([frame])
    alpha = held(frame)
    made, photo = pixels(frame.result), pixels(frame.image)
    assert np.array_equal(made[alpha >= 1.0], photo[alpha >= 1.0])
    assert np.abs(made[frame.region] - photo[frame.region]).mean() > 10


def second_pass(stack, frames, added: np.ndarray | None):
    """The second pass over first-pass results, with the added-furniture mask given (the detection of what was
    added is tested on label maps: tests/stages/test_staging.py)."""
    first = Generator(stack.pipe, SETTINGS, stack.device)
    first(frames)
    Compositor()(frames)
    again = Generator(stack.pipe, replace(SETTINGS, strength=0.5), stack.device)
    GivenMask(added, again)(frames)
    return frames


class GivenMask(SecondPass):
    """The second pass with its added-furniture mask given instead of found."""

    def __init__(self, added: np.ndarray, generator):
        super().__init__(None, stage_table(), generator, Compositor(), ())
        self.added = added

    def find(self, frames):
        return [self.added] * len(frames)


def test_with_the_second_pass_only_the_added_furniture_differs_from_the_empty_room(stage_stack, rooms):
    added = np.zeros((SIZE[1], SIZE[0]), bool)
    added[50:80, 30:90] = True
    frame = second_pass(stage_stack, make_frames(rooms, 1), added)[0]
    made, photo = pixels(frame.result), pixels(frame.image)
    alpha = held(frame)
    assert np.array_equal(frame.added, added) and alpha[51:79, 31:89].max() == 0.0
    assert np.array_equal(made[alpha >= 1.0], photo[alpha >= 1.0])  # the floor around is the photo's own
    far = frame.region.copy()
    far[34:, 14:106] = False  # the region but 16 px or more from the furniture: went back to the photo
    assert far.sum() > 1000 and (alpha[far] >= 1.0).all()
    assert np.abs(made[added] - photo[added]).mean() > 10


def test_without_the_second_pass_the_whole_region_is_the_models(stage_stack, rooms):
    frame = make_frames(rooms, 1)[0]
    Generator(stage_stack.pipe, SETTINGS, stage_stack.device)([frame])
    Compositor()([frame])
    floor = frame.region.copy()
    floor[50:80, 30:90] = False  # outside where the furniture would be: not the photo's
    assert np.abs(pixels(frame.result)[floor] - pixels(frame.image)[floor]).max() > 20


def test_a_staging_that_added_nothing_is_the_empty_room(stage_stack, rooms):
    frame = second_pass(stage_stack, make_frames(rooms, 1), np.zeros((SIZE[1], SIZE[0]), bool))[0]
    assert np.array_equal(pixels(frame.result), pixels(frame.image))
