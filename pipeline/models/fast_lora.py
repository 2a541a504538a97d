"""The few-step LoRAs of `--fast` (models.recipes): where a preset's file is, and seeded random ones in the real
files' exact layout, so presets without downloaded weights (tiny, random-sd15) fuse the same keys the real files
carry, through the same `load_lora_weights` path.

What the three real files hold
------------------------------
All three share one layout, kohya-style names over diffusers' module paths, UNet only:

    lora_unet_<module path, "." -> "_">.lora_down.weight   (rank, in) or (rank, in, kh, kw)
    lora_unet_<module path, "." -> "_">.lora_up.weight     (out, rank) or (out, rank, 1, 1)
    lora_unet_<module path, "." -> "_">.alpha              0-d scalar

e.g. `lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight` of shape (64, 320, 1, 1) and
`lora_unet_up_blocks_3_resnets_2_conv1.lora_down.weight` of shape (64, 640, 3, 3). The adapted modules are every
UNet module whose path is, or ends with, one of `TARGETS`: attention to_q/to_k/to_v/to_out.0 (self and cross),
Transformer2DModel proj_in/proj_out (1x1 convs in SD1.5), ff.net.0.proj and ff.net.2, resnet conv1/conv2
(3x3 convs), conv_shortcut (1x1), time_emb_proj, and the down/upsampler convs (3x3). Not adapted: conv_in,
conv_out, the time embedding MLP, norms, the text encoder. On SD1.5's UNet that is 278 modules (182 Linear,
96 Conv2d), 834 keys, rank 64: 67,252,224 LoRA parameters.

- lcm (latent-consistency/lcm-lora-sdv1-5, pytorch_lora_weights.safetensors): float16 tensors and alphas,
  safetensors metadata {"format": "pt"}; 134,621,556 bytes.
- tcd (h1t/TCD-SD15-LoRA, pytorch_lora_weights.safetensors): the same as lcm, byte for byte in size:
  float16, {"format": "pt"}, 134,621,556 bytes.
- hyper (ByteDance/Hyper-SD, Hyper-SD15-8steps-lora.safetensors): float32 tensors and alphas, no metadata;
  269,127,064 bytes.

Where this comes from:
- The module list, rank 64, alpha 64 and the key scheme are those of diffusers' LCM-LoRA training script
  (examples/consistency_distillation/train_lcm_distill_lora_sd_wds.py: the default `lora_target_modules`,
  `--lora_rank 64`, `--lora_alpha 64`, and `get_module_kohya_state_dict`, which renames peft's
  `base_model.model.X.lora_A/B.weight` to `lora_unet_X.lora_down/up.weight` plus `X.alpha`, in the training dtype).
- stable-diffusion.cpp's LoRA refactor (github.com/leejet/stable-diffusion.cpp/pull/955) classifies
  lcm-lora-sdv1-5 as "unet | lora_down+lora_up+alpha | hf names"; an issue loading it
  (github.com/open-mmlab/Live2Diff/issues/10) names `down_blocks.0.attentions.0.proj_in` as a target.
- Exact file sizes, from the hub's LFS pointers: TCD 134,621,556 (huggingface.co/h1t/TCD-SD15-LoRA/blame/main/
  pytorch_lora_weights.safetensors, sha256 eaecb24a...); Hyper-SD15-8steps 269,127,064 and Hyper-SD15-1step
  269,127,096 (huggingface.co/ByteDance/Hyper-SD/commit/123f4ee05849b8241d5f451b089cb14a1019566d); lcm
  134,621,556 from copies named lcm-lora-sdv1-5 / LCM_LoRA_Weights_SD15 sharing sha256 8f90d840...
  (huggingface.co/cleanmists/my/commit/1791fe5b5d3bb084aa348357e7a9d20d482b1e81). Serialising this layout
  over SD1.5's UNet gives exactly those sizes (tests/models/test_fast_lora.py checks it), while peft names
  (`unet.X.lora_A.weight`: 134,581,584), diffusers names (`unet.X.lora.down.weight`: 134,582,696), the
  `unet.base_model.model.` prefix (134,591,040), sgm block names, a text encoder, float32 alphas or 1-d alphas
  would not; the 32 bytes between the 8-step and 1-step Hyper files are the {"format": "pt"} metadata.

Not confirmed: the alpha values (any value of the same dtype has the same size; the builder writes alpha = rank,
the training script's default, so the fused delta is exactly up @ down); the key names one by one (inferred from
the script, the classification above and the byte-exact sizes, not read from the files); the official lcm file's
own sha256 (the size comes from copies of it); how TCD and Hyper-SD were trained (no training code is published).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
    "time_emb_proj",
)
PREFIX = "lora_unet_"
RANDOM = "random:"  # a preset whose fast LoRA is built in memory (`random_lora`), not read from a file
# Std of the random delta's output per unit of input std: small enough that the fused UNet stays sane, large
# enough that its output visibly moves (a few percent of the base UNet's output on the tiny bundle).
DELTA = 0.01


@dataclass(frozen=True)
class Layout:
    """A real file's layout beyond its names: rank, tensor dtype, safetensors metadata, size on SD1.5's UNet."""

    rank: int
    dtype: str
    metadata: dict[str, str] | None
    size: int


LAYOUTS = {
    "lcm": Layout(64, "float16", {"format": "pt"}, 134_621_556),
    "tcd": Layout(64, "float16", {"format": "pt"}, 134_621_556),
    "hyper": Layout(64, "float32", None, 269_127_064),
}
SD15_KEYS = 834  # keys of each real file: 278 adapted modules x (down, up, alpha)


def layout(recipe: str) -> Layout:
    """The recipe's file layout; an unknown recipe is a usage error naming the choices."""
    from pipeline.models.recipes import recipe as lookup

    return LAYOUTS[lookup(recipe).name]


def targets(unet) -> list[tuple[str, object]]:
    """(path, module) of every module the real files adapt, by peft's rule: the path equals or ends with a target.
    Only shapes are read, so a UNet on the meta device works."""
    import torch

    return [
        (name, module)
        for name, module in unet.named_modules()
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d)
        and any(name == t or name.endswith("." + t) for t in TARGETS)
    ]


def lora_shapes(unet, recipe: str, rank: int | None = None) -> dict[str, tuple[int, ...]]:
    """Every key of the recipe's file for this UNet and its shape (alphas are 0-d)."""
    rank = rank or layout(recipe).rank
    shapes = {}
    for name, module in targets(unet):
        out_features, in_features, *kernel = module.weight.shape
        base = PREFIX + name.replace(".", "_")
        shapes[base + ".lora_down.weight"] = (rank, in_features, *kernel)
        shapes[base + ".lora_up.weight"] = (out_features, rank, *(1 for _ in kernel))
        shapes[base + ".alpha"] = ()
    return shapes


def random_lora(unet, recipe: str, seed: int = 0, rank: int | None = None) -> dict:
    """A seeded random LoRA in the recipe's layout for this UNet (CPU tensors in the file's dtype).

    down ~ N(0, 1/fan_in) and up ~ N(0, DELTA^2/rank) with alpha = rank, so the fused delta moves each adapted
    layer's output by about DELTA times its input's scale, whatever the layer's width: noticeable, never a blow-up.
    Each recipe draws its own weights from the seed.
    """
    import torch

    spec = layout(recipe)
    rank = rank or spec.rank
    dtype = getattr(torch, spec.dtype)
    generator = torch.Generator("cpu").manual_seed(seed * 1_000_003 + zlib.crc32(recipe.encode()))
    state = {}
    for key, shape in lora_shapes(unet, recipe, rank).items():
        if key.endswith(".alpha"):
            state[key] = torch.tensor(float(rank), dtype=dtype)
            continue
        fan_in = 1
        for size in shape[1:]:
            fan_in *= size
        std = fan_in**-0.5 if key.endswith(".lora_down.weight") else DELTA * rank**-0.5
        state[key] = torch.empty(shape, dtype=dtype).normal_(0.0, std, generator=generator)
    return state


def save(state: dict, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write a LoRA state dict as safetensors (give the recipe's `layout(...).metadata` for the real header)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=metadata)
    return path


def lora_source(spec, recipe: str) -> str | None:
    """Where the preset's LoRA of this recipe is: a local file (a hub file already in the cache, or a bundle's
    `fast/<recipe>.safetensors`), "random:<recipe>" for presets that build it, or None when it is not on this
    machine. Never downloads."""
    layout(recipe)  # unknown names fail here, before any lookup
    where = spec.fast_loras.get(recipe)
    if where is None:
        return None
    if where.startswith(RANDOM):
        return where
    from pipeline.models.inventory import FAST, inventory

    return inventory(spec).path(FAST + recipe)
