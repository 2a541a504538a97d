"""modomo's denoising loop for SD1.5 + several ControlNets, written as numbered steps like diffusers' own.

It does what `StableDiffusionControlNetPipeline.__call__` does, with the same components, noise and
scheduler, and gives the same images, minus work that cannot change them:

- a ControlNet outside its guidance window (control_guidance_start/end) is not run at all; diffusers
  runs it and multiplies its output by zero;
- each ControlNet's conditioning embedding (a stack of full-resolution convolutions over the
  control image) is computed once per image instead of at every step;
- prompt embeddings are computed once per prompt, not once per call.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor


@dataclass(frozen=True)
class SpeedOptions:
    """The shortcuts, each one switchable so the bench can measure it with and without."""

    skip_idle_controlnets: bool = True
    cache_control_embeddings: bool = True
    cache_prompts: bool = True


def control_windows(steps: int, starts, ends) -> list[list[float]]:
    """Per step, per ControlNet: 1.0 inside its guidance window, 0.0 outside (diffusers' `controlnet_keep`)."""
    return [
        [1.0 - float(i / steps < s or (i + 1) / steps > e) for s, e in zip(starts, ends, strict=True)]
        for i in range(steps)
    ]


@contextmanager
def precomputed_conditioning(nets):
    """Let each ControlNet take its conditioning embedding ready-made (the embedding module becomes identity)."""
    saved = [net.controlnet_cond_embedding for net in nets]
    try:
        for net in nets:
            net.controlnet_cond_embedding = torch.nn.Identity()
        yield saved
    finally:
        for net, module in zip(nets, saved, strict=True):
            net.controlnet_cond_embedding = module


class Sampler:
    """Runs the denoising loop on the components of a loaded diffusers ControlNet pipeline."""

    def __init__(self, pipe, options: SpeedOptions | None = None):
        self.pipe = pipe
        self.options = options or SpeedOptions()
        self._prompts: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.controlnet_calls = 0  # counted: the tests check which ControlNet calls were skipped

    @property
    def nets(self):
        return self.pipe.controlnet.nets

    def encode(self, prompt: str, negative_prompt: str, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(positive, negative) embeddings of one prompt pair, batch 1, cached."""
        key = (prompt, negative_prompt)
        if key not in self._prompts or not self.options.cache_prompts:
            self._prompts[key] = self.pipe.encode_prompt(prompt, device, 1, True, negative_prompt)
        return self._prompts[key]

    def held_region(self, images, keep: list, height: int, width: int, device, dtype):
        """Latents of the original photos and the latent-size keep masks, for regions kept as they are."""
        pipe = self.pipe
        pixels = pipe.image_processor.preprocess(images, height=height, width=width).to(device, pipe.vae.dtype)
        init = pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor
        masks = torch.stack([torch.from_numpy(k if k is not None else np.zeros((height, width), np.float32))
                             for k in keep])[:, None].to(device, torch.float32)
        masks = torch.nn.functional.interpolate(masks, size=init.shape[-2:], mode="area")
        return init.to(dtype), masks.to(dtype)

    @torch.inference_mode()
    def __call__(self, settings, controls: list[list], generators: list[torch.Generator], height: int,
                 width: int, output_type: str = "pil", keep: list | None = None, originals: list | None = None):
        """Images for one batch. `controls` holds, per ControlNet, one PIL control image per batch item;
        `keep` (float masks, 1 = keep) with `originals` holds those regions to the original photos."""
        pipe, opts = self.pipe, self.options
        device = pipe._execution_device
        count = len(generators)
        guided = settings.guidance_scale > 1.0

        # 1. Prompt embeddings: [negative x N, positive x N] for classifier-free guidance.
        positive, negative = self.encode(settings.prompt, settings.negative_prompt, device)
        embeds = torch.cat([negative.expand(count, -1, -1), positive.expand(count, -1, -1)]) if guided \
            else positive.expand(count, -1, -1)

        # 2. Control images, preprocessed exactly as the pipeline does, then (once) their embeddings.
        conds = [
            pipe.prepare_image(image=images, width=width, height=height, batch_size=count, num_images_per_prompt=1,
                               device=device, dtype=net.dtype, do_classifier_free_guidance=guided, guess_mode=False)
            for images, net in zip(controls, self.nets, strict=True)
        ]

        # 3. Timesteps and the per-step, per-net window.
        pipe.scheduler.set_timesteps(settings.steps, device=device)
        timesteps = pipe.scheduler.timesteps
        windows = control_windows(len(timesteps), settings.control_guidance_start, settings.control_guidance_end)
        scales = settings.controlnet_conditioning_scale

        # 4. Initial noise: one generator per image, as diffusers draws it.
        shape = (count, pipe.unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
        noise = randn_tensor(shape, generator=generators, device=device, dtype=embeds.dtype)
        latents = noise * pipe.scheduler.init_noise_sigma
        held = None
        if keep is not None and any(k is not None for k in keep):
            held = self.held_region(originals, keep, height, width, device, embeds.dtype)

        with precomputed_conditioning(self.nets if opts.cache_control_embeddings else []) as embedders:
            if opts.cache_control_embeddings:
                conds = [embed(cond) for embed, cond in zip(embedders, conds, strict=True)]

            # 5. Denoise.
            for i, t in enumerate(timesteps):
                model_input = torch.cat([latents] * 2) if guided else latents
                model_input = pipe.scheduler.scale_model_input(model_input, t)
                down, mid = None, None
                for net, cond, scale, active in zip(self.nets, conds, scales, windows[i], strict=True):
                    if not active and opts.skip_idle_controlnets:
                        continue
                    self.controlnet_calls += 1
                    d, m = net(model_input, t, encoder_hidden_states=embeds, controlnet_cond=cond,
                               conditioning_scale=scale * active, guess_mode=False, return_dict=False)
                    if down is None:
                        down, mid = d, m
                    else:
                        down = [a + b for a, b in zip(down, d, strict=True)]
                        mid = mid + m
                noise_pred = pipe.unet(model_input, t, encoder_hidden_states=embeds,
                                       down_block_additional_residuals=down, mid_block_additional_residual=mid,
                                       return_dict=False)[0]
                if guided:
                    uncond, cond_noise = noise_pred.chunk(2)
                    noise_pred = uncond + settings.guidance_scale * (cond_noise - uncond)
                latents = pipe.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                if held is not None:  # the kept region follows the original, noised to the next step's level
                    init, masks = held
                    target = init if i + 1 == len(timesteps) else \
                        pipe.scheduler.add_noise(init, noise, timesteps[i + 1:i + 2])
                    latents = masks * target + (1 - masks) * latents

        if output_type == "latent":
            return latents
        # 6. Decode: batched on a GPU; one image at a time on a CPU, where a batch is slower per image.
        latents = latents / pipe.vae.config.scaling_factor
        chunk = count if latents.device.type == "cuda" else 1
        image = torch.cat([pipe.vae.decode(part, return_dict=False)[0] for part in latents.split(chunk)])
        return pipe.image_processor.postprocess(image, output_type=output_type, do_denormalize=[True] * count)
