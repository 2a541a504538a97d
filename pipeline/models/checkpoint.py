"""`--checkpoint FILE.safetensors`: a single-file SD1.5 fine-tune (original layout) in place of the preset's
UNet, VAE and text encoder, read by diffusers' single-file loader with the preset's configs (no download)."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.errors import ModomoError, UsageError


def check(path: str | Path) -> Path:
    """The checkpoint file, or a usage error naming it."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(f"--checkpoint {file}: no such file")
    if file.suffix.lower() not in (".safetensors", ".ckpt"):
        raise UsageError(f"--checkpoint {file}: expected a .safetensors (or .ckpt) single-file checkpoint")
    return file


def load_components(file: Path, config_folder: str, dtype: torch.dtype, local_only: bool) -> dict:
    """UNet, VAE and text encoder from one file; the configs come from the preset's diffusers folder or repo."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    from pipeline.models.runtime import quiet_libraries

    quiet_libraries()
    parts = {"unet": UNet2DConditionModel, "vae": AutoencoderKL}
    try:
        loaded = {
            name: cls.from_single_file(
                str(file), config=config_folder, subfolder=name, torch_dtype=dtype, local_files_only=local_only
            )
            for name, cls in parts.items()
        }
        loaded["text_encoder"] = _text_encoder(file, config_folder, dtype, CLIPTextModel)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModomoError(f"{file}: not a usable SD1.5 checkpoint: {str(exc).splitlines()[0]}") from None
    return loaded


def _text_encoder(file: Path, config_folder: str, dtype: torch.dtype, cls):
    """The CLIP text encoder's weights from the checkpoint (prefix cond_stage_model.transformer.)."""
    from diffusers.loaders.single_file_utils import load_single_file_checkpoint

    state = load_single_file_checkpoint(str(file))
    prefix = "cond_stage_model.transformer."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise KeyError("it holds no text encoder (cond_stage_model.transformer.*)")
    from transformers import CLIPTextConfig

    model = cls(CLIPTextConfig.from_pretrained(config_folder, subfolder="text_encoder")).to(dtype)
    missing, _ = model.load_state_dict(weights, strict=False)
    if [k for k in missing if "position_ids" not in k]:
        raise KeyError(f"text encoder weights missing: {', '.join(missing[:3])}")
    return model
