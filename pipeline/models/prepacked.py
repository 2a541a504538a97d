"""Weights packed once for oneDNN in eager bf16 runs on the CPU. A bf16 `torch.nn.Conv2d` or `Linear` call hands
oneDNN the weights as stored, and oneDNN reorders them into its blocked layout at every call: on the full-size
UNet at 256x192, 98 convolution reorders a call, about a sixth of it. A packed layer reorders its weights once,
at its first call, and calls oneDNN's own kernels (`mkldnn._convolution_pointwise`, `_linear_pointwise`: what
inductor's frozen graphs call) on them after; a UNet or ControlNet call ran 1.16x-1.18x faster with the same
output (docs/benchmarking.md).

The layers keep their class's every other behaviour (they are the same modules, their class swapped for a
subclass): LoRA adapters wrap them as they wrap any `Conv2d` or `Linear`, `torch.export` traces the plain call,
and anything that does not fit (another dtype, another device, a contiguous input, gradients on) takes the plain
call too. The packs are held beside the weights, not in them (about the weights' size again), and `forget` drops
them when the weights change (a fused LoRA, the standard weights put back) or a compiled package takes over.
A run packs only where the memory available holds the packs twice over (`fits`), and `MODOMO_PREPACK=off` leaves
every layer plain."""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import cache

import torch

PACK = "_modomo_packed"  # the attribute a packed layer keeps its pack in: (pack, weight version, weight address)
# the input a pack is laid out for: fixed, so a layer's pack, and so its output, does not depend on which shape
# happened to come first in a run (packed for one size, a layer gives the same output at any other)
CONV_HINT = (1, 64, 64)  # batch, height, width
LINEAR_HINT = 1024  # rows
HEADROOM = 2  # the packs are made only where the memory available holds them this many times over


@cache
def available() -> bool:
    """Whether this CPU runs oneDNN's bf16 kernels (AVX-512 BF16 or AMX), and packing is not switched off."""
    if os.environ.get("MODOMO_PREPACK", "").lower() == "off":
        return False
    mkldnn = torch.backends.mkldnn
    return bool(mkldnn.is_available() and mkldnn.enabled and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _plain(layer: torch.nn.Module, x: torch.Tensor) -> bool:
    """Whether this call takes the plain path: anything but a bf16 inference call on the CPU, while tracing too."""
    weight = layer.weight
    return (
        x.dtype != torch.bfloat16
        or weight.dtype != torch.bfloat16
        or x.device.type != "cpu"
        or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
    )


def _pack(layer: torch.nn.Module, make) -> torch.Tensor:
    """The layer's pack, made again when its weights were replaced or changed in place since."""
    weight = layer.weight
    stamp = (weight._version, weight.data_ptr())
    held = layer.__dict__.get(PACK)
    if held is None or held[1:] != stamp:
        with torch.no_grad():
            held = (make(weight.detach()), *stamp)
        layer.__dict__[PACK] = held
    return held[0]


class PackedConv2d(torch.nn.Conv2d):
    """A `Conv2d` whose bf16 CPU calls run on weights packed once (channels-last inputs, as a bf16 CPU run's)."""

    def _conv_forward(self, x, weight, bias):
        if _plain(self, x) or weight is not self.weight or not x.is_contiguous(memory_format=torch.channels_last):
            return super()._conv_forward(x, weight, bias)
        args = (list(self.padding), list(self.stride), list(self.dilation), self.groups)
        hint = [CONV_HINT[0], self.in_channels, *CONV_HINT[1:]]
        packed = _pack(self, lambda w: torch._C._nn.mkldnn_reorder_conv2d_weight(w.to_mkldnn(), *args, hint))
        return torch.ops.mkldnn._convolution_pointwise(x, packed, bias, *args, "none", [], "")


class PackedLinear(torch.nn.Linear):
    """A `Linear` whose bf16 CPU calls run on weights packed once."""

    def forward(self, x):
        if _plain(self, x):
            return super().forward(x)
        packed = _pack(self, lambda w: torch.ops.mkldnn._reorder_linear_weight(w, LINEAR_HINT))
        return torch.ops.mkldnn._linear_pointwise(x, packed, self.bias, "none", [], "")


PLAIN = {PackedConv2d: torch.nn.Conv2d, PackedLinear: torch.nn.Linear}


def _packable(module: torch.nn.Module):
    """The packed class for a layer this module can become, or None."""
    if type(module) is torch.nn.Linear:
        return PackedLinear
    if type(module) is torch.nn.Conv2d and module.padding_mode == "zeros" and not isinstance(module.padding, str):
        return PackedConv2d
    return None


def fits(models, free: int | None = None) -> bool:
    """Whether the packs of these models' layers (about their weights' size) fit in the memory available with
    HEADROOM; True where the available memory cannot be read."""
    from pipeline.models.compiled.held import available_bytes

    need = sum(
        module.weight.numel() * module.weight.element_size()
        for model in models
        for module in model.modules()
        if _packable(module) or type(module) in PLAIN
    )
    free = free if free is not None else available_bytes()
    return free is None or free >= HEADROOM * need


def prepack(models) -> int:
    """Make every plain convolution and linear layer of these models a packed one (packed at its first call);
    how many were made."""
    count = 0
    for model in models:
        for module in model.modules():
            kind = _packable(module)
            if kind is not None:
                module.__class__ = kind
                count += 1
    return count


def unpack(models) -> list:
    """Make the models' packed layers plain again, their packs dropped; the layers it changed."""
    swapped = [module for model in models for module in model.modules() if type(module) in PLAIN]
    for module in swapped:
        module.__dict__.pop(PACK, None)
        module.__class__ = PLAIN[type(module)]
    return swapped


def forget(model: torch.nn.Module) -> None:
    """Drop the model's packs (its weights changed, or a compiled package runs it now); made again when called."""
    for module in model.modules():
        module.__dict__.pop(PACK, None)


@contextmanager
def plain_layers(pipe):
    """The pipeline's packed layers as plain ones, their packs dropped, for a while (the bench's plain diffusers
    baseline on the run's own models); packed again after, packing at their next call."""
    swapped = unpack(model for model in pipe.components.values() if isinstance(model, torch.nn.Module))
    try:
        yield
    finally:
        for module in swapped:
            module.__class__ = _packable(module)


def packed(model: torch.nn.Module) -> tuple[int, int]:
    """How many of the model's layers are packed layers, and how many bytes of packs they hold now."""
    layers = [module for module in model.modules() if isinstance(module, (PackedConv2d, PackedLinear))]
    held = [module.__dict__[PACK][0] for module in layers if PACK in module.__dict__]
    return len(layers), sum(pack.numel() * pack.element_size() for pack in held)
