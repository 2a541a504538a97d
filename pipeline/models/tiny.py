"""The `tiny` bundle: every model of the stack, small and random, built from configs.

Images it makes are noise; it exists so the whole pipeline runs offline on a CPU in
seconds, loaded from disk through the same code real weights take. LaMa alone is at its real size: spandrel
builds big-lama's architecture from any LaMa file, whatever it holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from pipeline.models import ip_adapter, segformer
from pipeline.models.awaken import awaken_controlnet, awaken_embeddings
from pipeline.models.presets import BUNDLE_FILE, BUNDLE_FORMAT
from pipeline.models.vision import build_tiny_sam2, build_tiny_yolo

TEXT_DIM = 32
BLOCKS = (16, 32, 32)
# Attention only at the lowest resolution: at 768 px a cross-attention block at 1/16 scale would
# cost more on a CPU than everything else together.
DOWN_BLOCKS = ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
UP_BLOCKS = ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D")
VAE_BLOCKS = (8, 16, 16, 16)  # four blocks: the VAE downsamples by 8, as SD1.5's does
FAST_RANK = 4  # the published few-step LoRAs are rank 64; the tiny UNet is at most 32 wide


def byte_alphabet() -> list[str]:
    """CLIP's byte-to-unicode table: 256 printable stand-ins for the 256 byte values."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    extra = 0
    chars = []
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def build_tokenizer(folder: Path):
    """A byte-level CLIP tokenizer with no merges: every character is a token."""
    from transformers import CLIPTokenizer

    alphabet = byte_alphabet()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    for ch in alphabet:
        vocab[ch + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_stable_diffusion(folder: Path, vocab_size: int):
    """UNet, VAE, text encoder and UniPC scheduler in diffusers' folder layout; returns the UNet."""
    from diffusers import AutoencoderKL, UNet2DConditionModel, UniPCMultistepScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(
        block_out_channels=BLOCKS,
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=DOWN_BLOCKS,
        up_block_types=UP_BLOCKS,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=VAE_BLOCKS,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(VAE_BLOCKS),
        up_block_types=("UpDecoderBlock2D",) * len(VAE_BLOCKS),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=64,
    )
    text_config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=TEXT_DIM,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=vocab_size,
        max_position_embeddings=77,
    )
    scheduler = UniPCMultistepScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    )
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    CLIPTextModel(text_config).save_pretrained(folder / "text_encoder")
    scheduler.save_pretrained(folder / "scheduler")
    return unet


def build_controlnet(folder: Path, seed: int) -> None:
    """A ControlNet matching the tiny UNet; its conditioning encoder downsamples by 8. Its zero-initialised
    output layers get seeded random weights, so it changes the result as a trained one does."""
    from diffusers import ControlNetModel

    net = ControlNetModel(
        block_out_channels=BLOCKS,
        layers_per_block=1,
        in_channels=4,
        down_block_types=DOWN_BLOCKS,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=4,
        norm_num_groups=8,
        conditioning_embedding_out_channels=(8, 8, 16, 16),
    )
    awaken_controlnet(net, seed)
    net.save_pretrained(folder)


def build_fast_loras(folder: Path, unet, seed: int) -> list[Path]:
    """Each few-step recipe's LoRA for the tiny UNet, random, in the published file's names, dtype and header:
    the `fast/` part of a bundle, fused at load by --fast like the real files."""
    from pipeline.models.fast_lora import layout, random_lora, save
    from pipeline.models.recipes import RECIPES

    return [
        save(random_lora(unet, name, seed=seed, rank=FAST_RANK), folder / f"{name}.safetensors", layout(name).metadata)
        for name in RECIPES
    ]


def build_depth(folder: Path) -> None:
    """A small DPT (the DPT-Large architecture, shrunk) and its image processor."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    config = DPTConfig(
        image_size=64,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 16, 32],
        fusion_hidden_size=16,
        head_in_index=-1,
        is_hybrid=False,
    )
    model = DPTForDepthEstimation(config)
    awaken_embeddings(model, seed=11)
    model.save_pretrained(folder)
    DPTImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)


def build_clip(folder: Path) -> None:
    """A small random CLIP (text + vision towers) with the local tokenizer: the `clip/` part of a bundle, for
    `--room auto` and the style-adherence score."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = build_tokenizer(folder)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(folder)


def build_upscaler(folder: Path, seed: int) -> Path:
    """The RRDBNet of Real-ESRGAN shrunk (8 features, one block, x4), random, saved as safetensors under the
    real file's names: the `upscaler/` part of a bundle, read back by spandrel like RealESRGAN_x4plus.pth."""
    from pipeline.models import upscaler

    net = upscaler.build_random(num_filters=8, num_blocks=1, scale=4, seed=seed)
    return upscaler.save(net, folder / upscaler.TINY_FILE)


def build_lama(folder: Path, seed: int) -> Path:
    """LaMa at its real size (spandrel reads only its input and output channels: big-lama's 51 M parameters are
    the architecture), random, saved as safetensors in fp16 (102 MB instead of 204; spandrel loads it back into its
    fp32 LaMa) under big-lama.pt's names: the `lama/` part of a bundle."""
    from pipeline.models import lama

    return lama.save(lama.build_random(seed=seed), folder / lama.TINY_FILE, dtype=torch.float16)


# Parts added after a bundle version was out, built last and from their own seeds (the global one too: a model's
# initialisation draws from it), so a bundle built whole and one they are added to in place hold the same weights.
LATER_PARTS = {"controlnet-inpaint": (8, build_controlnet), "lama": (9, build_lama)}


def add_missing(folder: str | Path, seed: int = 0) -> list[str]:
    """Build into a built bundle each of LATER_PARTS it lacks (each into a temporary folder, then renamed, so a
    process that finds the part finds it whole); returns what it added."""
    import shutil

    added = []
    for name, (offset, build) in LATER_PARTS.items():
        target = Path(folder) / name
        if target.exists():
            continue
        tmp = target.with_name(f"{name}.tmp-{os.getpid()}")
        torch.manual_seed(seed + offset)
        build(tmp, seed=seed + offset)
        try:
            tmp.rename(target)
            added.append(name)
        except OSError:  # another process added it first
            shutil.rmtree(tmp, ignore_errors=True)
    return added


def build_tiny_bundle(folder: str | Path, seed: int = 0) -> Path:
    """Write the whole tiny bundle into `folder` (layout: `pipeline.models.presets`)."""
    from pipeline.models.runtime import quiet_libraries

    quiet_libraries()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(folder / "stable-diffusion" / "tokenizer")
    unet = build_stable_diffusion(folder / "stable-diffusion", vocab_size=len(tokenizer))
    build_fast_loras(folder / "fast", unet, seed=seed + 4)
    build_controlnet(folder / "controlnet-depth", seed=seed + 1)
    build_controlnet(folder / "controlnet-canny", seed=seed + 2)
    build_controlnet(folder / "controlnet-lines", seed=seed + 5)
    build_depth(folder / "depth")
    build_tiny_yolo(folder / "yolo.pt")
    build_tiny_sam2(folder / "sam2")
    build_clip(folder / "clip")
    build_upscaler(folder / "upscaler", seed=seed + 3)
    segformer.build_random(folder / "segmentation", "tiny", seed=seed + 6)
    ip_adapter.build_tiny(folder / ip_adapter.BUNDLE_FOLDER, unet, seed=seed + 7)
    add_missing(folder, seed)
    manifest = {
        "format": BUNDLE_FORMAT,
        "name": "tiny",
        "description": "random tiny models built from configs; images are noise",
    }
    (folder / BUNDLE_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder
