"""What shapes a generated image, and which shortcuts the sampler takes: plain data, no torch.

The run's configuration (`pipeline.config`) and its plan are built from these before any model
library is imported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.models.controls import DEFAULT_CONTROLS


@dataclass(frozen=True)
class GenerateSettings:
    """Everything that shapes the generated image, apart from the seed and the control images."""

    prompt: str
    negative_prompt: str
    steps: int
    guidance_scale: float
    controlnet_conditioning_scale: tuple[float, ...]  # one per control, in the order of `controls`
    control_guidance_start: tuple[float, ...]
    control_guidance_end: tuple[float, ...]
    eta: float | None = None  # the scheduler's stochasticity, for schedulers that take one (TCD's gamma)
    controls: tuple[str, ...] = DEFAULT_CONTROLS  # which ControlNets steer (models.controls.CONTROLS), in order
    strength: float = 1.0  # how far from the starting picture the sampler goes: 1 starts from noise (a restyle)

    @property
    def inpaints(self) -> bool:
        """Whether the pass starts from a picture and holds it outside a mask (a declutter, a staging): strength
        below 1, or the inpaint ControlNet among its controls."""
        return self.strength < 1.0 or "inpaint" in self.controls

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# --fidelity: per level, the factor on every control's scale and how far each window's end moves: toward the last
# step by that share of what is left (strict), or back toward the window's start by that share of the window (loose)
FIDELITY_RULES = {"loose": (0.75, -0.25), "balanced": (1.0, 0.0), "strict": (1.25, 0.5)}
MAX_CONTROL_SCALE = 2.0


def with_fidelity(scale: float, start: float, end: float, level: str) -> tuple[float, float, float]:
    """One control's (scale, start, end) at a fidelity level; `balanced` leaves the style's as they are."""
    factor, reach = FIDELITY_RULES[level]
    moved = end + (1.0 - end) * reach if reach >= 0 else end + (end - start) * reach
    return min(MAX_CONTROL_SCALE, round(scale * factor, 4)), start, round(moved, 4)


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
