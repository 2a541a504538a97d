"""The run's number format (`--dtype auto|fp32|bf16|fp16`): what `auto` picks on each device, and which models
keep fp32 whatever the run's format.

`auto` is fp16 on CUDA (SD1.5 is trained for it and tensor cores run it), bfloat16 on a CPU whose PyTorch
reports AMX tiles or AVX-512 BF16 (Intel Sapphire Rapids and later, AMD Zen 4 and later: their bf16 matrix
kernels run several times fp32's), fp32 on any other CPU. fp16 on a CPU is refused: PyTorch has no fast CPU
kernels for it and its narrow range overflows where bfloat16's does not.

In bf16 (or fp16) the text encoder, UNet, ControlNets, VAE, depth estimator and CLIP run in it. YOLO and SAM2
keep fp32 on every device: their boxes and masks decide which pixels are kept exactly, and together they are a
few per cent of a run's time.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.errors import UsageError

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
CHOICES = ("auto", *DTYPES)
FP32_MODELS = {
    "yolo": "its boxes decide which objects are kept; a few per cent of a run's time",
    "sam2": "its masks decide which pixels are kept exactly; a few per cent of a run's time",
}


def name_of(dtype: torch.dtype) -> str:
    """fp16, bf16 or fp32 for a torch dtype."""
    return next(name for name, value in DTYPES.items() if value == dtype)


def dtype_of(model) -> torch.dtype:
    """The format a model's weights are in (what its inputs are cast to)."""
    return next(model.parameters()).dtype


def channels_last(model) -> bool:
    """Whether a model's convolutions hold their weights channels-last (read off its first spatial kernel)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and module.weight.shape[-2:] != (1, 1):
            return module.weight.is_contiguous(memory_format=torch.channels_last)
    return False


def cpu_supports_bf16() -> bool:
    """Whether this CPU has fast bfloat16 matrix kernels: AMX tiles or AVX-512 BF16 (PyTorch's own probes,
    else the kernel's CPU flags)."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if any(probe is not None for probe in probes):
        return any(probe() for probe in probes if probe is not None)
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("amx_bf16", "avx512_bf16"))


def resolve(name: str, device: torch.device) -> str:
    """The format a run on `device` uses for --dtype `name`; UsageError for one the device cannot run."""
    name = str(name).strip().lower()
    if name not in CHOICES:
        raise UsageError(f"--dtype {name!r}: choose {', '.join(CHOICES)}")
    if name == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if device.type == "cpu" and cpu_supports_bf16() else "fp32"
    if device.type == "cpu" and name == "fp16":
        raise UsageError("--dtype fp16 is not supported on the CPU; use bf16 (or fp32)")
    if device.type == "cuda" and name == "bf16" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"--dtype bf16: {torch.cuda.get_device_name(device)} does not support it; use fp16")
    return name


def report(stack) -> dict:
    """What runs in which format, read off the loaded models (not what was asked): for the metadata, the
    summary and the bench; the models kept in fp32, and why."""
    from pipeline.models.prepacked import packed

    pipe = stack.pipe
    found = {
        "text_encoder": pipe.text_encoder,
        "unet": pipe.unet,
        "controlnets": pipe.controlnet.nets[0],
        "vae": pipe.vae,
        "depth": stack.depth_model,
        "clip": stack.clip[0] if stack.clip else None,
    }
    models = {name: name_of(dtype_of(model)) for name, model in found.items() if model is not None}
    run = name_of(stack.dtype)
    layout = ("unet", "controlnets", "vae")
    return {
        "dtype": run,
        "models": {**models, **dict.fromkeys(FP32_MODELS, "fp32")},
        "channels_last": [name for name in layout if channels_last(found[name])],
        # whose layers pack their weights once for oneDNN (pipeline.models.prepacked)
        "packed": [name for name in layout if packed(found[name])[0]],
        **({"kept_fp32": dict(FP32_MODELS)} if run != "fp32" else {}),
    }
