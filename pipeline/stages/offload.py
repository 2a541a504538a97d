"""Where the generator's models live, and what the run does when the accelerator runs out of memory.

Normally every model stays on the device. After an out-of-memory at batch 1 the run switches to
model offload: each model waits on the CPU and moves to the device for the phase that uses it
(text encoder for the prompt, VAE for encode/decode, the ControlNets with the UNet for the
denoising loop). diffusers' `enable_model_cpu_offload` cannot do this for modomo: it hooks the
MultiControlNetModel's forward, and the sampler calls each ControlNet, and its saved conditioning
embedding, directly, so they would stay on the CPU. The placer moves modules, not hooks, so every
direct call finds its weights where its inputs are.

One `MemoryState` serves the whole run: a batch limit learnt from one style's out-of-memory applies
to every style, and offload, once on, stays on.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

PHASES = {
    "prompt": ("text_encoder",),
    "encode": ("vae",),
    "denoise": ("controlnet", "unet"),
    "decode": ("vae",),
}


class ModelPlacer:
    """Moves the pipeline's models between the device and the CPU, per phase, once offload is on."""

    def __init__(self, pipe, device: torch.device):
        self.pipe = pipe
        self.device = torch.device(device)
        self.offloaded = False
        self.resident: set[str] = set()  # models on the device while offloaded
        self.moves = 0  # module moves to the device since offload began

    def modules(self) -> dict[str, torch.nn.Module]:
        return {name: getattr(self.pipe, name) for name in ("text_encoder", "vae", "controlnet", "unet")}

    def enable(self) -> None:
        """Move every model to the CPU; each phase brings back what it needs."""
        self.offloaded = True
        for module in self.modules().values():
            module.to("cpu")
        self.resident.clear()
        free_memory(self.device)

    @contextmanager
    def phase(self, name: str):
        """Within the block, the phase's models are on the device (and, offloaded, only they are)."""
        if self.offloaded:
            wanted = set(PHASES[name])
            modules = self.modules()
            for other in self.resident - wanted:
                modules[other].to("cpu")
            free_memory(self.device)
            for model in wanted - self.resident:
                modules[model].to(self.device)
                self.moves += 1
            self.resident = wanted
        yield


def free_memory(device: torch.device) -> None:
    """Return cached blocks to the driver once nothing refers to them any more."""
    if torch.device(device).type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


@dataclass
class MemoryState:
    """The run's one out-of-memory state: the largest batch known to fit, offload, and what happened."""

    placer: ModelPlacer | None = None
    max_batch: int | None = None
    offloaded: bool = False
    events: list[dict] = field(default_factory=list)

    def offload(self) -> None:
        """From now on, each model is on the device only while its phase runs."""
        self.offloaded = True
        if self.placer is not None:
            self.placer.enable()
