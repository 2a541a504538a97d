"""Where the generator's models live, and what the run does when the accelerator runs out of memory.

Normally every model stays on the device. After an out-of-memory at batch 1 the run switches to
model offload: each model waits on the CPU and moves to the device for the phase that uses it
(text encoder for the prompt, VAE for encode/decode, the ControlNets with the UNet for the
denoising loop). diffusers' `enable_model_cpu_offload` cannot do this for modomo: it hooks the
MultiControlNetModel's forward, and the sampler calls each ControlNet, and its saved conditioning
embedding, directly, so they would stay on the CPU. The placer moves modules, not hooks, so every
direct call finds its weights where its inputs are.

One `MemoryState` serves the whole run: a batch limit learnt from one style's out-of-memory applies
to every style, and offload, once on, stays on for that run. Where each model sits belongs to the
loaded models, not to a run: the record (`placement`) is kept on the pipe, every placer of that pipe
reads and writes the same one, and a new run's placer starts by putting every model back on the
device, as loading left them, whatever an earlier run on the same models did.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

MODELS = ("text_encoder", "vae", "controlnet", "unet", "image_encoder")  # the image encoder: with --style-ref only
PHASES = {
    "prompt": ("text_encoder",),
    "reference": ("image_encoder",),
    "encode": ("vae",),
    "denoise": ("controlnet", "unet"),
    "decode": ("vae",),
}
DEVICE, HOST = "device", "host"  # where a model was told to be: the execution device, or waiting on the CPU
HOST_DEVICE = torch.device("cpu")
RECORD = "_modomo_placement"  # the pipe's attribute holding its placement record


def placement(pipe) -> dict[str, str]:
    """Where each of the pipe's models was last told to be (DEVICE or HOST); loading puts them all on the device."""
    record = getattr(pipe, RECORD, None)
    if record is None:
        record = dict.fromkeys(MODELS, DEVICE)
        setattr(pipe, RECORD, record)
    return record


def device_of(module: torch.nn.Module) -> torch.device | None:
    """The device of the module's first parameter; None for a module without parameters."""
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else None


def same_device(a: torch.device | None, b: torch.device) -> bool:
    """Whether a tensor on `a` is on `b` ('cuda' and 'cuda:0' alike); an unknown device counts as there."""
    return a is None or (a.type == b.type and (a.index is None or b.index is None or a.index == b.index))


class ModelPlacer:
    """Moves the pipe's models between the device and the CPU, per phase, once offload is on.

    Offload is this placer's (one run's); the record of where each model is is the pipe's, shared by every
    placer of it. A new placer puts every model back on the device: a run starts with the models as loaded."""

    def __init__(self, pipe, device: torch.device):
        self.pipe = pipe
        self.device = torch.device(device)
        self.offloaded = False
        self.moves = 0  # module moves to the device since offload began
        self.restore()

    @property
    def placement(self) -> dict[str, str]:
        return placement(self.pipe)

    @property
    def resident(self) -> set[str]:
        """The models told to be on the device now."""
        return {name for name, spot in self.placement.items() if spot == DEVICE}

    def modules(self) -> dict[str, torch.nn.Module]:
        return {name: getattr(self.pipe, name) for name in MODELS if getattr(self.pipe, name, None) is not None}

    def place(self, name: str, spot: str) -> bool:
        """Put one model on the device or the CPU and record it; True when it had to move."""
        module = getattr(self.pipe, name, None)
        if module is None:  # a model this pipe was loaded without (no IP-Adapter): nothing to move
            self.placement[name] = spot
            return False
        target = self.device if spot == DEVICE else HOST_DEVICE
        if self.placement[name] == spot and same_device(device_of(module), target):
            return False
        module.to(target)
        self.placement[name] = spot
        return True

    def enable(self) -> None:
        """Move every model to the CPU; each phase brings back what it needs."""
        self.offloaded = True
        for name in MODELS:
            self.place(name, HOST)
        free_memory(self.device)

    def restore(self) -> None:
        """Offload off, every model back on the device: as the models were loaded."""
        self.offloaded = False
        for name in MODELS:
            self.place(name, DEVICE)

    @contextmanager
    def phase(self, name: str):
        """Within the block, the phase's models are on the device (and, offloaded, only they are)."""
        wanted = PHASES[name] if self.offloaded else MODELS
        if any([self.place(model, HOST) for model in MODELS if model not in wanted]):
            free_memory(self.device)
        for model in wanted:
            if self.place(model, DEVICE) and self.offloaded:
                self.moves += 1
        yield


def restore_placement(pipe, device: torch.device) -> None:
    """After a run, whatever it did: free what it left on the device, then every model back there."""
    free_memory(device)
    if pipe is not None:
        ModelPlacer(pipe, device)


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
