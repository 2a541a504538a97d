"""Fast mode on a loaded pipeline: the recipe's LoRA fused into the UNet once and its scheduler swapped in.

Fusing adds the LoRA's low-rank product to the UNet's weights and then drops the adapter modules, so a
step costs exactly what a step of the base UNet costs. `FastSwitch` can also put the standard model
back (the bench times plain diffusers at the style's standard settings beside fast mode in one run).
"""

from __future__ import annotations

from pipeline.errors import ModomoError
from pipeline.models.prepacked import forget
from pipeline.models.recipes import RECIPES

ADAPTER = "fast"


def lora_weights(spec, pipe, name: str):
    """What `load_lora_weights` takes for the preset's LoRA of this recipe: a file, or a state dict built in
    the real file's layout for presets with random weights; a clear error when it is not on this machine."""
    from pipeline.models.fast_lora import lora_source, random_lora

    source = lora_source(spec, name)
    if source is None:
        raise ModomoError(missing(spec, name))
    if str(source).startswith("random:"):
        return random_lora(pipe.unet, name)
    return str(source)


def missing(spec, name: str) -> str:
    """The one line that says a recipe's LoRA is not on this machine, and how to fetch it."""
    return (
        f"--fast {name}: the LoRA {RECIPES[name].hub_id} is not on this machine; fetch it with "
        f"`modomo models download {spec.name} --fast --fast-recipe {name}`"
    )


def fuse(pipe, spec, name: str) -> None:
    """Fuse the recipe's LoRA into the UNet (no adapter left behind) and swap in the recipe's scheduler."""
    import diffusers

    recipe = RECIPES[name]
    pipe.load_lora_weights(lora_weights(spec, pipe, name), adapter_name=ADAPTER)
    pipe.fuse_lora(lora_scale=1.0, adapter_names=[ADAPTER])
    pipe.unload_lora_weights()
    forget(pipe.unet)  # fused in place: packs of the weights before are stale
    scheduler = getattr(diffusers, recipe.scheduler)
    pipe.scheduler = scheduler.from_config(pipe.scheduler.config, **recipe.scheduler_config)


class FastSwitch:
    """The standard model and the fused one, on one pipeline: the UNet's standard weights and scheduler are
    kept (on the CPU) so either can be put in place between timed runs."""

    def __init__(self, pipe, spec, name: str):
        self.pipe, self.spec, self.name = pipe, spec, name
        self.weights = {k: v.detach().to("cpu", copy=True) for k, v in pipe.unet.state_dict().items()}
        self.scheduler = pipe.scheduler
        self.fused = False

    def to_fast(self) -> None:
        if not self.fused:
            fuse(self.pipe, self.spec, self.name)
            self.fused = True

    def to_standard(self) -> None:
        if self.fused:
            self.pipe.unet.load_state_dict(self.weights)
            forget(self.pipe.unet)
            self.pipe.scheduler = self.scheduler
            self.fused = False
