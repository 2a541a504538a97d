"""A style reference (IP-Adapter) in modomo's loop against diffusers' own pipeline, on the tiny models (CPU).

The tiny bundle's adapter is random in the published file's layout and loads through `load_ip_adapter`; its
image key/value projections start as copies of the text ones, so a reference moves the result as a prompt does.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.frames import Reference
from pipeline.models.loaders import WeightLoaders, load_generator
from pipeline.stages.generate import Generator, diffusers_pipe, render_with_diffusers
from pipeline.stages.sampling import Sampler
from tests.stages.test_sampling import SETTINGS, SIZE, controls, make_frames, pixels

SCALE = 0.7


@pytest.fixture(scope="module")
def adapted(tiny_bundle):
    """The tiny generator with its IP-Adapter loaded (a pipe of its own: the other tests' has none)."""
    from pipeline.models.catalog import resolve

    spec = resolve(str(tiny_bundle))
    pipe = load_generator(spec, torch.device("cpu"), torch.float32, ("depth", "canny", "lines"))
    WeightLoaders(spec).ip_adapter(pipe, torch.device("cpu"), torch.float32)
    return pipe


def reference(rooms, name: str = "living-room-01.jpg", scale: float = SCALE, flip: bool = False) -> Reference:
    image = Image.open(rooms / name).convert("RGB")
    if flip:
        image = image.transpose(Image.FLIP_TOP_BOTTOM).rotate(90, expand=True)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return Reference(name, hashlib.sha256(buffer.getvalue()).hexdigest()[:16], scale, image)


def ours(pipe, frames, references, settings=SETTINGS, output_type="pil"):
    sampler = Sampler(pipe, None, torch.device("cpu"))
    generators = [torch.Generator("cpu").manual_seed(f.seed) for f in frames]
    out = sampler(
        settings,
        controls(settings, frames),
        generators,
        SIZE[1],
        SIZE[0],
        output_type=output_type,
        references=references,
    )
    return out, sampler


def theirs_through(view, settings, frames, output_type, ref: Reference):
    count = len(frames)
    return view(
        prompt=[settings.prompt] * count,
        negative_prompt=[settings.negative_prompt] * count,
        image=[[c[i] for c in controls(settings, frames)] for i in range(count)],
        height=SIZE[1],
        width=SIZE[0],
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        controlnet_conditioning_scale=list(settings.controlnet_conditioning_scale),
        control_guidance_start=list(settings.control_guidance_start),
        control_guidance_end=list(settings.control_guidance_end),
        generator=[torch.Generator("cpu").manual_seed(f.seed) for f in frames],
        output_type=output_type,
        ip_adapter_image=ref.image,
    ).images


def diffusers_batch(pipe, settings, frames, ref: Reference, output_type="pil"):
    """The batch through `StableDiffusionControlNetPipeline.__call__(..., ip_adapter_image=...)`."""
    pipe.set_ip_adapter_scale(ref.scale)
    view = diffusers_pipe(pipe, settings.controls)
    return theirs_through(view, settings, frames, output_type, ref)


def test_batched_loop_with_a_reference_equals_diffusers(adapted, rooms):
    frames = make_frames(rooms, 3)
    ref = reference(rooms)
    mine, _ = ours(adapted, frames, [ref] * 3)
    want = diffusers_batch(adapted, SETTINGS, frames, ref)
    for a, b in zip(mine, want, strict=True):
        assert np.abs(pixels(a) - pixels(b)).max() <= 2
    latents, _ = ours(adapted, frames, [ref] * 3, output_type="latent")
    reference_latents = diffusers_batch(adapted, SETTINGS, frames, ref, output_type="latent")
    assert torch.allclose(latents, reference_latents, atol=1e-4)


def test_the_reference_changes_the_result(adapted, rooms):
    frames = make_frames(rooms, 1)
    one, _ = ours(adapted, frames, [reference(rooms)], output_type="latent")
    other, _ = ours(adapted, frames, [reference(rooms, flip=True)], output_type="latent")
    none, _ = ours(adapted, frames, None, output_type="latent")
    assert (one - other).abs().max() > 1e-2
    assert (one - none).abs().max() > 1e-2


def test_each_image_its_own_reference_in_one_batch(adapted, rooms):
    """Two references in one call give what two diffusers calls give, each with its own."""
    frames = make_frames(rooms, 2)
    refs = [reference(rooms), reference(rooms, flip=True)]
    latents, _ = ours(adapted, frames, refs, output_type="latent")
    for i, (frame, ref) in enumerate(zip(frames, refs, strict=True)):
        alone = diffusers_batch(adapted, SETTINGS, [frame], ref, output_type="latent")
        assert torch.allclose(latents[i : i + 1], alone, atol=1e-4)


def test_without_a_reference_the_adapter_is_silent(adapted, tiny_stack, rooms):
    """In a run that loaded the adapter, a frame without a reference renders as with no adapter at all."""
    frames = make_frames(rooms, 2)
    with_adapter, _ = ours(adapted, frames, None, output_type="latent")
    plain = Sampler(tiny_stack.pipe, None, torch.device("cpu"))
    generators = [torch.Generator("cpu").manual_seed(f.seed) for f in frames]
    without = plain(SETTINGS, controls(SETTINGS, frames), generators, SIZE[1], SIZE[0], output_type="latent")
    assert torch.allclose(with_adapter, without, atol=1e-5)


def test_the_encoder_runs_once_per_distinct_reference(adapted, rooms):
    """Many photos, two references: the image encoder runs twice in the run, however many calls."""
    calls = []
    hook = adapted.image_encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        frames = make_frames(rooms, 6)
        refs = [reference(rooms), reference(rooms, flip=True)]
        for frame, i in zip(frames, range(6), strict=True):
            frame.reference = refs[i % 2]
            frame.style = "boho"
        generator = Generator(adapted, SETTINGS, "cpu")
        for start in range(0, 6, 2):  # three batches, as a run streams them
            generator(frames[start : start + 2])
    finally:
        hook.remove()
    assert len(calls) == 2
    assert generator.sampler.reference_encodes == 2
    assert all(f.result is not None for f in frames)


def test_generator_equals_one_diffusers_call_per_image_with_references(adapted, rooms):
    """The Generator (grouping by size and scale) against `render_with_diffusers`, the bench's baseline."""
    frames = make_frames(rooms, 2)
    frames[0].reference = reference(rooms)
    frames[1].reference = reference(rooms, flip=True, scale=0.4)
    Generator(adapted, SETTINGS, "cpu")(frames)
    view = diffusers_pipe(adapted, SETTINGS.controls)
    for frame in frames:
        alone = render_with_diffusers(view, SETTINGS, frame)
        assert np.abs(pixels(frame.result) - pixels(alone)).max() <= 2
