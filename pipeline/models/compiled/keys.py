"""What a compiled package is keyed by: the model's weights (a fingerprint), the call's input shapes and dtypes,
the CPU and torch; and where the packages and the measured compile times live (modomo's cache)."""

from __future__ import annotations

import functools
import hashlib
import platform
from pathlib import Path

import torch

from pipeline.models.presets import cache_dir

SAMPLES = 16  # values read from each weight tensor for its fingerprint, evenly spaced
FORMAT = 2  # how packages are built (2: the weights beside the library): packages of another format are not used
FOLDER = "compiled"


def fingerprint(module: torch.nn.Module) -> str:
    """The weights' identity: every parameter's and buffer's name, shape and dtype, and SAMPLES evenly spaced values
    of each. Cheap enough for every batch (a fused LoRA, a switched recipe, another checkpoint all change it)."""
    digest = hashlib.sha256()
    tensors = [*module.named_parameters(), *module.named_buffers()]
    for name, tensor in tensors:
        flat = tensor.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // SAMPLES)][:SAMPLES]
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(sample.float().cpu().numpy().tobytes())
    return digest.hexdigest()[:20]


def signature(args: tuple) -> str:
    """The input shapes and dtypes of a call: '4x4x24x32:bf16 ; :i64 ; ...'."""

    def one(arg: torch.Tensor) -> str:
        return "x".join(map(str, arg.shape)) + ":" + str(arg.dtype).removeprefix("torch.")

    return " ; ".join(one(arg) for arg in args)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform says."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_features() -> str:
    """The CPU's matrix extensions that decide compiled kernels: amx, avx512_bf16 (or none)."""
    flags = set((_cpuinfo("flags") or "").split())
    found = [name for name in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2") if name in flags]
    return ",".join(found) or "none"


@functools.cache
def _cpuinfo(field: str) -> str | None:
    """A field of /proc/cpuinfo's first processor, read once per process (keys are made at each batch)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> str:
    """What else a package depends on: the CPU (model and extensions), its thread count, and torch."""
    return f"{cpu_model()} [{cpu_features()}] | {torch.get_num_threads()} threads | torch {torch.__version__}"


def package_key(backend: str, kind: str, weights: str, args: str) -> str:
    """A package's file name stem: a digest of everything it depends on."""
    text = " | ".join((backend, kind, weights, args, machine(), f"format {FORMAT}"))
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def estimate_key(backend: str, kind: str, parameters: int, args: str) -> str:
    """What a compile's time is kept by: the same model size and shapes on the same machine compile alike, whatever
    the weights' values."""
    return f"{model_part(backend, kind, parameters)} | {args} | {machine()}"


def speedup_key(backend: str, unet: torch.nn.Module) -> str:
    """What a measured speed-up is kept by: the generator (by its UNet's size) in one format on the same machine."""
    from pipeline.models.precision import dtype_of, name_of

    parameters = sum(p.numel() for p in unet.parameters())
    return f"{model_part(backend, 'unet', parameters)} | {name_of(dtype_of(unet))} | {machine()}"


def model_part(backend: str, kind: str, parameters: int) -> str:
    """The model's part of an estimate key (the same model at any shape shares it)."""
    return f"{backend} | {kind} | {parameters} parameters"


def folder() -> Path:
    """Where the packages and the compile-time estimates are kept: modomo's cache, `compiled/`."""
    return cache_dir() / FOLDER
