"""Generate stage: SD1.5 with depth + canny (+ lines) ControlNets (diffusers MultiControlNet), UniPC, a seed per
image."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.frames import Frame
from pipeline.stages.offload import MemoryState, ModelPlacer, free_memory
from pipeline.stages.sampling import Sampler
from pipeline.stages.settings import GenerateSettings, SpeedOptions

__all__ = ["GenerateSettings", "Generator", "PlainDiffusersGenerator", "render_with_diffusers"]


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's out-of-memory error (also raised by other accelerators as a RuntimeError)."""
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


class Generator:
    """Renders frames that share a size in one sampler call, each with its own seeded generator.

    On out-of-memory it halves the batch and retries; at one image it moves the models to the device
    only for the phase that uses them (`offload.ModelPlacer`) and retries once more. The state (batch
    limit, offload, events) is the run's `MemoryState`, shared with every other style's Generator.
    """

    def __init__(
        self,
        pipe,
        settings: GenerateSettings,
        device,
        options: SpeedOptions | None = None,
        memory: MemoryState | None = None,
        references: dict | None = None,
        compiled=None,
    ):
        self.pipe = pipe
        self.settings = settings
        self.device = torch.device(device)
        self.memory = memory or MemoryState()
        if self.memory.placer is None and pipe is not None:
            self.memory.placer = ModelPlacer(pipe, self.device)
        self.sampler = (
            Sampler(pipe, options, self.device, self.memory.placer, references, compiled) if pipe is not None else None
        )
        self.calls = 0  # sampler calls that rendered, and the frames they rendered: the batching report
        self.rendered = 0

    @property
    def events(self) -> list[dict]:
        return self.memory.events

    @property
    def max_batch(self) -> int | None:
        return self.memory.max_batch

    @property
    def offloaded(self) -> bool:
        return self.memory.offloaded

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        groups: dict[tuple, list[Frame]] = {}
        for frame in frames:  # one sampler call per size and reference scale (the adapter's scale is per call)
            if frame.ok and nothing_to_change(frame):
                frame.result = frame.image.copy()
            elif frame.ok:
                groups.setdefault((frame.image.size, reference_scale(frame)), []).append(frame)
        for group in groups.values():
            self.render_chunks(group)
        return frames

    def render_chunks(self, group: list[Frame]) -> None:
        """Render in chunks of the largest batch known to fit; the limit may drop while this runs."""
        start = 0
        while start < len(group):
            size = min(self.memory.max_batch or len(group), len(group) - start)
            self.render_safely(group[start : start + size])
            start += size

    def render_safely(self, group: list[Frame]) -> None:
        """Render, stepping down batch size and then offloading on out-of-memory; never loses a frame.

        Recovery happens after the `except` block: inside it, the exception's traceback still holds the
        failed forward's tensors, and freeing the cache there frees little."""
        images = None
        try:
            images = self.render(group)
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc) or (len(group) == 1 and self.offloaded):
                raise
        if images is None:
            free_memory(self.device)
            self.step_down(group)
            return
        self.calls += 1
        self.rendered += len(group)
        for frame, image in zip(group, images, strict=True):
            frame.result = image

    def step_down(self, group: list[Frame]) -> None:
        """After an out-of-memory: half the batch, or at one image, model offload; then render again."""
        if len(group) > 1:
            half = (len(group) + 1) // 2
            self.memory.max_batch = half
            self.events.append({"event": "out_of_memory", "batch": len(group), "action": f"batch {half}"})
        else:
            self.events.append({"event": "out_of_memory", "batch": 1, "action": "model cpu offload"})
            self.offload()
        self.render_chunks(group)

    def offload(self) -> None:
        """From now on, each model is on the device only while its phase runs (all styles: one placer)."""
        self.memory.offload()

    def render(self, group: list[Frame]):
        """One denoising run for frames of one size; returns PIL images in order."""
        width, height = group[0].image.size
        # Generators live on the CPU so a seed gives the same noise on any device.
        generators = [torch.Generator("cpu").manual_seed(f.seed) for f in group]
        controls = [[control_image(f, name) for f in group] for name in self.settings.controls]
        keep = [f.keep for f in group] if any(f.keep is not None for f in group) else None
        prompts = [prompt_pair(self.settings, f) for f in group]
        same = all(pair == (self.settings.prompt, self.settings.negative_prompt) for pair in prompts)
        references = [f.reference for f in group] if any(f.reference is not None for f in group) else None
        starts = [f.start or f.image for f in group] if self.settings.inpaints else None
        return self.sampler(
            self.settings,
            controls,
            generators,
            height,
            width,
            keep=None if starts else keep,
            originals=[f.image for f in group] if keep and not starts else None,
            prompts=None if same else prompts,
            references=references,
            starts=starts,
            masks=[f.changes for f in group] if starts else None,
        )


class PlainDiffusersGenerator:
    """The baseline: `StableDiffusionControlNetPipeline.__call__` once per image, as diffusers documents it."""

    def __init__(self, pipe, settings: GenerateSettings):
        self.pipe = diffusers_pipe(pipe, settings.controls, inpaint=settings.inpaints)
        self.settings = settings
        self.events: list[dict] = []
        self.calls = 0
        self.rendered = 0

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if frame.ok and nothing_to_change(frame):
                frame.result = frame.image.copy()
            elif frame.ok:
                frame.result = render_with_diffusers(self.pipe, self.settings, frame)
                self.calls += 1
                self.rendered += 1
        return frames


def reference_scale(frame: Frame) -> float:
    """The IP-Adapter scale a frame renders at: its reference's, 0 without one."""
    return frame.reference.scale if frame.reference is not None else 0.0


def reference_kwargs(pipe, frame: Frame, guided: bool) -> dict:
    """What `pipe()` takes for a frame's reference, as diffusers documents it (`set_ip_adapter_scale`, then
    `ip_adapter_image`); with the adapter loaded and no reference, scale 0 and a zero embedding."""
    if getattr(pipe, "image_encoder", None) is None:
        return {}
    pipe.set_ip_adapter_scale(reference_scale(frame))
    if frame.reference is not None:
        return {"ip_adapter_image": frame.reference.image}
    width = pipe.image_encoder.config.projection_dim
    rows = 2 if guided else 1  # diffusers reads a guided embedding as [negative, positive]
    return {"ip_adapter_image_embeds": [torch.zeros(rows, 1, width, device=pipe.device, dtype=pipe.unet.dtype)]}


def control_image(frame: Frame, name: str):
    """A frame's control image for one control (models.controls.CONTROLS): depth, canny (its edges), lines, or
    inpaint (the photo with what may change blanked)."""
    if name == "inpaint":
        return inpaint_control(frame.image, frame.changes)
    return {"depth": frame.depth, "canny": frame.edges, "lines": frame.lines}[name]


def inpaint_control(image, removal) -> torch.Tensor:
    """The inpaint ControlNet's input (control_v11p_sd15_inpaint): the picture in [0, 1], 1 x 3 x H x W, with the
    pixels that may change set to -1, as its model card makes it."""
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    if removal is not None:
        pixels[torch.from_numpy(np.asarray(removal, dtype=bool))] = -1.0
    return pixels.permute(2, 0, 1)[None]


def nothing_to_change(frame: Frame) -> bool:
    """A declutter that found nothing to take out, a staging's second pass with no furniture added: its result is
    the photo, and no model runs for it."""
    return frame.changes is not None and not frame.changes.any()


def prompt_pair(settings: GenerateSettings, frame: Frame) -> tuple[str, str]:
    """The frame's own (prompt, negative prompt) when it has them (its room, its manifest row), else the style's."""
    return (frame.prompt or settings.prompt, frame.negative_prompt or settings.negative_prompt)


def diffusers_pipe(pipe, controls, inpaint: bool = False):
    """The pipeline with just the named controls' ControlNets, as a user of diffusers would build it for them
    (the same modules, nothing copied); the pipeline itself when it holds exactly those. With `inpaint`, diffusers'
    `StableDiffusionControlNetInpaintPipeline` over the same modules (a pass that starts from a picture)."""
    from diffusers import StableDiffusionControlNetInpaintPipeline
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    from pipeline.models.controls import held_controls, name_controls
    from pipeline.stages.sampling import control_nets

    if pipe is None or (held_controls(pipe) == tuple(controls) and not inpaint):
        return pipe
    multi = MultiControlNetModel(control_nets(pipe, controls))
    name_controls(multi, controls)
    kind = StableDiffusionControlNetInpaintPipeline if inpaint else type(pipe)
    view = kind(**{**pipe.components, "controlnet": multi}, requires_safety_checker=False)
    view.set_progress_bar_config(disable=True)
    return view


def render_with_diffusers(pipe, settings: GenerateSettings, frame: Frame):
    """The plain diffusers way, one pipe() call per image: the baseline the bench compares against. A pass that
    inpaints (a declutter, a staging) is `StableDiffusionControlNetInpaintPipeline`'s `image`, `mask_image` and
    `strength`, as its documentation shows."""
    from pipeline.stages.sampling import mask_picture

    width, height = frame.image.size
    prompt, negative = prompt_pair(settings, frame)
    controls = [control_image(frame, name) for name in settings.controls]
    if settings.inpaints:
        start = frame.start or frame.image
        given = {"image": start, "mask_image": mask_picture(frame.changes), "control_image": controls}
        given["strength"] = settings.strength
    else:
        given = {"image": controls}
    return pipe(
        prompt=prompt,
        negative_prompt=negative,
        **given,
        height=height,
        width=width,
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        controlnet_conditioning_scale=list(settings.controlnet_conditioning_scale),
        control_guidance_start=list(settings.control_guidance_start),
        control_guidance_end=list(settings.control_guidance_end),
        generator=torch.Generator("cpu").manual_seed(frame.seed),
        eta=settings.eta if settings.eta is not None else 0.0,
        output_type="pil",
        **reference_kwargs(pipe, frame, settings.guidance_scale > 1.0),
    ).images[0]
