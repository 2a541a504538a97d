"""How a preset's models come into memory. `WeightLoaders` reads them from a bundle folder or the hub cache; a preset
built from a seed names its own builders (`ModelSpec.builder`: a module with a `Builders` class, as
pipeline.models.random_sd15 has). Both answer the same calls, so loading never asks which preset it has."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from pipeline.errors import ModomoError
from pipeline.models.controls import DEFAULT_CONTROLS, name_controls
from pipeline.models.inventory import Inventory, hub_hint, inventory, ip_adapter_missing, offline
from pipeline.models.presets import ModelSpec, hub_parts


def loaders_for(spec: ModelSpec, stock: Inventory | None = None):
    """The preset's loaders: its builders when it is built from a seed, else its weights read from disk (found
    through `stock`, its inventory, when the caller has it)."""
    if spec.builder:
        return importlib.import_module(spec.builder).Builders(spec)
    return WeightLoaders(spec, stock)


def from_pretrained(cls, model_id: str, spec: ModelSpec, **kwargs):
    """`cls.from_pretrained` for a hub id or a local folder, with one clear error if it is missing."""
    if not spec.local and offline():
        kwargs["local_files_only"] = True
    try:
        return cls.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError) as exc:
        if spec.local:
            raise ModomoError(f"{model_id}: cannot load {cls.__name__}: {str(exc).splitlines()[0]}") from None
        raise ModomoError(hub_hint(model_id)) from None


class WeightLoaders:
    """Each model of a preset from its weights: a bundle's folders, or hub ids through the local cache."""

    def __init__(self, spec: ModelSpec, stock: Inventory | None = None):
        self.spec = spec
        self.stock = stock or inventory(spec)  # where each part is: looked up once per load

    def yolo(self, device: torch.device):
        from pipeline.models.vision import load_yolo

        found = self.stock.path("yolo")  # as given, or a bare name in modomo's detector folder
        return load_yolo(found or self.spec.yolo, str(device))

    def sam2(self, device: torch.device):
        from pipeline.models.vision import load_sam2

        return load_sam2(Path(self.spec.sam2_config), self.sam2_checkpoint(), str(device))

    def sam2_checkpoint(self) -> Path:
        where = self.spec.sam2_checkpoint
        if not where.startswith("hub:"):
            return Path(where)
        from huggingface_hub import hf_hub_download

        repo, filename = hub_parts(where)
        try:
            return Path(hf_hub_download(repo, filename, local_files_only=offline()))
        except Exception:  # noqa: BLE001 - any hub failure means the same thing to the user
            raise ModomoError(hub_hint(repo)) from None

    def depth(self, device: torch.device, dtype: torch.dtype):
        """A transformers depth-estimation model (DPT-Large by default) and its image processor."""
        return load_depth(self.spec, device, dtype)

    def generator(self, device: torch.device, dtype: torch.dtype, controls: tuple[str, ...] = DEFAULT_CONTROLS):
        return load_generator(self.spec, device, dtype, controls)

    def upscaler(self, device: torch.device):
        """The preset's super-resolution network (spandrel); None when its weight is not on disk (results above the
        working size are then resized with Lanczos alone). Never downloads."""
        from pipeline.models import upscaler

        path = self.stock.path("upscaler")
        return upscaler.load(path, device) if path is not None else None

    def lama(self, device: torch.device):
        """The preset's inpainting network for --mode declutter's first fill (spandrel); None when its weight is not
        on disk. Never downloads."""
        from pipeline.models import lama

        path = self.stock.path("lama")
        return lama.load(path, device) if path is not None else None

    def clip(self, device: torch.device, dtype: torch.dtype):
        """The optional CLIP model for style adherence: loaded only when its weights are already on disk."""
        if not self.stock.has("clip"):
            return None
        from transformers import AutoProcessor, CLIPModel

        model = from_pretrained(CLIPModel, self.spec.clip, self.spec, dtype=dtype)
        return model.to(device).eval(), from_pretrained(AutoProcessor, self.spec.clip, self.spec)

    def segmenter(self, device: torch.device, dtype: torch.dtype):
        """The ADE20K semantic segmentation model (SegFormer) and its processor."""
        from pipeline.models import segformer

        spec = self.spec
        try:
            return segformer.load(spec.segmenter, device, dtype, local_files_only=not spec.local and offline())
        except (OSError, ValueError) as exc:
            if spec.local:
                reason = str(exc).splitlines()[0]
                raise ModomoError(f"{spec.segmenter}: cannot load the segmentation model: {reason}") from None
            raise ModomoError(hub_hint(spec.segmenter)) from None

    def ip_adapter(self, pipe, device: torch.device, dtype: torch.dtype) -> None:
        """The preset's IP-Adapter into the pipe through diffusers' `load_ip_adapter`."""
        from pipeline.models import ip_adapter

        spec = self.spec
        if not self.stock.has("ip-adapter"):
            raise ModomoError(ip_adapter_missing(spec))
        try:
            ip_adapter.attach(pipe, spec.ip_adapter, spec.local, offline())
        except (OSError, ValueError) as exc:
            reason = str(exc).splitlines()[0]
            raise ModomoError(f"{spec.ip_adapter}: cannot load the IP-Adapter: {reason}") from None
        pipe.image_encoder.to(device=device, dtype=dtype)


def load_depth(spec: ModelSpec, device: torch.device, dtype: torch.dtype):
    """A transformers depth-estimation model and its image processor, from the preset's weights."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    processor = from_pretrained(AutoImageProcessor, spec.depth, spec)
    model = from_pretrained(AutoModelForDepthEstimation, spec.depth, spec, dtype=dtype)
    return model.to(device).eval(), processor


def load_generator(
    spec: ModelSpec, device: torch.device, dtype: torch.dtype, controls: tuple[str, ...] = DEFAULT_CONTROLS
):
    """SD1.5 components + one ControlNet per named control (models.controls.CONTROLS order: depth, canny, lines,
    inpaint) as one diffusers pipeline, UniPC scheduler."""
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

        parts = load_components(Path(spec.checkpoint), spec.sd, dtype, local_only=spec.local or offline())
    else:
        parts = {
            "vae": from_pretrained(AutoencoderKL, spec.sd, spec, subfolder="vae", **kw),
            "text_encoder": from_pretrained(CLIPTextModel, spec.sd, spec, subfolder="text_encoder", dtype=dtype),
            "unet": from_pretrained(UNet2DConditionModel, spec.sd, spec, subfolder="unet", **kw),
        }
    sources = {
        "depth": spec.controlnet_depth,
        "canny": spec.controlnet_canny,
        "lines": spec.controlnet_lines,
        "inpaint": spec.controlnet_inpaint,
    }
    lacking = [name for name in controls if not sources[name]]
    if lacking:
        raise ModomoError(f"{spec.name} has no ControlNet for the {', '.join(lacking)} control")
    multi = MultiControlNetModel([from_pretrained(ControlNetModel, sources[name], spec, **kw) for name in controls])
    name_controls(multi, controls)
    pipe = StableDiffusionControlNetPipeline(
        **parts,
        tokenizer=from_pretrained(CLIPTokenizer, spec.sd, spec, subfolder="tokenizer"),
        controlnet=multi,
        scheduler=UniPCMultistepScheduler.from_config(
            from_pretrained(UniPCMultistepScheduler, spec.sd, spec, subfolder="scheduler").config
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
