"""The `random-sd15` preset: the real architectures at full size with random weights, for timing anywhere.

Configurations are the real models' (pipeline/data/random-sd15.json); nothing is downloaded.
Images are noise; the work per image, and so every timing, is that of the real stack.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from pipeline.models.awaken import awaken_controlnet, awaken_embeddings
from pipeline.models.controls import CONTROLS, DEFAULT_CONTROLS, name_controls
from pipeline.models.fast_lora import RANDOM
from pipeline.models.presets import ModelSpec

CONFIG_FILE = Path(__file__).resolve().parents[1] / "data" / "random-sd15.json"


def configs() -> dict:
    return json.loads(CONFIG_FILE.read_text())


def spec() -> ModelSpec:
    """The preset's description; the `build_*` functions make the models."""
    from pipeline.models.recipes import RECIPES

    data = configs()
    return ModelSpec(
        name="random-sd15",
        sd="random: stable-diffusion-v1-5 architecture",
        controlnet_depth="random: control_v11f1p_sd15_depth architecture",
        controlnet_canny="random: control_v11p_sd15_canny architecture",
        depth="random: Intel/dpt-large architecture",
        yolo=f"random: {data['yolo']}",
        sam2_config=data["sam2"],
        sam2_checkpoint="random: sam2.1 hiera tiny architecture",
        builder=__name__,
        upscaler="random: RealESRGAN_x4plus architecture",
        fast_loras={name: RANDOM + name for name in RECIPES},
        controlnet_lines="random: control_v11p_sd15_mlsd architecture",
        segmenter="random: nvidia/segformer-b0-finetuned-ade-512-512 architecture",
        ip_adapter="random: h94/IP-Adapter ip-adapter_sd15 architecture (ViT-H/14 encoder)",
        controlnet_inpaint="random: control_v11p_sd15_inpaint architecture",
        lama="random: big-lama architecture",
    )


def build_generator(device: torch.device, dtype: torch.dtype, controls: tuple[str, ...] = DEFAULT_CONTROLS):
    """SD1.5 UNet, VAE and CLIP text encoder, and one ControlNet per named control (models.controls.CONTROLS: depth,
    canny, lines, inpaint; the same architecture), random, as one diffusers pipeline."""
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        StableDiffusionControlNetPipeline,
        UNet2DConditionModel,
        UniPCMultistepScheduler,
    )
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from pipeline.models.tiny import build_tokenizer

    data = configs()
    # Each model made once, on the target device (seconds on a GPU instead of a minute), from a fixed seed: two
    # builds in one process (the bench's fp32 baseline beside its bf16 run) hold the same weights.
    with seeded(device, 0), torch.device(device):
        unet = UNet2DConditionModel.from_config(data["unet"])
        vae = AutoencoderKL.from_config(data["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**data["text_encoder"]))
    controlnets = []
    for name in controls:  # each seeded on its own: a control's net is the same whichever others are loaded
        seed = CONTROLS.index(name) + 1
        with seeded(device, 10 + seed), torch.device(device):
            controlnets.append(ControlNetModel.from_config(data["controlnet"]))
        awaken_controlnet(controlnets[-1], seed)  # a trained ControlNet's outputs are not zero
    multi = MultiControlNetModel(controlnets)
    name_controls(multi, controls)
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = build_tokenizer(Path(folder))
    pipe = StableDiffusionControlNetPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        controlnet=multi,
        scheduler=UniPCMultistepScheduler.from_config(data["scheduler"]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)


@contextmanager
def seeded(device: torch.device, seed: int):
    """The random number generators (the CPU's, and the device's) seeded for a build, restored after it."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def build_depth(device: torch.device, dtype: torch.dtype):
    """DPT-Large, random, and its image processor."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    data = configs()
    with seeded(device, 1), torch.device(device):
        model = DPTForDepthEstimation(DPTConfig(**data["depth"]))
    awaken_embeddings(model, seed=11)
    return model.to(dtype=dtype).eval(), DPTImageProcessor(**data["depth_processor"])


def build_yolo(device: torch.device):
    """The YOLO11m architecture from ultralytics' packaged yaml, random, biased to report furniture."""
    from pipeline.models.vision import bias_towards_furniture, coco_names, keep_torch_threads, ultralytics_offline

    ultralytics_offline()
    from ultralytics import YOLO

    with keep_torch_threads():
        model = YOLO(configs()["yolo"], task="detect")
        model.model.names = coco_names()
        bias_towards_furniture(model.model)  # so SAM2 gets boxes and its time is measured too
        return model.to(str(device))


def build_sam2(device: torch.device):
    """SAM2.1 hiera tiny from the sam2 package's config, random."""
    from pipeline.models.vision import load_sam2, sam2_package_config

    predictor = load_sam2(sam2_package_config(configs()["sam2"]), None, str(device))
    awaken_embeddings(predictor.model, seed=0)
    return predictor


def build_upscaler(device: torch.device):
    """RealESRGAN_x4plus's RRDBNet (64 features, 23 blocks, x4), random, through spandrel's detection as the
    real file goes, so an upscaled result costs what the sd15 preset's does."""
    from pipeline.models import upscaler

    return upscaler.descriptor(upscaler.build_random(**upscaler.X4PLUS, device=device), device)


def build_lama(device: torch.device):
    """big-lama's architecture (LaMa, 51 M parameters), random, through spandrel's detection as the real file goes,
    so a decluttered photo's fill costs what the sd15 preset's does."""
    from pipeline.models import lama

    return lama.descriptor(lama.build_random(seed=9, device=device), device)


def build_fast_lora(unet, recipe: str) -> dict:
    """The recipe's LoRA for this UNet, random, in memory: the published file's keys, shapes, rank and dtype, so
    fusing it costs and changes what fusing the real file does."""
    from pipeline.models.fast_lora import random_lora

    return random_lora(unet, recipe)


def build_ip_adapter(pipe, device: torch.device, dtype: torch.dtype) -> None:
    """A random ViT-H/14 image encoder registered on the pipe, then a random IP-Adapter of the published file's
    layout through diffusers' `load_ip_adapter` (a state dict, as it accepts one)."""
    from transformers import CLIPVisionModelWithProjection

    from pipeline.models import ip_adapter

    with seeded(device, 7), torch.device(device):
        encoder = CLIPVisionModelWithProjection(ip_adapter.encoder_config())
    pipe.register_modules(image_encoder=encoder.to(dtype=dtype).eval())
    state = ip_adapter.random_state_dict(pipe.unet, ip_adapter.VIT_H["projection_dim"], seed=8)
    pipe.load_ip_adapter(state, subfolder="", weight_name="", image_encoder_folder=None)


class Builders:
    """The preset's models built from its seeds (the calls pipeline.models.loaders.WeightLoaders answers from
    weights on disk)."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    def yolo(self, device: torch.device):
        return build_yolo(device)

    def sam2(self, device: torch.device):
        return build_sam2(device)

    def depth(self, device: torch.device, dtype: torch.dtype):
        return build_depth(device, dtype)

    def generator(self, device: torch.device, dtype: torch.dtype, controls: tuple[str, ...] = DEFAULT_CONTROLS):
        return build_generator(device, dtype, controls)

    def upscaler(self, device: torch.device):
        return build_upscaler(device)

    def lama(self, device: torch.device):
        return build_lama(device)

    def clip(self, device: torch.device, dtype: torch.dtype):
        return None  # the preset has no CLIP: --room auto is refused and the score has no style part

    def segmenter(self, device: torch.device, dtype: torch.dtype):
        from pipeline.models import segformer

        return segformer.build_in_memory("b0", device, dtype)

    def ip_adapter(self, pipe, device: torch.device, dtype: torch.dtype) -> None:
        build_ip_adapter(pipe, device, dtype)
