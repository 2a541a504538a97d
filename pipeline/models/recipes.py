"""`--fast`: few-step sampling with a distillation LoRA fused into the UNet once, at load.

Each recipe is a public LoRA for SD1.5 with the scheduler, step count and guidance its authors publish:

- `lcm` (default): `latent-consistency/lcm-lora-sdv1-5`, `pytorch_lora_weights.safetensors`, with
  `LCMScheduler`. Its model card: "reduce the number of inference steps to only between 2 - 8 steps",
  "either disable guidance_scale or use values between 1.0 and 2.0". modomo takes 6 steps at guidance
  1.0: classifier-free guidance is off, so each step runs the UNet and ControlNets at half batch.
- `tcd`: `h1t/TCD-SD15-LoRA`, `pytorch_lora_weights.safetensors`, with `TCDScheduler`. Its model card
  runs 4 steps, `guidance_scale=0` and `eta=0.3` ("a value of 0.3 often yields good results").
- `hyper`: `ByteDance/Hyper-SD`, `Hyper-SD15-8steps-lora.safetensors`, with `DDIMScheduler` and
  `timestep_spacing="trailing"` (the model card's setting for its multi-step LoRAs), 8 steps, no
  guidance.

Guidance 0 and 1.0 are the same thing in diffusers (guidance applies only above 1), so every recipe
records 1.0. A style's `[fast]` table may lighten the ControlNets or change the steps for fast mode:
few-step models often follow a strong control too literally.

This module is plain data (no torch), so options are checked before any model library loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recipe:
    """A few-step recipe: the LoRA to fuse, the scheduler to sample with, and its published settings."""

    name: str
    repo: str
    file: str
    scheduler: str  # a diffusers scheduler class name
    steps: int
    guidance_scale: float = 1.0
    eta: float | None = None  # the scheduler's stochasticity (TCD's gamma), passed to each step
    scheduler_config: dict = field(default_factory=dict)  # overrides of the base scheduler's config
    source: str = ""  # where the settings are published

    @property
    def hub_id(self) -> str:
        return f"{self.repo}/{self.file}"

    def to_json(self) -> dict:
        return {
            "recipe": self.name,
            "lora": self.hub_id,
            "scheduler": self.scheduler,
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            **({"eta": self.eta} if self.eta is not None else {}),
            **({"scheduler_config": dict(self.scheduler_config)} if self.scheduler_config else {}),
        }


RECIPES: dict[str, Recipe] = {
    "lcm": Recipe(
        "lcm",
        "latent-consistency/lcm-lora-sdv1-5",
        "pytorch_lora_weights.safetensors",
        "LCMScheduler",
        steps=6,
        source="https://huggingface.co/latent-consistency/lcm-lora-sdv1-5",
    ),
    "tcd": Recipe(
        "tcd",
        "h1t/TCD-SD15-LoRA",
        "pytorch_lora_weights.safetensors",
        "TCDScheduler",
        steps=4,
        eta=0.3,
        source="https://huggingface.co/h1t/TCD-SD15-LoRA",
    ),
    "hyper": Recipe(
        "hyper",
        "ByteDance/Hyper-SD",
        "Hyper-SD15-8steps-lora.safetensors",
        "DDIMScheduler",
        steps=8,
        scheduler_config={"timestep_spacing": "trailing"},
        source="https://huggingface.co/ByteDance/Hyper-SD",
    ),
}
DEFAULT_RECIPE = "lcm"
FAST_OVERRIDES = ("steps", "guidance_scale", "depth_scale", "canny_scale", "depth_end", "canny_end")


def recipe(name: str | None) -> Recipe | None:
    """The recipe of that name (None: not fast); a usage error names the choices."""
    if name is None:
        return None
    if name not in RECIPES:
        from pipeline.errors import UsageError

        raise UsageError(f"--fast-recipe {name!r}: choose {', '.join(RECIPES)}")
    return RECIPES[name]
