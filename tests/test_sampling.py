"""modomo's denoising loop against plain diffusers, on the tiny models (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.frames import Frame, Item
from pipeline.stages.edges import canny
from pipeline.stages.generate import GenerateSettings, Generator, render_with_diffusers
from pipeline.stages.sampling import Sampler, SpeedOptions, control_windows

SETTINGS = GenerateSettings(
    prompt="a bohemian living room", negative_prompt="blurry", steps=6, guidance_scale=7.5,
    controlnet_conditioning_scale=(0.9, 0.5), control_guidance_start=(0.0, 0.2), control_guidance_end=(1.0, 0.6),
)


def make_frames(rooms, count: int = 2) -> list[Frame]:
    room = Image.open(rooms / "living-room-02-small.jpg").convert("RGB").resize((128, 96))
    frames = []
    for i in range(count):
        image = room if i % 2 == 0 else room.transpose(Image.FLIP_LEFT_RIGHT)
        depth = Image.fromarray(np.asarray(image.convert("L"))).convert("RGB")
        frames.append(Frame(Item(f"r{i}.jpg", None, "."), seed=1000 + i, image=image, depth=depth,
                            edges=canny(image, 80, 180)))
    return frames


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_windows_match_diffusers_rule():
    keep = control_windows(10, (0.0, 0.0), (1.0, 0.6))
    assert [k[0] for k in keep] == [1.0] * 10
    assert [k[1] for k in keep] == [1.0] * 6 + [0.0] * 4


def test_same_images_as_plain_diffusers(tiny_stack, rooms):
    frames = make_frames(rooms, 2)
    ours = Generator(tiny_stack.pipe, SETTINGS, tiny_stack.device)
    ours(frames)  # one batched call with a generator per image
    for frame in frames:
        theirs = render_with_diffusers(tiny_stack.pipe, SETTINGS, frame)
        assert np.abs(pixels(frame.result) - pixels(theirs)).max() <= 2


def test_skipping_idle_controlnets_gives_the_same_latents_with_fewer_calls(tiny_stack, rooms):
    frames = make_frames(rooms, 2)
    controls = [[f.depth for f in frames], [f.edges for f in frames]]

    def latents(options: SpeedOptions) -> tuple[torch.Tensor, int]:
        sampler = Sampler(tiny_stack.pipe, options)
        generators = [torch.Generator("cpu").manual_seed(f.seed) for f in frames]
        out = sampler(SETTINGS, controls, generators, 96, 128, output_type="latent")
        return out, sampler.controlnet_calls

    skipped, calls_skipped = latents(SpeedOptions(skip_idle_controlnets=True))
    zeroed, calls_zeroed = latents(SpeedOptions(skip_idle_controlnets=False))
    plain, _ = latents(SpeedOptions(False, False, False))
    assert calls_zeroed == 2 * SETTINGS.steps
    active = sum(sum(step) for step in control_windows(SETTINGS.steps, SETTINGS.control_guidance_start,
                                                       SETTINGS.control_guidance_end))
    assert calls_skipped == active < calls_zeroed
    torch.testing.assert_close(skipped, zeroed, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(skipped, plain, rtol=1e-5, atol=1e-5)


def test_batch_keeps_per_image_seeds(tiny_stack, rooms):
    frames = make_frames(rooms, 3)
    Generator(tiny_stack.pipe, SETTINGS, tiny_stack.device)(frames)
    alone = make_frames(rooms, 3)[1:2]
    Generator(tiny_stack.pipe, SETTINGS, tiny_stack.device)(alone)
    assert np.abs(pixels(frames[1].result) - pixels(alone[0].result)).max() <= 2
    assert np.abs(pixels(frames[0].result) - pixels(frames[2].result)).max() > 0


def test_conditioning_embedding_is_restored_after_a_run(tiny_stack, rooms):
    frames = make_frames(rooms, 1)
    before = [net.controlnet_cond_embedding for net in tiny_stack.pipe.controlnet.nets]
    Generator(tiny_stack.pipe, SETTINGS, tiny_stack.device)(frames)
    assert [net.controlnet_cond_embedding for net in tiny_stack.pipe.controlnet.nets] == before
    assert not any(isinstance(m, torch.nn.Identity) for m in before)


@pytest.mark.parametrize("guidance", [1.0, 7.5])
def test_guidance_off_and_on_match_diffusers(tiny_stack, rooms, guidance):
    settings = GenerateSettings(**{**SETTINGS.__dict__, "guidance_scale": guidance, "steps": 3})
    frame = make_frames(rooms, 1)[0]
    Generator(tiny_stack.pipe, settings, tiny_stack.device)([frame])
    theirs = render_with_diffusers(tiny_stack.pipe, settings, frame)
    assert np.abs(pixels(frame.result) - pixels(theirs)).max() <= 2
