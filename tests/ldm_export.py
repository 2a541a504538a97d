"""Write diffusers SD components as one original-format (LDM) checkpoint, the form fine-tunes are shared in.

The inverse of diffusers' own single-file conversion (diffusers.loaders.single_file_utils), for the
tests of `--checkpoint`: it lets the suite make a single-file fine-tune from the tiny models.
"""

from __future__ import annotations

import re

import torch
from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

RESNET = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
]
VAE_ATTENTION = [
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
]


def _renamed(rest: str, pairs) -> str:
    for new, old in pairs:
        rest = rest.replace(new, old)
    return rest


def unet_to_ldm(state: dict, config) -> dict:
    span = config["layers_per_block"] + 1
    attention_up = {i for i, kind in enumerate(config["up_block_types"]) if "CrossAttn" in kind}
    direct = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    out = {}
    for key, value in state.items():
        if key in direct:
            name = direct[key]
        elif m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            b, j, rest = int(m[1]), int(m[2]), m[3]
            name = f"input_blocks.{b * span + j + 1}.0.{_renamed(rest, RESNET)}"
        elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
            name = f"input_blocks.{int(m[1]) * span + int(m[2]) + 1}.1.{m[3]}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            name = f"input_blocks.{(int(m[1]) + 1) * span}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
            name = f"middle_block.{2 * int(m[1])}.{_renamed(m[2], RESNET)}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
            name = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            name = f"output_blocks.{int(m[1]) * span + int(m[2])}.0.{_renamed(m[3], RESNET)}"
        elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
            name = f"output_blocks.{int(m[1]) * span + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            b = int(m[1])
            name = f"output_blocks.{b * span + span - 1}.{2 if b in attention_up else 1}.conv.{m[2]}"
        else:
            raise KeyError(f"no LDM name for UNet key {key}")
        out["model.diffusion_model." + name] = value
    return out


def vae_to_ldm(state: dict, config) -> dict:
    blocks = len(config["up_block_types"])
    direct = DIFFUSERS_TO_LDM_MAPPING["vae"]
    out = {}
    for key, value in state.items():
        if key in direct:
            name = direct[key]
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            name = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            name = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            name = f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            name = f"decoder.up.{blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
            name = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
            name = f"{m[1]}.mid.attn_1.{_renamed(m[2], VAE_ATTENTION)}"
            if value.ndim == 2:  # LDM keeps these projections as 1x1 convolutions
                value = value[:, :, None, None]
        else:
            raise KeyError(f"no LDM name for VAE key {key}")
        out["first_stage_model." + name] = value
    return out


def to_ldm(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    """One state dict in the original layout: model.diffusion_model., first_stage_model., cond_stage_model."""
    state = {**unet_to_ldm(unet.state_dict(), unet.config), **vae_to_ldm(vae.state_dict(), vae.config)}
    state.update({"cond_stage_model.transformer." + k: v for k, v in text_encoder.state_dict().items()})
    return {k: v.contiguous() for k, v in state.items()}
