"""modomo's denoising loop for SD1.5 + several ControlNets, written as numbered steps like diffusers' own.

It does what `StableDiffusionControlNetPipeline.__call__` does, with the same components, noise and
scheduler, and gives the same images, minus work that cannot change them:

- a ControlNet outside its guidance window (control_guidance_start/end), or at scale 0, is not run
  at all; diffusers runs it and multiplies its output by zero;
- each ControlNet's conditioning embedding (a stack of full-resolution convolutions over the
  control image) is computed once per image instead of at every step, and once for the images of
  a batch that share a control image (a job's --variations);
- prompt embeddings are computed once per prompt, not once per call, and a style reference's image
  embedding (IP-Adapter) once per distinct reference in the run, not once per call.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from pipeline.errors import ModomoError
from pipeline.models.controls import held_controls
from pipeline.stages.offload import ModelPlacer
from pipeline.stages.settings import SpeedOptions, control_windows

__all__ = ["Sampler", "SpeedOptions", "control_nets", "control_windows", "precomputed_conditioning"]


def control_nets(pipe, names) -> list:
    """The pipeline's ControlNets for the named controls, in that order (a stack holds those its run's styles
    use: see settings.held_controls)."""
    held = dict(zip(held_controls(pipe), pipe.controlnet.nets, strict=True))
    missing = [name for name in names if name not in held]
    if missing:
        raise ModomoError(f"the {', '.join(missing)} control needs its ControlNet, which this stack did not load")
    return [held[name] for name in names]


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

    def __init__(
        self,
        pipe,
        options: SpeedOptions | None = None,
        device=None,
        placer: ModelPlacer | None = None,
        references: dict | None = None,
        compiled=None,
    ):
        self.pipe = pipe
        self.compiled = compiled  # models.compiled.Denoisers: --compile's packages, or None (eager)
        self.options = options or SpeedOptions()
        self.device = torch.device(device) if device is not None else pipe._execution_device
        self.placer = placer or ModelPlacer(pipe, self.device)
        self._prompts: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        # A reference's digest -> its image embedding, batch 1; one dict for the run's every style when given.
        self._references: dict[str, torch.Tensor] = references if references is not None else {}
        self.controlnet_calls = 0  # counted: the tests check which ControlNet calls were skipped
        self.reference_encodes = 0  # image encoder runs: once per distinct reference, counted for the tests
        self.nets: list = []  # the ControlNets of the call in progress (its settings' controls)
        self._residuals: tuple | None = None  # the batch's last ControlNet residuals (see `unet`)

    def encode(self, prompt: str, negative_prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(positive, negative) embeddings of one prompt pair, batch 1, cached."""
        key = (prompt, negative_prompt)
        if key not in self._prompts or not self.options.cache_prompts:
            with self.placer.phase("prompt"):
                self._prompts[key] = self.pipe.encode_prompt(prompt, self.device, 1, True, negative_prompt)
        return self._prompts[key]

    def encode_reference(self, reference) -> torch.Tensor:
        """A reference's image embedding (1 x D), cached by its digest with the prompts."""
        key = reference.digest
        if key not in self._references or not self.options.cache_prompts:
            with self.placer.phase("reference"):
                self._references[key] = self.pipe.encode_image(reference.image, self.device, 1)[0]
            self.reference_encodes += 1
        return self._references[key]

    def reference_batch(self, references: list | None, count: int, guided: bool, dtype) -> list | None:
        """The UNet's `image_embeds` as diffusers' `prepare_ip_adapter_image_embeds` makes them: per image its
        reference's embedding (zeros for an image without one: the adapter then runs at scale 0), with guidance
        zeros for the negatives first. None when the pipe has no IP-Adapter."""
        if getattr(self.pipe, "image_encoder", None) is None:
            if references and any(r is not None for r in references):
                raise ModomoError("a style reference needs the IP-Adapter, which these models were loaded without")
            return None
        scale = next((r.scale for r in references or [] if r is not None), 0.0)
        self.pipe.set_ip_adapter_scale(scale)
        made = [self.encode_reference(r) if r is not None else None for r in references or [None] * count]
        width = self.pipe.image_encoder.config.projection_dim
        zero = torch.zeros(1, width, device=self.device, dtype=dtype)
        positive = torch.cat([m.to(dtype) if m is not None else zero for m in made])[:, None]
        return [torch.cat([torch.zeros_like(positive), positive]) if guided else positive]

    def prompt_batch(self, settings, count: int, guided: bool, prompts: list | None = None) -> torch.Tensor:
        """[negative x N, positive x N] for classifier-free guidance, else positive x N. `prompts` gives each
        image its own (prompt, negative) pair (a room found per photo, a manifest row's words)."""
        if prompts is None:
            positive, negative = self.encode(settings.prompt, settings.negative_prompt)
            if guided:
                return torch.cat([negative.expand(count, -1, -1), positive.expand(count, -1, -1)])
            return positive.expand(count, -1, -1)
        pairs = [self.encode(prompt, negative) for prompt, negative in prompts]
        positive = torch.cat([p for p, _ in pairs])
        return torch.cat([torch.cat([n for _, n in pairs]), positive]) if guided else positive

    def control_images(self, controls: list[list], count: int, height: int, width: int, guided: bool) -> list:
        """Per ControlNet, its control images preprocessed exactly as the pipeline does."""
        return [
            self.pipe.prepare_image(
                image=images,
                width=width,
                height=height,
                batch_size=count,
                num_images_per_prompt=1,
                device=self.device,
                dtype=net.dtype,
                do_classifier_free_guidance=guided,
                guess_mode=False,
            )
            for images, net in zip(controls, self.nets, strict=True)
        ]

    def held_region(self, images, keep: list, height: int, width: int, dtype):
        """Latents of the original photos and the latent-size keep masks, for regions kept as they are."""
        pipe = self.pipe
        with self.placer.phase("encode"):
            pixels = pipe.image_processor.preprocess(images, height=height, width=width)
            pixels = pixels.to(self.device, pipe.vae.dtype)
            init = pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor
        masks = torch.stack(
            [torch.from_numpy(k if k is not None else np.zeros((height, width), np.float32)) for k in keep]
        )[:, None].to(self.device, torch.float32)
        masks = torch.nn.functional.interpolate(masks, size=init.shape[-2:], mode="area")
        return init.to(dtype), masks.to(dtype)

    @torch.inference_mode()
    def __call__(
        self,
        settings,
        controls: list[list],
        generators: list[torch.Generator],
        height: int,
        width: int,
        output_type: str = "pil",
        keep: list | None = None,
        originals: list | None = None,
        prompts: list | None = None,
        references: list | None = None,
        starts: list | None = None,
        masks: list | None = None,
    ):
        """Images for one batch. `controls` holds, per ControlNet, one PIL control image per batch item;
        `keep` (float masks, 1 = keep) with `originals` holds those regions to the original photos;
        `prompts`, when given, one (prompt, negative prompt) pair per batch item; `references`, one style
        reference (or None) per batch item, all of one scale; `starts` with `masks` (bool, True = may change),
        one starting picture per item: the pass starts from it at `settings.strength` and holds it outside the
        mask, as `StableDiffusionControlNetInpaintPipeline` does with `image`, `mask_image` and `strength`."""
        pipe = self.pipe
        count = len(generators)
        guided = settings.guidance_scale > 1.0
        self.nets = control_nets(pipe, settings.controls)
        # 1-2. Prompt embeddings (cached per prompt pair) and control images.
        embeds = self.prompt_batch(settings, count, guided, prompts)
        image_embeds = self.reference_batch(references, count, guided, embeds.dtype)
        conds = self.control_images(controls, count, height, width, guided)
        # 3. Timesteps.
        pipe.scheduler.set_timesteps(settings.steps, device=self.device)
        # 4. Initial latents: noise from one generator per image, as diffusers draws it; or a starting picture
        # noised to where the shortened schedule begins.
        if starts is not None:
            begin = self.start_from(starts, masks, generators, settings, height, width, embeds.dtype)
        else:
            shape = (
                count,
                pipe.unet.config.in_channels,
                height // pipe.vae_scale_factor,
                width // pipe.vae_scale_factor,
            )
            noise = randn_tensor(shape, generator=generators, device=self.device, dtype=embeds.dtype)
            held = None
            if keep is not None and any(k is not None for k in keep):
                held = self.held_region(originals, keep, height, width, embeds.dtype)
            begin = Start(pipe.scheduler.timesteps, noise * pipe.scheduler.init_noise_sigma, noise, held)
        # 5. Denoise (a stochastic scheduler, LCM's or TCD's, draws its noise from each image's generator).
        extra = pipe.prepare_extra_step_kwargs(generators, settings.eta if settings.eta is not None else 0.0)
        with self.placer.phase("denoise"), self.compiled_batch(count, height, width, embeds.dtype):
            latents = self.denoise(
                settings, embeds, conds, begin, guided, [distinct(c) for c in controls], extra, image_embeds
            )
        if output_type == "latent":
            return latents
        # 6. Decode.
        with self.placer.phase("decode"):
            return self.decode(latents, output_type)

    def denoise(
        self,
        settings,
        embeds,
        conds,
        begin: Start,
        guided: bool,
        rows: list | None = None,
        extra: dict | None = None,
        images: list | None = None,
    ) -> torch.Tensor:
        """The loop: ControlNet residuals (idle ones skipped), UNet, guidance, scheduler step, held region.
        `begin` holds the timesteps to run, the first latents, the noise and the held region; `rows`, per
        ControlNet, says which batch items share a control image (see `distinct`); `images` are the UNet's
        IP-Adapter image embeddings (the ControlNets see the text alone, as in diffusers)."""
        pipe, opts = self.pipe, self.options
        timesteps, latents, noise, held = begin
        windows = control_windows(len(timesteps), settings.control_guidance_start, settings.control_guidance_end)
        scales = settings.controlnet_conditioning_scale
        used = [
            not opts.skip_idle_controlnets or (scale != 0 and any(step[k] for step in windows))
            for k, scale in enumerate(scales)
        ]
        added = {"image_embeds": images} if images is not None else None
        with precomputed_conditioning(self.nets if opts.cache_control_embeddings else []) as embedders:
            if opts.cache_control_embeddings:  # a ControlNet that never runs needs no embedding
                rows = rows or [None] * len(conds)
                conds = [
                    embed_once(embed, cond, row, guided) if use else cond
                    for embed, cond, use, row in zip(embedders, conds, used, rows, strict=True)
                ]
            for i, t in enumerate(timesteps):
                model_input = torch.cat([latents] * 2) if guided else latents
                model_input = pipe.scheduler.scale_model_input(model_input, t)
                down, mid = self.residuals(model_input, t, embeds, conds, scales, windows[i])
                noise_pred = self.unet(model_input, t, embeds, down, mid, added)
                if guided:
                    uncond, cond_noise = noise_pred.chunk(2)
                    noise_pred = uncond + settings.guidance_scale * (cond_noise - uncond)
                latents = pipe.scheduler.step(noise_pred, t, latents, **(extra or {}), return_dict=False)[0]
                if held is not None:  # the kept region follows the original, noised to the next step's level
                    init, masks = held
                    target = (
                        init
                        if i + 1 == len(timesteps)
                        else pipe.scheduler.add_noise(init, noise, timesteps[i + 1 : i + 2])
                    )
                    latents = masks * target + (1 - masks) * latents
        return latents

    def start_from(self, starts, masks, generators, settings, height: int, width: int, dtype) -> Start:
        """The first latents of a pass that starts from pictures, drawn as `StableDiffusionControlNetInpaintPipeline`
        draws them: the schedule shortened to the settings' `strength` (its `get_timesteps`), each picture encoded
        by the VAE with a sample from its own generator, then its noise from the same generator, the picture noised
        to the first timestep; masks binarized at the working size and taken to the latent grid by nearest
        neighbour. The
        pipeline also encodes the masked picture (a 9-channel inpainting UNet's input; SD1.5's UNet never reads it):
        not computed here, but each generator draws the same sample from it, so a stochastic scheduler (--fast)
        draws the noise diffusers' does."""
        from diffusers.pipelines.controlnet.pipeline_controlnet_inpaint import retrieve_latents

        pipe, scheduler, strength = self.pipe, self.pipe.scheduler, settings.strength
        timesteps = shortened(scheduler, settings.steps, strength)
        with self.placer.phase("encode"):
            pixels = pipe.image_processor.preprocess(starts, height=height, width=width).to(self.device, dtype)
            encoded = [
                retrieve_latents(pipe.vae.encode(p[None]), generator=g) for p, g in zip(pixels, generators, strict=True)
            ]
        init = torch.cat(encoded) * pipe.vae.config.scaling_factor
        noise = randn_tensor(init.shape, generator=generators, device=self.device, dtype=dtype)
        for g in generators:  # the masked picture's sample, drawn and dropped
            randn_tensor((1, *init.shape[1:]), generator=g, device=self.device, dtype=dtype)
        if strength >= 1.0:
            latents = noise * scheduler.init_noise_sigma
        else:
            latents = scheduler.add_noise(init, noise, timesteps[:1].repeat(len(generators)))
        return Start(timesteps, latents, noise, (init, 1 - self.latent_masks(masks, height, width, dtype)))

    def latent_masks(self, masks, height: int, width: int, dtype) -> torch.Tensor:
        """Bool masks as diffusers' inpaint pipelines take them: binarized at the working size by their mask
        processor, then to the latent grid by nearest neighbour (1 = may change)."""
        from diffusers.image_processor import VaeImageProcessor

        pipe = self.pipe
        masker = VaeImageProcessor(
            pipe.vae_scale_factor, do_normalize=False, do_binarize=True, do_convert_grayscale=True
        )
        binary = masker.preprocess([mask_picture(m) for m in masks], height=height, width=width)
        size = (height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
        return torch.nn.functional.interpolate(binary, size=size).to(self.device, dtype)

    def compiled_batch(self, count: int, height: int, width: int, dtype):
        """The batch's shape told to --compile's packages (a batch of that shape runs compiled or eager)."""
        self._residuals = None  # the last residuals of this batch: a step without ControlNets adds zeros like them
        if self.compiled is None:
            return nullcontext()
        return self.compiled.batch(f"{width}x{height} batch {count} {str(dtype).removeprefix('torch.')}", count)

    def unet(self, model_input, t, embeds, down, mid, added):
        """The UNet's noise prediction: its compiled package, or eager (always with an IP-Adapter's image
        embeddings, or LoRA adapters loaded: their scales change per style, and a package would freeze them). A
        compiled UNet takes the ControlNets' residuals as inputs: at a step where none runs, it adds zeros, which
        change nothing."""

        def eager():
            return self.pipe.unet(
                model_input,
                t,
                encoder_hidden_states=embeds,
                down_block_additional_residuals=down,
                mid_block_additional_residual=mid,
                added_cond_kwargs=added,
                return_dict=False,
            )[0]

        if self.compiled is None or added is not None or getattr(self.pipe.unet, "peft_config", None):
            return eager()
        if down is not None:
            self._residuals = (*down, mid)
        residuals = self._residuals if down is not None else tuple(map(torch.zeros_like, self._residuals or ()))
        return self.compiled.call("unet", self.pipe.unet, (model_input, t, embeds, *residuals), eager)

    def control(self, net, model_input, t, embeds, cond, scale: float):
        """One ControlNet's residuals at `scale`: compiled at scale 1 and scaled after (what the model does inside),
        or eager."""

        def eager():
            return net(
                model_input,
                t,
                encoder_hidden_states=embeds,
                controlnet_cond=cond,
                conditioning_scale=scale,
                guess_mode=False,
                return_dict=False,
            )

        if self.compiled is None:
            return eager()
        made = self.compiled.call("controlnet", net, (model_input, t, embeds, cond), eager)
        if torch.is_tensor(made[0]):  # the package's flat tuple: the down block residuals, then the mid block's
            made = ([r * scale for r in made[:-1]], made[-1] * scale)
        return made

    def residuals(self, model_input, t, embeds, conds, scales, window):
        """The sum of the ControlNets' residuals at one step. A ControlNet outside its window, or at scale 0,
        adds exactly zero: skipped (the shortcut), or run at scale 0 as diffusers does."""
        down, mid = None, None
        for net, cond, scale, inside in zip(self.nets, conds, scales, window, strict=True):
            if (not inside or scale == 0) and self.options.skip_idle_controlnets:
                continue
            self.controlnet_calls += 1
            d, m = self.control(net, model_input, t, embeds, cond, scale * inside)
            if down is None:
                down, mid = d, m
            else:
                down = [a + b for a, b in zip(down, d, strict=True)]
                mid = mid + m
        return down, mid

    def decode(self, latents: torch.Tensor, output_type: str):
        """VAE decode: batched on a GPU; one image at a time on a CPU, where a batch is slower per image."""
        pipe = self.pipe
        count = latents.shape[0]
        latents = latents / pipe.vae.config.scaling_factor
        chunk = count if latents.device.type == "cuda" else 1
        image = torch.cat([pipe.vae.decode(part, return_dict=False)[0] for part in latents.split(chunk)])
        return pipe.image_processor.postprocess(image, output_type=output_type, do_denormalize=[True] * count)


class Start(NamedTuple):
    """Where a denoising run begins: the timesteps it runs, the first latents, the noise they were drawn with, and
    the held region (the original's latents and the latent-size masks, 1 = hold), or None."""

    timesteps: torch.Tensor
    latents: torch.Tensor
    noise: torch.Tensor
    held: tuple | None


def shortened(scheduler, steps: int, strength: float) -> torch.Tensor:
    """The last `strength` share of a schedule of `steps`, the scheduler told where it begins: diffusers'
    `get_timesteps` of its img2img and inpaint pipelines."""
    begin = max(steps - min(int(steps * strength), steps), 0) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:]


def mask_picture(mask):
    """A bool mask (True = may change) as the grey picture diffusers' mask processor takes."""
    from PIL import Image

    return Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255, mode="L")


def distinct(images: list) -> tuple[list[int], list[int]]:
    """The first batch item of each distinct control image (the same object) and, per item, which one it is."""
    first: list[int] = []
    index: list[int] = []
    seen: dict[int, int] = {}
    for i, image in enumerate(images):
        if id(image) not in seen:
            seen[id(image)] = len(first)
            first.append(i)
        index.append(seen[id(image)])
    return first, index


def embed_once(embed, cond: torch.Tensor, rows: tuple[list[int], list[int]] | None, guided: bool) -> torch.Tensor:
    """A ControlNet's conditioning embedding of a batch, computed once per distinct control image.

    `cond` holds one row per batch item (twice over, negative then positive, with guidance)."""
    count = cond.shape[0] // 2 if guided else cond.shape[0]
    if rows is None or len(rows[0]) == count:
        return embed(cond)
    first, index = rows
    made = embed(cond[first])[index]
    return torch.cat([made, made]) if guided else made
