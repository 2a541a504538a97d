"""What shapes a generated image, and which shortcuts the sampler takes: plain data, no torch.

The run's configuration (`pipeline.config`) and its plan are built from these before any model
library is imported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


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
    eta: float | None = None  # the scheduler's stochasticity, for schedulers that take one (TCD's gamma)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


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
