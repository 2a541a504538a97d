"""modomo's denoising loop against diffusers' own pipeline, on the tiny models (CPU).

The tiny ControlNets contribute (their zero-initialised output layers carry seeded random weights),
so each comparison below fails when a shortcut changes what a ControlNet adds. Latents are compared
as well as pixels: the tiny VAE decodes many latent changes to the same 8-bit pixels.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.frames import Frame, Item
from pipeline.models.awaken import zero_weights
from pipeline.stages.edges import canny, lines
from pipeline.stages.generate import GenerateSettings, Generator, control_image, diffusers_pipe, render_with_diffusers
from pipeline.stages.sampling import Sampler, SpeedOptions, control_windows

# Three controls: depth runs throughout, canny starts late and ends early, lines ends before the last steps.
SETTINGS = GenerateSettings(
    prompt="a bohemian living room",
    negative_prompt="blurry",
    steps=6,
    guidance_scale=7.5,
    controlnet_conditioning_scale=(0.9, 0.8, 0.7),
    control_guidance_start=(0.0, 0.2, 0.0),
    control_guidance_end=(1.0, 0.6, 0.8),
    controls=("depth", "canny", "lines"),
)
# What a style without [controls.lines] runs: two of the stack's three ControlNets.
TWO = GenerateSettings(
    prompt="a bohemian living room",
    negative_prompt="blurry",
    steps=6,
    guidance_scale=7.5,
    controlnet_conditioning_scale=(0.9, 0.8),
    control_guidance_start=(0.0, 0.2),
    control_guidance_end=(1.0, 0.6),
)
SIZE = (128, 96)


def make_frames(rooms, count: int = 2) -> list[Frame]:
    """Frames with different photos and control images (every other one mirrored), seeds 1000, 1001, ..."""
    room = Image.open(rooms / "living-room-02-small.jpg").convert("RGB").resize(SIZE)
    frames = []
    for i in range(count):
        image = room if i % 2 == 0 else room.transpose(Image.FLIP_LEFT_RIGHT)
        depth = Image.fromarray(np.asarray(image.convert("L"))).convert("RGB")
        frames.append(
            Frame(
                Item(f"r{i}.jpg", None, "."),
                seed=1000 + i,
                image=image,
                depth=depth,
                edges=canny(image, 80, 180),
                lines=lines(image, 0.04),
            )
        )
    return frames


def controls(settings, frames) -> list[list]:
    """Per control of the settings, the frames' control images."""
    return [[control_image(f, name) for f in frames] for name in settings.controls]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def ours(stack, settings, frames, options: SpeedOptions | None = None, output_type: str = "pil"):
    """modomo's sampler over the frames as one batch; (images or latents, ControlNet calls)."""
    sampler = Sampler(stack.pipe, options, stack.device)
    generators = [torch.Generator("cpu").manual_seed(f.seed) for f in frames]
    out = sampler(settings, controls(settings, frames), generators, SIZE[1], SIZE[0], output_type=output_type)
    return out, sampler.controlnet_calls


def theirs(pipe, settings, frames, output_type: str = "pil"):
    """The same batch through `StableDiffusionControlNetPipeline.__call__` with the settings' ControlNets (a
    MultiControlNetModel of exactly those, as a diffusers user builds it), a generator per image."""
    count = len(frames)
    assert len(diffusers_pipe(pipe, settings.controls).controlnet.nets) == len(settings.controls)
    return diffusers_pipe(pipe, settings.controls)(
        prompt=[settings.prompt] * count,
        negative_prompt=[settings.negative_prompt] * count,
        image=[[control_image(f, name) for name in settings.controls] for f in frames],
        height=SIZE[1],
        width=SIZE[0],
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        controlnet_conditioning_scale=list(settings.controlnet_conditioning_scale),
        control_guidance_start=list(settings.control_guidance_start),
        control_guidance_end=list(settings.control_guidance_end),
        generator=[torch.Generator("cpu").manual_seed(f.seed) for f in frames],
        output_type=output_type,
    ).images


def test_windows_match_diffusers_rule():
    keep = control_windows(10, (0.0, 0.0), (1.0, 0.6))
    assert [k[0] for k in keep] == [1.0] * 10
    assert [k[1] for k in keep] == [1.0] * 6 + [0.0] * 4


def test_no_model_the_suite_builds_has_zero_weights(tiny_stack):
    """diffusers zero-initialises ControlNet outputs; DPT and Hiera their position embeddings: not here."""
    for model in (
        tiny_stack.pipe.unet,
        *tiny_stack.pipe.controlnet.nets,
        tiny_stack.pipe.vae,
        tiny_stack.depth_model,
        tiny_stack.sam2.model,
    ):
        assert zero_weights(model) == [], type(model).__name__


@pytest.mark.parametrize("field", ["depth", "edges", "lines"])
def test_each_control_image_changes_the_result(tiny_stack, rooms, field):
    frame = make_frames(rooms, 1)[0]
    base, _ = ours(tiny_stack, SETTINGS, [frame], output_type="latent")
    flipped = make_frames(rooms, 1)[0]
    setattr(flipped, field, getattr(flipped, field).transpose(Image.FLIP_LEFT_RIGHT))
    changed, _ = ours(tiny_stack, SETTINGS, [flipped], output_type="latent")
    assert (base - changed).abs().max() > 0.1


@pytest.mark.parametrize(
    "guidance,base", [(1.0, SETTINGS), (7.5, SETTINGS), (7.5, TWO)], ids=["cfg-off", "cfg-on", "two-controls"]
)
def test_batched_loop_equals_diffusers(tiny_stack, rooms, guidance, base):
    """A batch of three, a seed each, late-starting and early-ending windows, the three ControlNets (or two of
    them): diffusers' pixels and latents."""
    assert len(tiny_stack.pipe.controlnet.nets) == 3
    settings = replace(base, guidance_scale=guidance)
    frames = make_frames(rooms, 3)
    images, _ = ours(tiny_stack, settings, frames)
    reference = theirs(tiny_stack.pipe, settings, frames)
    for mine, other in zip(images, reference, strict=True):
        assert np.abs(pixels(mine) - pixels(other)).max() <= 2
    latents, _ = ours(tiny_stack, settings, frames, output_type="latent")
    torch.testing.assert_close(latents, theirs(tiny_stack.pipe, settings, frames, "latent"), rtol=0, atol=1e-3)
    assert np.abs(pixels(images[0]) - pixels(images[2])).max() > 2  # same photo, another seed


@pytest.mark.parametrize("settings", [SETTINGS, TWO], ids=["three", "two"])
def test_generator_equals_one_diffusers_call_per_image(tiny_stack, rooms, settings):
    frames = make_frames(rooms, 2)
    Generator(tiny_stack.pipe, settings, tiny_stack.device)(frames)  # one batched call
    view = diffusers_pipe(tiny_stack.pipe, settings.controls)
    for frame in frames:
        assert np.abs(pixels(frame.result) - pixels(render_with_diffusers(view, settings, frame))).max() <= 2


def test_scale_zero_equals_leaving_the_controlnet_out(tiny_stack, rooms):
    from diffusers import StableDiffusionControlNetPipeline

    pipe = tiny_stack.pipe
    canny_only = StableDiffusionControlNetPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        controlnet=pipe.controlnet.nets[1],
        scheduler=pipe.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    canny_only.set_progress_bar_config(disable=True)
    settings = replace(TWO, controlnet_conditioning_scale=(0.0, 0.8))
    frames = make_frames(rooms, 2)
    latents, calls = ours(tiny_stack, settings, frames, output_type="latent")
    reference = canny_only(
        prompt=[settings.prompt] * 2,
        negative_prompt=[settings.negative_prompt] * 2,
        image=[f.edges for f in frames],
        height=SIZE[1],
        width=SIZE[0],
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        controlnet_conditioning_scale=0.8,
        control_guidance_start=0.2,
        control_guidance_end=0.6,
        generator=[torch.Generator("cpu").manual_seed(f.seed) for f in frames],
        output_type="latent",
    ).images
    torch.testing.assert_close(latents, reference, rtol=0, atol=1e-3)
    canny_steps = sum(step[1] for step in control_windows(settings.steps, (0.0, 0.2), (1.0, 0.6)))
    assert calls == canny_steps  # the depth ControlNet at scale 0 is not run at all


@pytest.mark.parametrize("off", ["skip_idle_controlnets", "cache_control_embeddings", "cache_prompts"])
def test_each_shortcut_gives_the_same_latents_as_running_everything(tiny_stack, rooms, off):
    frames = make_frames(rooms, 2)
    fast, calls_fast = ours(tiny_stack, SETTINGS, frames, SpeedOptions(), "latent")
    slow, calls_slow = ours(tiny_stack, SETTINGS, frames, SpeedOptions(**{off: False}), "latent")
    plain, _ = ours(tiny_stack, SETTINGS, frames, SpeedOptions(False, False, False), "latent")
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-4)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-4)
    active = sum(
        sum(step)
        for step in control_windows(SETTINGS.steps, SETTINGS.control_guidance_start, SETTINGS.control_guidance_end)
    )
    assert calls_fast == active < 3 * SETTINGS.steps
    assert calls_slow == (3 * SETTINGS.steps if off == "skip_idle_controlnets" else active)


def test_prompt_cache_tells_prompt_pairs_apart(tiny_stack, rooms):
    """The cache serves a second negative prompt its own embedding, not the first one's."""
    frames = make_frames(rooms, 1)
    other = replace(SETTINGS, negative_prompt="dark, cluttered")
    sampler = Sampler(tiny_stack.pipe, SpeedOptions(), tiny_stack.device)

    def run(settings):
        return sampler(
            settings,
            controls(settings, frames),
            [torch.Generator("cpu").manual_seed(1)],
            SIZE[1],
            SIZE[0],
            output_type="latent",
        )

    first, second = run(SETTINGS), run(other)
    fresh, _ = ours(tiny_stack, other, [replace(frames[0], seed=1)], SpeedOptions(cache_prompts=False), "latent")
    torch.testing.assert_close(second, fresh, rtol=0, atol=1e-4)
    assert (first - second).abs().max() > 0.1
    assert len(sampler._prompts) == 2


def test_batch_keeps_per_image_seeds(tiny_stack, rooms):
    frames = make_frames(rooms, 3)
    Generator(tiny_stack.pipe, SETTINGS, tiny_stack.device)(frames)
    alone = make_frames(rooms, 3)[1:2]
    Generator(tiny_stack.pipe, SETTINGS, tiny_stack.device)(alone)
    assert np.abs(pixels(frames[1].result) - pixels(alone[0].result)).max() <= 2
    assert np.abs(pixels(frames[0].result) - pixels(frames[2].result)).max() > 2


def test_conditioning_embedding_is_restored_after_a_run(tiny_stack, rooms):
    frames = make_frames(rooms, 1)
    before = [net.controlnet_cond_embedding for net in tiny_stack.pipe.controlnet.nets]
    Generator(tiny_stack.pipe, SETTINGS, tiny_stack.device)(frames)
    assert [net.controlnet_cond_embedding for net in tiny_stack.pipe.controlnet.nets] == before
    assert not any(isinstance(m, torch.nn.Identity) for m in before)


def test_each_image_its_own_prompt_in_one_batch(tiny_stack, rooms):
    """A room found per photo, a manifest row's words: one batched call, each image as diffusers makes it alone."""
    frames = make_frames(rooms, 2)
    frames[0].prompt, frames[0].negative_prompt = "a bohemian bedroom", "blurry"
    frames[1].prompt, frames[1].negative_prompt = "a bohemian kitchen, marble", "dark"
    generate = Generator(tiny_stack.pipe, SETTINGS, tiny_stack.device)
    generate(frames)
    assert generate.calls == 1
    for frame in frames:
        assert np.abs(pixels(frame.result) - pixels(render_with_diffusers(tiny_stack.pipe, SETTINGS, frame))).max() <= 2
    sampler = Sampler(tiny_stack.pipe, None, tiny_stack.device)
    images = controls(SETTINGS, frames[1:])
    own = sampler(
        SETTINGS,
        images,
        [torch.Generator("cpu").manual_seed(1001)],
        SIZE[1],
        SIZE[0],
        output_type="latent",
        prompts=[(frames[1].prompt, frames[1].negative_prompt)],
    )
    style = sampler(
        SETTINGS, images, [torch.Generator("cpu").manual_seed(1001)], SIZE[1], SIZE[0], output_type="latent"
    )
    assert (own - style).abs().max() > 0.1  # the image's own prompt was used, not the style's
