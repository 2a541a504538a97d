"""Generate stage: SD1.5 with depth + canny ControlNets (diffusers MultiControlNet), UniPC, a seed per image."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from pipeline.frames import Frame


@dataclass(frozen=True)
class GenerateSettings:
    """Everything that shapes the generated image, apart from the seed and the control images."""

    prompt: str
    negative_prompt: str
    steps: int
    guidance_scale: float
    controlnet_conditioning_scale: tuple[float, float]  # depth, canny
    control_guidance_start: tuple[float, float]
    control_guidance_end: tuple[float, float]

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class Generator:
    """Renders frames that share a size in one pipeline call, each with its own seeded generator."""

    def __init__(self, pipe, settings: GenerateSettings, device):
        self.pipe = pipe
        self.settings = settings
        self.device = device

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        groups: dict[tuple[int, int], list[Frame]] = {}
        for frame in frames:
            if frame.ok:
                groups.setdefault(frame.image.size, []).append(frame)
        for group in groups.values():
            for frame, image in zip(group, self.render(group), strict=True):
                frame.result = image
        return frames

    @torch.inference_mode()
    def render(self, group: list[Frame]):
        """One pipe() call for frames of one size; returns PIL images in order."""
        s = self.settings
        width, height = group[0].image.size
        # Generators live on the CPU so a seed gives the same noise on any device.
        generators = [torch.Generator("cpu").manual_seed(f.seed) for f in group]
        output = self.pipe(
            prompt=[s.prompt] * len(group),
            negative_prompt=[s.negative_prompt] * len(group),
            image=[[f.depth, f.edges] for f in group],  # per image: [depth, canny]
            height=height,
            width=width,
            num_inference_steps=s.steps,
            guidance_scale=s.guidance_scale,
            controlnet_conditioning_scale=list(s.controlnet_conditioning_scale),
            control_guidance_start=list(s.control_guidance_start),
            control_guidance_end=list(s.control_guidance_end),
            generator=generators,
            output_type="pil",
        )
        return output.images
