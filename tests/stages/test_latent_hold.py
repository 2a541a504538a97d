"""modomo's latent hold against diffusers' own: `StableDiffusionControlNetInpaintPipeline` with a 4-channel UNet.

With a 4-channel (non-inpainting) UNet, diffusers' inpaint pipeline at strength 1.0 starts from pure noise,
and after every scheduler step sets the region its mask leaves alone (mask 0) to the image's latents noised
to the next timestep's level, unnoised after the last step. modomo's sampler holds its keep mask (1 = keep)
the same way; its output, before the pixel compose stage, is compared here with diffusers' on the tiny models.

Two of modomo's choices that are not the hold itself are aligned for the comparison:
- modomo holds the region to the VAE posterior's mean; diffusers draws a sample with the image's generator
  (which moves that generator on before the initial noise is drawn). The reference takes the mean: diffusers'
  own `retrieve_latents(..., sample_mode="argmax")`.
- modomo averages a soft keep mask down to the latent grid; diffusers binarises its mask and takes the
  nearest latent. The masks here are binary with their edges on the 8-pixel latent grid, where both give the
  same latent mask.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.stages.generate import control_image
from pipeline.stages.sampling import Sampler
from tests.stages.test_sampling import SETTINGS, SIZE, controls, make_frames, pixels

WIDTH, HEIGHT = SIZE
# Per frame, the kept rectangle (top, bottom, left, right) in pixels, on the 8-pixel latent grid.
KEPT = [(32, 72, 40, 96), (16, 56, 64, 120)]


def keep_masks() -> list[np.ndarray]:
    masks = []
    for top, bottom, left, right in KEPT:
        keep = np.zeros((HEIGHT, WIDTH), np.float32)
        keep[top:bottom, left:right] = 1.0
        masks.append(keep)
    return masks


def inpaint_pipeline(pipe):
    """diffusers' ControlNet inpaint pipeline on the very components modomo's sampler runs."""
    from diffusers import StableDiffusionControlNetInpaintPipeline

    inpaint = StableDiffusionControlNetInpaintPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        controlnet=pipe.controlnet,
        scheduler=pipe.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    inpaint.set_progress_bar_config(disable=True)
    assert inpaint.unet.config.in_channels == 4  # the blending branch, not the 9-channel inpainting UNet's
    return inpaint


@pytest.fixture
def posterior_mean(monkeypatch):
    """diffusers' inpaint pipeline encodes the image to its posterior's mean, as modomo does."""
    from diffusers.pipelines.controlnet import pipeline_controlnet_inpaint as module

    original = module.retrieve_latents

    def mean(encoder_output, generator=None, sample_mode="sample"):
        return original(encoder_output, generator, sample_mode="argmax")

    monkeypatch.setattr(module, "retrieve_latents", mean)


@contextmanager
def scheduler_inputs(scheduler):
    """The latents the scheduler is handed at each step: the initial latents, then each step's held result."""
    seen: list[torch.Tensor] = []
    step = scheduler.step

    def record(model_output, timestep, sample, *args, **kwargs):
        seen.append(sample.clone())
        return step(model_output, timestep, sample, *args, **kwargs)

    scheduler.step = record
    try:
        yield seen
    finally:
        del scheduler.step


def ours(stack, settings, frames, keeps, output_type):
    """modomo's sampler over the frames as one batch, each with its keep mask: the output before compose."""
    sampler = Sampler(stack.pipe, None, stack.device)
    generators = [torch.Generator("cpu").manual_seed(f.seed) for f in frames]
    return sampler(
        settings,
        controls(settings, frames),
        generators,
        HEIGHT,
        WIDTH,
        output_type=output_type,
        keep=keeps,
        originals=[f.image for f in frames],
    )


def theirs(inpaint, settings, frame, keep: np.ndarray, output_type):
    """One frame through diffusers' inpaint pipeline; its mask is 1 where it repaints, so 1 - keep."""
    repaint = Image.fromarray(((1.0 - keep) * 255).round().astype(np.uint8))  # 8-bit grey: an "L" image
    return inpaint(
        prompt=settings.prompt,
        negative_prompt=settings.negative_prompt,
        image=frame.image,
        mask_image=repaint,
        control_image=[control_image(frame, name) for name in settings.controls],
        height=HEIGHT,
        width=WIDTH,
        strength=1.0,
        padding_mask_crop=None,
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        controlnet_conditioning_scale=list(settings.controlnet_conditioning_scale),
        control_guidance_start=list(settings.control_guidance_start),
        control_guidance_end=list(settings.control_guidance_end),
        generator=torch.Generator("cpu").manual_seed(frame.seed),
        output_type=output_type,
    ).images


@pytest.mark.parametrize("guidance", [1.0, 7.5], ids=["cfg-off", "cfg-on"])
def test_latent_hold_equals_diffusers_inpaint_blending(tiny_stack, rooms, posterior_mean, guidance):
    """Two photos, a keep mask each, in one batch: at every step, the latents diffusers' inpaint pipeline
    (one call per photo) hands its scheduler; then its final latents and its pixels (within 2/255)."""
    settings = replace(SETTINGS, guidance_scale=guidance)
    frames, keeps = make_frames(rooms, 2), keep_masks()
    inpaint = inpaint_pipeline(tiny_stack.pipe)
    with scheduler_inputs(tiny_stack.pipe.scheduler) as steps:
        latents = ours(tiny_stack, settings, frames, keeps, "latent")
    images = ours(tiny_stack, settings, frames, keeps, "pil")
    assert len(steps) == settings.steps
    for k, (frame, keep) in enumerate(zip(frames, keeps, strict=True)):
        with scheduler_inputs(tiny_stack.pipe.scheduler) as reference_steps:
            reference = theirs(inpaint, settings, frame, keep, "latent")
        assert len(reference_steps) == len(steps)
        for i, (mine, other) in enumerate(zip(steps, reference_steps, strict=True)):
            torch.testing.assert_close(mine[k : k + 1], other, rtol=0, atol=1e-3, msg=lambda m, i=i: f"step {i}: {m}")
        torch.testing.assert_close(latents[k : k + 1], reference, rtol=0, atol=1e-3)
        [image] = theirs(inpaint, settings, frame, keep, "pil")
        assert np.abs(pixels(images[k]) - pixels(image)).max() <= 2
