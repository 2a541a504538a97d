"""IP-Adapter for SD1.5: a reference photo steers the look through decoupled cross-attention (h94/IP-Adapter,
`models/ip-adapter_sd15.safetensors` with its CLIP image encoder), loaded into the pipeline by diffusers'
`load_ip_adapter`, whatever the preset: the hub repo, a bundle's `ip-adapter/` folder, or (random-sd15, built by
`random_sd15.build_ip_adapter`) a random state dict of the published file's keys and shapes with a random ViT-H/14
image encoder.

Random adapters start as IP-Adapter's training does: each attention's image key and value projections are copies
of its text ones, so a reference moves the result as much as a prompt would, and the image projection is drawn
at random.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.models.presets import SD15_IP_ADAPTER

REPO = SD15_IP_ADAPTER  # the hub repo of sd15's adapter, named once (presets)
SUBFOLDER = "models"
WEIGHT = "ip-adapter_sd15.safetensors"
ENCODER = "image_encoder"  # inside SUBFOLDER, as the repo lays it out
ENCODER_FILES = (f"{SUBFOLDER}/{ENCODER}/config.json", f"{SUBFOLDER}/{ENCODER}/model.safetensors")
BUNDLE_FOLDER = "ip-adapter"  # a bundle's copy of the repo's layout: ip-adapter/models/...
TOKENS = 4  # image tokens of the plain SD1.5 adapter
VIT_H = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 1024,
    "hidden_act": "gelu",
}


def random_state_dict(unet, image_dim: int, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """An adapter for this UNet in the published file's layout ({"image_proj": ..., "ip_adapter": ...}, keys
    numbered as diffusers reads them): image projection random, image key/value copies of the text ones."""
    generator = torch.Generator().manual_seed(seed)
    width = unet.config.cross_attention_dim
    proj = torch.randn(width * TOKENS, image_dim, generator=generator) / image_dim**0.5
    image_proj = {
        "proj.weight": proj,
        "proj.bias": torch.zeros(width * TOKENS),
        "norm.weight": torch.ones(width),
        "norm.bias": torch.zeros(width),
    }
    layers: dict[str, torch.Tensor] = {}
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        attention = unet.get_submodule(name.removesuffix(".processor"))
        layers[f"{key_id}.to_k_ip.weight"] = attention.to_k.weight.detach().float().cpu().clone()
        layers[f"{key_id}.to_v_ip.weight"] = attention.to_v.weight.detach().float().cpu().clone()
        key_id += 2
    return {"image_proj": image_proj, "ip_adapter": layers}


def save(state: dict[str, dict[str, torch.Tensor]], path: Path) -> Path:
    """The adapter as one safetensors file with the published file's key prefixes."""
    from safetensors.torch import save_file

    flat = {f"{part}.{key}": value.contiguous() for part, values in state.items() for key, value in values.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(flat, str(path))
    return path


def encoder_config(**overrides):
    """A CLIP vision tower with projection: ViT-H/14 as the adapter's encoder is, or smaller for `tiny`."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(**{**VIT_H, **overrides})


def build_tiny(folder: Path, unet, seed: int) -> Path:
    """The `ip-adapter/` part of a bundle, in the hub repo's layout: a small random image encoder and an adapter
    for the tiny UNet."""
    from transformers import CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = encoder_config(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        patch_size=8,
        image_size=32,
        projection_dim=16,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(folder / SUBFOLDER / ENCODER)
    save(random_state_dict(unet, config.projection_dim, seed), folder / SUBFOLDER / WEIGHT)
    return folder


def attach(pipe, source: str, local: bool, offline: bool) -> None:
    """The adapter and its image encoder from the hub repo or a bundle folder, through `load_ip_adapter`."""
    pipe.load_ip_adapter(
        source, subfolder=SUBFOLDER, weight_name=WEIGHT, image_encoder_folder=ENCODER, local_files_only=local or offline
    )


def hub_files() -> list[str]:
    """What `modomo models download sd15 --style-ref` fetches from the repo."""
    return [f"{SUBFOLDER}/{WEIGHT}", *ENCODER_FILES]
