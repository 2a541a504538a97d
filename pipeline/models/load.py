"""Load the whole model stack once: SD1.5 + the ControlNets its styles steer with (depth, canny, lines), depth,
YOLO, SAM2, and the optional CLIP, upscaler and scene segmentation."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import ModomoError
from pipeline.models.controls import CONTROLS, DEFAULT_CONTROLS, held_controls, name_controls
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

    @property
    def upscaler_id(self) -> str:
        """What enlarges results above the working size in this run: the upscaler's id, or Lanczos without one."""
        return (self.spec.upscaler_id or "lanczos") if self.upscaler is not None else "lanczos"


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
    # the ControlNets to load: those the run's styles steer with (lines only when the preset has it)
    controls: tuple[str, ...] = CONTROLS
    segmenter: bool = True  # the scene segmentation model too, when the preset has one (--preserve window, ...)
    style_ref: bool = False  # the IP-Adapter and its image encoder too (--style-ref, a style's reference, room sets)

    def torch_dtype(self, device: torch.device) -> torch.dtype:
        """The run's format on this device: `auto` by the device (see pipeline.models.precision)."""
        from pipeline.models.precision import DTYPES, resolve

        return DTYPES[resolve(self.dtype, device)]

    def channels_last_modules(self, pipe, device: torch.device) -> list:
        """Which models get the channels-last layout: on CUDA all; on the CPU by default only the VAE,
        the one it speeds up there (17% on its decode; the UNet runs 4% slower)."""
        every = [pipe.unet, pipe.vae, *pipe.controlnet.nets]
        if self.channels_last == "on" or (self.channels_last == "auto" and device.type == "cuda"):
            return every
        return [pipe.vae] if self.channels_last == "auto" else []


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _hub_hint(model_id: str) -> str:
    return (
        f"model {model_id!r} is not in the local Hugging Face cache "
        f"({os.environ.get('HF_HOME') or '~/.cache/huggingface'}); fetch the preset once with network "
        "(`modomo models download sd15`), use a bundle folder, or try modomo without any download: --models tiny"
    )


WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")  # what diffusers reads, either
SD_CONFIGS = (
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "tokenizer/tokenizer_config.json",
    "scheduler/scheduler_config.json",
)
SD_WEIGHTS = (
    tuple(f"unet/{w}" for w in WEIGHTS),
    tuple(f"vae/{w}" for w in WEIGHTS),
    ("text_encoder/model.safetensors", "text_encoder/pytorch_model.bin"),
)
DEPTH_FILES = (("config.json",), ("preprocessor_config.json",), ("model.safetensors", "pytorch_model.bin"))


def _cached(model_id: str, files) -> bool:
    """Every group of a hub repo's files has one file in the local cache (no network)."""
    from pipeline.models.presets import hub_file_cached

    try:
        return all(any(hub_file_cached(model_id, name) for name in group) for group in files)
    except ValueError:  # not a hub id at all: loading it fails too
        return False


def missing_weights(spec: ModelSpec) -> list[tuple[str, str, bool]]:
    """Every required part of a hub preset that is not on this machine, looked up without network:
    (role, where it comes from, whether loading could fetch it: a hub part while online)."""
    fetchable = not _offline()
    sd_files = [(c,) for c in SD_CONFIGS] + ([] if spec.checkpoint else list(SD_WEIGHTS))
    parts = [("stable diffusion", spec.sd, _cached(spec.sd, sd_files), fetchable)]
    if spec.checkpoint:
        parts.append(("checkpoint", spec.checkpoint, Path(spec.checkpoint).is_file(), False))
    for role, model_id in (("controlnet depth", spec.controlnet_depth), ("controlnet canny", spec.controlnet_canny)):
        parts.append((role, model_id, _cached(model_id, [("config.json",), WEIGHTS]), fetchable))
    parts.append(("depth", spec.depth, _cached(spec.depth, DEPTH_FILES), fetchable))
    if spec.sam2_checkpoint.startswith("hub:"):
        from pipeline.models.presets import hub_file_cached

        repo, _, filename = spec.sam2_checkpoint[4:].rpartition("/")
        parts.append(("sam2", f"{repo}/{filename}", hub_file_cached(repo, filename) is not None, fetchable))
    else:
        parts.append(("sam2", spec.sam2_checkpoint, Path(spec.sam2_checkpoint).is_file(), False))
    parts.append(("sam2 config", spec.sam2_config, Path(spec.sam2_config).is_file(), False))
    from pipeline.models.vision import find_yolo_weight

    parts.append(("yolo", spec.yolo, find_yolo_weight(spec.yolo) is not None, False))  # never downloaded on load
    return [(role, where, can_fetch) for role, where, present, can_fetch in parts if not present]


def check_weights(spec: ModelSpec, roles: tuple[str, ...] | None = None, fetch: bool = True) -> None:
    """Before a hub preset loads: one error naming every part missing (of `roles`, or all), when loading cannot
    fetch one of them, or at all without `fetch` (a command that loads one model never downloads it). A bundle
    folder names what it lacks when it is resolved; a random preset is built in memory."""
    if spec.local or spec.random_weights:
        return
    missing = [part for part in missing_weights(spec) if roles is None or part[0] in roles]
    if not missing or (fetch and all(can_fetch for _, _, can_fetch in missing)):
        return
    from huggingface_hub import constants

    from pipeline.models.vision import yolo_weights_dir

    names = ", ".join(f"{role} ({where})" for role, where, _ in missing)
    raise ModomoError(
        f"model weights not found for {spec.name}: {names}; looked in {constants.HF_HUB_CACHE}, "
        f"{yolo_weights_dir()} and the working folder; fetch them once with network: "
        f"`modomo models download {spec.name}`, or try modomo without any download: --models tiny"
    )


def _from_pretrained(cls, model_id: str, spec: ModelSpec, **kwargs):
    """`cls.from_pretrained` for a hub id or a local folder, with one clear error if it is missing."""
    if not spec.local and _offline():
        kwargs["local_files_only"] = True
    try:
        return cls.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError) as exc:
        if spec.local:
            raise ModomoError(f"{model_id}: cannot load {cls.__name__}: {str(exc).splitlines()[0]}") from None
        raise ModomoError(_hub_hint(model_id)) from None


def _sam2_checkpoint(spec: ModelSpec) -> Path:
    if not spec.sam2_checkpoint.startswith("hub:"):
        return Path(spec.sam2_checkpoint)
    from huggingface_hub import hf_hub_download

    repo, _, filename = spec.sam2_checkpoint[4:].rpartition("/")
    try:
        return Path(hf_hub_download(repo, filename, local_files_only=_offline()))
    except Exception:  # noqa: BLE001 - any hub failure means the same thing to the user
        raise ModomoError(_hub_hint(repo)) from None


def load_generator(
    spec: ModelSpec, device: torch.device, dtype: torch.dtype, controls: tuple[str, ...] = DEFAULT_CONTROLS
):
    """SD1.5 components + one ControlNet per named control (models.controls.CONTROLS order) as one diffusers pipeline,
    UniPC scheduler."""
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        StableDiffusionControlNetPipeline,
        UNet2DConditionModel,
        UniPCMultistepScheduler,
    )
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
    from transformers import CLIPTextModel, CLIPTokenizer

    kw = {"torch_dtype": dtype}
    if spec.checkpoint:
        from pipeline.models.checkpoint import load_components

        parts = load_components(Path(spec.checkpoint), spec.sd, dtype, local_only=spec.local or _offline())
    else:
        parts = {
            "vae": _from_pretrained(AutoencoderKL, spec.sd, spec, subfolder="vae", **kw),
            "text_encoder": _from_pretrained(CLIPTextModel, spec.sd, spec, subfolder="text_encoder", dtype=dtype),
            "unet": _from_pretrained(UNet2DConditionModel, spec.sd, spec, subfolder="unet", **kw),
        }
    sources = {"depth": spec.controlnet_depth, "canny": spec.controlnet_canny, "lines": spec.controlnet_lines}
    multi = MultiControlNetModel([_from_pretrained(ControlNetModel, sources[name], spec, **kw) for name in controls])
    name_controls(multi, controls)
    pipe = StableDiffusionControlNetPipeline(
        **parts,
        tokenizer=_from_pretrained(CLIPTokenizer, spec.sd, spec, subfolder="tokenizer"),
        controlnet=multi,
        scheduler=UniPCMultistepScheduler.from_config(
            _from_pretrained(UniPCMultistepScheduler, spec.sd, spec, subfolder="scheduler").config
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_depth(spec: ModelSpec, device: torch.device, dtype: torch.dtype):
    """A transformers depth-estimation model (DPT-Large by default) and its image processor."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    processor = _from_pretrained(AutoImageProcessor, spec.depth, spec)
    model = _from_pretrained(AutoModelForDepthEstimation, spec.depth, spec, dtype=dtype)
    return model.to(device).eval(), processor


def load_clip(spec: ModelSpec, device: torch.device, dtype: torch.dtype):
    """The optional CLIP model for style adherence: loaded only when its weights are already on disk."""
    if not spec.clip:
        return None
    if not spec.local:
        from pipeline.models.presets import hub_file_cached

        if hub_file_cached(spec.clip, "config.json") is None:
            return None
    from transformers import AutoProcessor, CLIPModel

    model = _from_pretrained(CLIPModel, spec.clip, spec, dtype=dtype)
    return model.to(device).eval(), _from_pretrained(AutoProcessor, spec.clip, spec)


def _optional_present(spec: ModelSpec, model_id: str | None, weights: tuple[str, ...]) -> bool:
    """Whether an optional model of the preset is on this machine: built, in the bundle, or cached."""
    if not model_id:
        return False
    return spec.random_weights or spec.local or _cached(model_id, [("config.json",), weights])


def has_lines(spec: ModelSpec) -> bool:
    """Whether the preset's lines (MLSD) ControlNet is on this machine."""
    return _optional_present(spec, spec.controlnet_lines, WEIGHTS)


def has_segmenter(spec: ModelSpec) -> bool:
    """Whether the preset's scene segmentation model is on this machine."""
    return _optional_present(spec, spec.segmenter, ("model.safetensors", "pytorch_model.bin"))


def has_ip_adapter(spec: ModelSpec) -> bool:
    """Whether the preset's IP-Adapter and its image encoder are on this machine."""
    from pipeline.models.ip_adapter import present

    return present(spec.ip_adapter, spec.local, spec.random_weights and not spec.local)


def ip_adapter_missing(spec: ModelSpec) -> str:
    """The one line for a reference the preset cannot take: where the adapter comes from, and how to get it."""
    if spec.local or not spec.ip_adapter:  # a bundle: nothing to download for it, but sd15 can fetch its own
        return (
            f"style references and room sets need an IP-Adapter, which {spec.name} lacks (a bundle keeps it in "
            "ip-adapter/: models/ip-adapter_sd15.safetensors and models/image_encoder/, the layout of "
            "h94/IP-Adapter); or run --models sd15 after `modomo models download sd15 --style-ref`"
        )
    return (
        f"style references and room sets need the IP-Adapter ({spec.ip_adapter}: "
        "models/ip-adapter_sd15.safetensors and its image encoder), not on this machine; fetch it once with "
        f"`modomo models download {spec.name} --style-ref`"
    )


def attach_ip_adapter(spec: ModelSpec, pipe, device: torch.device, dtype: torch.dtype) -> None:
    """The preset's IP-Adapter into the pipe through diffusers' `load_ip_adapter`: built (random-sd15) or loaded."""
    from pipeline.models import ip_adapter

    if spec.name == "random-sd15":
        from pipeline.models.random_sd15 import build_ip_adapter

        build_ip_adapter(pipe, device, dtype)
        return
    if not has_ip_adapter(spec):
        raise ModomoError(ip_adapter_missing(spec))
    try:
        ip_adapter.attach(pipe, spec.ip_adapter, spec.local, _offline())
    except (OSError, ValueError) as exc:
        raise ModomoError(f"{spec.ip_adapter}: cannot load the IP-Adapter: {str(exc).splitlines()[0]}") from None
    pipe.image_encoder.to(device=device, dtype=dtype)


def load_segmenter(spec: ModelSpec, device: torch.device, dtype: torch.dtype):
    """The ADE20K semantic segmentation model (SegFormer) and its processor: built (random-sd15) or loaded."""
    from pipeline.models import segformer

    if spec.name == "random-sd15":
        return segformer.build_in_memory("b0", device, dtype)
    try:
        return segformer.load(spec.segmenter, device, dtype, local_files_only=not spec.local and _offline())
    except (OSError, ValueError) as exc:
        if spec.local:
            raise ModomoError(
                f"{spec.segmenter}: cannot load the segmentation model: {str(exc).splitlines()[0]}"
            ) from None
        raise ModomoError(_hub_hint(spec.segmenter)) from None


def load_upscaler(spec: ModelSpec, device: torch.device):
    """The preset's super-resolution network (spandrel) on `device`; None when the preset has none or its weight is
    not on disk: results above the working size are then resized with Lanczos alone. Never downloads."""
    from pipeline.models import upscaler

    path = upscaler.weight_path(spec)
    return upscaler.load(path, device) if path is not None else None


def _base_models(spec: ModelSpec, device: torch.device, dtype: torch.dtype, controls: tuple, timed) -> tuple:
    """YOLO, SAM2, depth (model, processor), the generator and the upscaler, each through `timed(name, fn)`:
    built from the seed for random-sd15, else loaded from the preset's weights."""
    from pipeline.models import random_sd15
    from pipeline.models.vision import load_sam2, load_yolo

    if spec.name == "random-sd15":
        yolo = timed("yolo", lambda: random_sd15.build_yolo(device))
        sam2 = timed("sam2", lambda: random_sd15.build_sam2(device))
        depth_model, depth_processor = timed("depth", lambda: random_sd15.build_depth(device, dtype))
        pipe = timed("stable diffusion + controlnets", lambda: generator(spec, device, dtype, controls))
        upscaler = timed("upscaler", lambda: random_sd15.build_upscaler(device))
    else:
        yolo = timed("yolo", lambda: load_yolo(spec.yolo, str(device)))
        sam2 = timed("sam2", lambda: load_sam2(Path(spec.sam2_config), _sam2_checkpoint(spec), str(device)))
        depth_model, depth_processor = timed("depth", lambda: load_depth(spec, device, dtype))
        pipe = timed("stable diffusion + controlnets", lambda: generator(spec, device, dtype, controls))
        upscaler = timed("upscaler", lambda: load_upscaler(spec, device)) if spec.upscaler else None
    return yolo, sam2, depth_model, depth_processor, pipe, upscaler


def load_stack(spec: ModelSpec, device: torch.device, on_model=None, options: LoadOptions | None = None) -> ModelStack:
    """Load every model once, timing each; `on_model(name)` reports progress."""
    quiet_libraries()
    options = options or LoadOptions()
    dtype = options.torch_dtype(device)
    check_weights(spec)
    controls = tuple(name for name in options.controls if name != "lines" or has_lines(spec))
    seconds: dict[str, float] = {}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes within a run: let cuDNN pick its fastest kernels

    def timed(name: str, fn):
        if on_model:
            on_model(name)
        start = time.perf_counter()
        value = fn()
        synchronize(device)
        seconds[name] = time.perf_counter() - start
        return value

    yolo, sam2, depth_model, depth_processor, pipe, upscaler = _base_models(spec, device, dtype, controls, timed)
    if options.fast:
        from pipeline.models.fast_mode import fuse

        timed(f"fast: {options.fast}", lambda: fuse(pipe, spec, options.fast))
    if options.style_ref:
        timed("ip-adapter", lambda: attach_ip_adapter(spec, pipe, device, dtype))
    for module in options.channels_last_modules(pipe, device):
        module.to(memory_format=torch.channels_last)
    clip = timed("clip", lambda: load_clip(spec, device, dtype)) if spec.clip else None
    segmenter = (
        timed("segmentation", lambda: load_segmenter(spec, device, dtype))
        if options.segmenter and has_segmenter(spec)
        else None
    )
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
    )


def generator(spec: ModelSpec, device: torch.device, dtype: torch.dtype, controls: tuple = DEFAULT_CONTROLS):
    """The preset's diffusers pipeline (SD1.5 + the named controls' ControlNets) in `dtype`: built (random-sd15)
    or loaded."""
    if spec.name == "random-sd15":
        from pipeline.models import random_sd15

        return random_sd15.build_generator(device, dtype, controls)
    return load_generator(spec, device, dtype, controls)


def load_reference(
    stack: ModelStack, dtype: torch.dtype = torch.float32, options: LoadOptions | None = None, on_model=None
) -> ModelStack:
    """The stack with its generator again in `dtype` (the same weights: loaded from the same files, or built
    from the same seed), the other models shared: the bench's plain diffusers baseline in fp32 beside a bf16
    run."""
    from dataclasses import replace

    if on_model:
        on_model(f"stable diffusion + controlnets ({str(dtype).removeprefix('torch.')}, for the baseline)")
    # unfused: a compared run loads fast mode as a switch
    pipe = generator(stack.spec, stack.device, dtype, held_controls(stack.pipe))
    if getattr(stack.pipe, "image_encoder", None) is not None:
        attach_ip_adapter(stack.spec, pipe, stack.device, dtype)
    for module in (options or LoadOptions()).channels_last_modules(pipe, stack.device):
        module.to(memory_format=torch.channels_last)
    return replace(stack, pipe=pipe, dtype=dtype)
