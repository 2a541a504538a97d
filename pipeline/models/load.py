"""Load the whole model stack once: SD1.5 + the ControlNets its run steers with (depth, canny, lines, inpaint),
depth, YOLO, SAM2, and the optional CLIP, upscaler, scene segmentation and LaMa; and the bench's baseline generator
beside it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from pipeline.models.controls import OPTIONAL_CONTROLS, held_controls
from pipeline.models.host_memory import keep_host_memory, release_free_memory
from pipeline.models.inventory import check_weights, inventory
from pipeline.models.loaders import loaders_for
from pipeline.models.placement import LoadOptions
from pipeline.models.presets import ModelSpec
from pipeline.models.runtime import quiet_libraries, synchronize


@dataclass
class ModelStack:
    """Every loaded model, the device they live on, and what loading cost."""

    spec: ModelSpec
    device: torch.device
    dtype: torch.dtype
    pipe: Any  # diffusers StableDiffusionControlNetPipeline with a MultiControlNetModel
    depth_model: Any
    depth_processor: Any
    yolo: Any
    sam2: Any  # sam2 SAM2ImagePredictor
    load_seconds: dict[str, float] = field(default_factory=dict)
    clip: Any = None  # (CLIPModel, processor) when the preset's CLIP weights are present
    upscaler: Any = None  # spandrel ImageModelDescriptor when the preset's super-resolution weight is present
    fast: str | None = None  # the few-step recipe fused into the UNet at load, if any
    segmenter: Any = None  # (model, processor): ADE20K semantic segmentation, loaded when --preserve names a part
    lama: Any = None  # spandrel MaskedImageModelDescriptor: --mode declutter's first fill, loaded when asked and here
    compiled: Any = None  # models.compiled.CompiledModels: --compile's packages and held shapes, made when first used

    @property
    def upscaler_id(self) -> str:
        """What enlarges results above the working size in this run: the upscaler's id, or Lanczos without one."""
        return (self.spec.upscaler_id or "lanczos") if self.upscaler is not None else "lanczos"


def load_stack(spec: ModelSpec, device: torch.device, on_model=None, options: LoadOptions | None = None) -> ModelStack:
    """Load every model once, timing each; `on_model(name)` reports progress."""
    quiet_libraries()
    options = options or LoadOptions()
    dtype = options.torch_dtype(device)
    stock = inventory(spec)  # asked once: the check, the choice of controls and the loaders read it
    check_weights(spec, stock=stock)
    source = loaders_for(spec, stock)
    # an optional control whose ControlNet the preset lacks here is left out (the plan decides what runs without it)
    controls = tuple(c for c in options.controls if c not in OPTIONAL_CONTROLS or stock.has(f"controlnet {c}"))
    seconds: dict[str, float] = {}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes within a run: let cuDNN pick its fastest kernels
    else:
        keep_host_memory()  # before the first weight: every block is kept for reuse (models/host_memory.py)

    def timed(name: str, fn):
        if on_model:
            on_model(name)
        start = time.perf_counter()
        value = fn()
        synchronize(device)
        seconds[name] = time.perf_counter() - start
        return value

    yolo = timed("yolo", lambda: source.yolo(device))
    sam2 = timed("sam2", lambda: source.sam2(device))
    depth_model, depth_processor = timed("depth", lambda: source.depth(device, dtype))
    pipe = timed("stable diffusion + controlnets", lambda: source.generator(device, dtype, controls))
    upscaler = timed("upscaler", lambda: source.upscaler(device)) if spec.upscaler else None
    if options.fast:
        from pipeline.models.fast_mode import fuse

        timed(f"fast: {options.fast}", lambda: fuse(pipe, spec, options.fast))
    if options.style_ref:
        timed("ip-adapter", lambda: source.ip_adapter(pipe, device, dtype))
    options.lay_out(pipe, device, dtype)
    clip = timed("clip", lambda: source.clip(device, dtype)) if spec.clip else None
    wants_segmenter = options.segmenter and stock.has("segmentation")
    segmenter = timed("segmentation", lambda: source.segmenter(device, dtype)) if wants_segmenter else None
    lama = timed("lama", lambda: source.lama(device)) if options.lama and stock.has("lama") else None
    release_free_memory()  # what the loads and the layout change left behind, back to the kernel
    return ModelStack(
        spec,
        device,
        dtype,
        pipe,
        depth_model,
        depth_processor,
        yolo,
        sam2,
        seconds,
        clip,
        upscaler,
        options.fast,
        segmenter,
        lama,
    )


def load_baseline(
    stack: ModelStack, dtype: torch.dtype = torch.float32, options: LoadOptions | None = None, on_model=None
) -> ModelStack:
    """The stack with its generator again in `dtype` (the same weights: loaded from the same files, or built
    from the same seed), the other models shared: the bench's plain diffusers baseline in fp32 beside a bf16
    run."""
    if on_model:
        on_model(f"stable diffusion + controlnets ({str(dtype).removeprefix('torch.')}, for the baseline)")
    source = loaders_for(stack.spec)
    # unfused: a compared run loads fast mode as a switch
    pipe = source.generator(stack.device, dtype, held_controls(stack.pipe))
    if getattr(stack.pipe, "image_encoder", None) is not None:
        source.ip_adapter(pipe, stack.device, dtype)
    (options or LoadOptions()).lay_out(pipe, stack.device, dtype)
    release_free_memory()
    return replace(stack, pipe=pipe, dtype=dtype, compiled=None)
