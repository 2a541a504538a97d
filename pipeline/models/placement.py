"""Where and how the models are placed: the device (`--device`) and the load options (precision, memory layout,
which optional models come along)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.errors import ModomoError
from pipeline.models.controls import STYLE_CONTROLS


def pick_device(name: str = "auto") -> torch.device:
    """`auto` is the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ModomoError(f"--device {name!r}: not a torch device (try auto, cpu, cuda, cuda:1)", 2) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModomoError(f"--device {name}: CUDA is not available on this machine", 2)
    return device


@dataclass(frozen=True)
class LoadOptions:
    """How the models are placed: precision and memory layout ('auto' picks per device)."""

    dtype: str = "auto"  # auto, fp16, bf16, fp32 (pipeline.models.precision)
    channels_last: str = "auto"  # auto, on, off
    fast: str | None = None  # a few-step recipe (pipeline.models.recipes) whose LoRA is fused into the UNet at load
    # the ControlNets to load: those the run steers with (lines and inpaint only when the preset has them); by
    # default every one a style can steer with, not --mode declutter's inpaint
    controls: tuple[str, ...] = STYLE_CONTROLS
    segmenter: bool = True  # the scene segmentation model too, when the preset has one (--preserve window, ...)
    style_ref: bool = False  # the IP-Adapter and its image encoder too (--style-ref, a style's reference, room sets)
    lama: bool = False  # LaMa too, when the preset has it (--mode declutter's first fill)

    def torch_dtype(self, device: torch.device) -> torch.dtype:
        """The run's format on this device: `auto` by the device (see pipeline.models.precision)."""
        from pipeline.models.precision import DTYPES, resolve

        return DTYPES[resolve(self.dtype, device)]

    def lay_out(self, pipe, device: torch.device, dtype: torch.dtype) -> None:
        """Put the models `channels_last_modules` names in the channels-last layout, and make the layers of those
        `packed_modules` names pack their weights once (pipeline.models.prepacked)."""
        from pipeline.models.prepacked import prepack

        for module in self.channels_last_modules(pipe, device, dtype):
            module.to(memory_format=torch.channels_last)
        prepack(self.packed_modules(pipe, device, dtype))

    def packed_modules(self, pipe, device: torch.device, dtype: torch.dtype) -> list:
        """Which models' layers pack their weights once: in bf16 on a CPU whose oneDNN runs bf16, the denoising
        loop's (the UNet, every ControlNet) and the VAE, where the memory holds their packs; none elsewhere."""
        from pipeline.models.prepacked import available, fits

        if device.type != "cpu" or dtype != torch.bfloat16 or not available():
            return []
        models = [pipe.unet, pipe.vae, *pipe.controlnet.nets]
        return models if fits(models) else []

    def channels_last_modules(self, pipe, device: torch.device, dtype: torch.dtype) -> list:
        """Which models get the channels-last layout: by default on CUDA, and in bf16 on the CPU, all (there
        oneDNN's bf16 convolutions take it as it is instead of reordering every input: the full-size UNet's call
        10 % and the ControlNets' 11 % faster, docs/benchmarking.md); in fp32 on the CPU only the VAE, the one
        it speeds up there (17 % on its decode; the UNet runs 4 % slower)."""
        every = [pipe.unet, pipe.vae, *pipe.controlnet.nets]
        everywhere = device.type == "cuda" or dtype == torch.bfloat16
        if self.channels_last == "on" or (self.channels_last == "auto" and everywhere):
            return every
        return [pipe.vae] if self.channels_last == "auto" else []
