"""The declutter's refine pass against diffusers' `StableDiffusionControlNetInpaintPipeline`, on the tiny models (CPU).

The pass starts from a picture (LaMa's fill inside what is taken out, the photo elsewhere) at a strength below 1,
steers with the inpaint ControlNet (the photo with the removal blanked to -1) and the lines of the room around it,
and holds the latents outside the mask: what diffusers' inpaint pipeline does with `image`, `mask_image`,
`control_image` and `strength`. Latents are compared as well as pixels.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.frames import Frame, Item
from pipeline.stages.edges import EdgeDetector
from pipeline.stages.generate import (
    GenerateSettings,
    Generator,
    control_image,
    diffusers_pipe,
    inpaint_control,
    render_with_diffusers,
)
from pipeline.stages.sampling import Sampler, mask_picture

SIZE = (128, 96)
SETTINGS = GenerateSettings(
    prompt="an empty living room, bare walls and floor",
    negative_prompt="furniture, sofa, rug",
    steps=8,
    guidance_scale=7.5,
    controlnet_conditioning_scale=(0.6, 1.0),
    control_guidance_start=(0.0, 0.0),
    control_guidance_end=(0.8, 1.0),
    controls=("lines", "inpaint"),
    strength=0.6,
)


def make_frames(rooms, count: int = 2) -> list[Frame]:
    """Frames with their own photo (every other one mirrored), removal box, flat fill and seed."""
    room = Image.open(rooms / "living-room-02-small.jpg").convert("RGB").resize(SIZE)
    frames = []
    for i in range(count):
        image = room if i % 2 == 0 else room.transpose(Image.FLIP_LEFT_RIGHT)
        removal = np.zeros((SIZE[1], SIZE[0]), bool)
        removal[28 + 4 * i : 72, 36 : 100 - 8 * i] = True
        start = np.asarray(image).copy()
        start[removal] = (150 - 20 * i, 130, 110)  # a flat fill standing in for LaMa's
        frame = Frame(Item(f"r{i}.jpg", None, "."), seed=2000 + i, image=image)
        frame.removal, frame.start = removal, Image.fromarray(start)
        EdgeDetector(80, 180, 0.04)([frame])
        frames.append(frame)
    return frames


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def ours(stack, settings, frames, output_type: str = "pil", pipe=None):
    """modomo's sampler over the frames as one batch (on `pipe`, else the stack's)."""
    sampler = Sampler(pipe or stack.pipe, None, stack.device)
    return sampler(
        settings,
        [[control_image(f, name) for f in frames] for name in settings.controls],
        [torch.Generator("cpu").manual_seed(f.seed) for f in frames],
        SIZE[1],
        SIZE[0],
        output_type=output_type,
        starts=[f.start for f in frames],
        masks=[f.removal for f in frames],
    )


def theirs(stack, settings, frame, output_type: str = "pil", pipe=None):
    """One frame through `StableDiffusionControlNetInpaintPipeline.__call__` as its documentation shows it."""
    pipe = diffusers_pipe(pipe or stack.pipe, settings.controls, inpaint=True)
    assert type(pipe).__name__ == "StableDiffusionControlNetInpaintPipeline"
    return pipe(
        prompt=settings.prompt,
        negative_prompt=settings.negative_prompt,
        image=frame.start,
        mask_image=mask_picture(frame.removal),
        control_image=[control_image(frame, name) for name in settings.controls],
        strength=settings.strength,
        height=SIZE[1],
        width=SIZE[0],
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        controlnet_conditioning_scale=list(settings.controlnet_conditioning_scale),
        control_guidance_start=list(settings.control_guidance_start),
        control_guidance_end=list(settings.control_guidance_end),
        generator=torch.Generator("cpu").manual_seed(frame.seed),
        output_type=output_type,
    ).images


@pytest.mark.parametrize("guidance", [1.0, 7.5], ids=["cfg-off", "cfg-on"])
def test_batched_pass_equals_diffusers_inpaint_pipeline(declutter_stack, rooms, guidance):
    """A batch of two, each with its own photo, mask, start and seed: diffusers' latents and pixels, one call each."""
    settings = replace(SETTINGS, guidance_scale=guidance)
    frames = make_frames(rooms, 2)
    latents = ours(declutter_stack, settings, frames, output_type="latent")
    for row, frame in zip(latents, frames, strict=True):
        torch.testing.assert_close(row[None], theirs(declutter_stack, settings, frame, "latent"), rtol=0, atol=1e-3)
    Generator(declutter_stack.pipe, settings, declutter_stack.device)(frames)  # what the run calls: one batched call
    for frame in frames:
        assert np.abs(pixels(frame.result) - pixels(theirs(declutter_stack, settings, frame)[0])).max() <= 2


def test_a_stochastic_scheduler_draws_the_noise_diffusers_draws(declutter_stack, rooms):
    """LCM (--fast) draws noise from each image's generator at every step: the pass's generators must stand where
    diffusers' stand after it encodes the start and the masked picture."""
    from diffusers import LCMScheduler

    base = declutter_stack.pipe
    pipe = type(base)(**{**base.components, "scheduler": LCMScheduler.from_config(base.scheduler.config)})
    settings = replace(SETTINGS, guidance_scale=1.0, steps=6)
    frames = make_frames(rooms, 2)
    latents = ours(declutter_stack, settings, frames, "latent", pipe)
    for row, frame in zip(latents, frames, strict=True):
        torch.testing.assert_close(
            row[None], theirs(declutter_stack, settings, frame, "latent", pipe), rtol=0, atol=1e-3
        )


def test_the_plain_diffusers_baseline_is_the_inpaint_pipeline(declutter_stack, rooms):
    """The bench's baseline for a declutter: one `StableDiffusionControlNetInpaintPipeline` call per image."""
    frame = make_frames(rooms, 1)[0]
    view = diffusers_pipe(declutter_stack.pipe, SETTINGS.controls, inpaint=True)
    made = render_with_diffusers(view, SETTINGS, frame)
    assert np.abs(pixels(made) - pixels(theirs(declutter_stack, SETTINGS, frame)[0])).max() == 0


@pytest.mark.parametrize("part", ["start", "strength", "inpaint", "lines"])
def test_each_part_of_the_pass_changes_the_result(declutter_stack, rooms, part):
    """The starting picture, the strength and each control steer the pass (none is silently ignored)."""
    frames = make_frames(rooms, 1)
    base = ours(declutter_stack, SETTINGS, frames, output_type="latent")
    changed, settings = make_frames(rooms, 1), SETTINGS
    if part == "start":
        changed[0].start = changed[0].start.transpose(Image.FLIP_TOP_BOTTOM)
    elif part == "strength":
        settings = replace(SETTINGS, strength=0.9)
    elif part == "inpaint":
        changed[0].image = changed[0].image.transpose(Image.FLIP_TOP_BOTTOM)  # what the inpaint control shows
    else:
        changed[0].lines = changed[0].lines.transpose(Image.FLIP_LEFT_RIGHT)
    assert (base - ours(declutter_stack, settings, changed, output_type="latent")).abs().max() > 0.05


def test_inpaint_control_blanks_what_is_taken_out(rooms):
    frame = make_frames(rooms, 1)[0]
    control = inpaint_control(frame.image, frame.removal)
    assert control.shape == (1, 3, SIZE[1], SIZE[0])
    inside = control[0].permute(1, 2, 0)[torch.from_numpy(frame.removal)]
    outside = control[0].permute(1, 2, 0)[torch.from_numpy(~frame.removal)]
    assert torch.all(inside == -1.0)
    expected = torch.from_numpy(np.asarray(frame.image, np.float32)[~frame.removal] / 255.0)
    torch.testing.assert_close(outside, expected)


def test_a_declutter_with_nothing_to_remove_runs_no_model(rooms):
    """A photo where nothing was found to take out: its result is the photo, and the sampler is not called."""
    frame = make_frames(rooms, 1)[0]
    frame.removal = np.zeros_like(frame.removal)
    Generator(None, SETTINGS, "cpu")([frame])
    assert np.array_equal(pixels(frame.result), pixels(frame.image))
