"""Fetch a preset's weights into the standard caches (Hugging Face cache, ultralytics weights_dir)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.errors import ModomoError
from pipeline.models.presets import ModelSpec

# Only what the loaders read: safetensors in full precision, configs, tokenizer files.
SD_FILES = [
    "model_index.json",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json", "text_encoder/model.safetensors",
    "tokenizer/*", "scheduler/*",
]
CONTROLNET_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]
DEPTH_FILES = ["config.json", "model.safetensors", "preprocessor_config.json"]
CLIP_FILES = ["config.json", "model.safetensors", "preprocessor_config.json", "tokenizer*", "vocab.json", "merges.txt",
              "special_tokens_map.json"]


def download(spec: ModelSpec, report: Callable[[str], None] = print) -> list[str]:
    """Download every hub model of `spec` (no-op for bundles); returns what was fetched."""
    if spec.local:
        return []
    from huggingface_hub import hf_hub_download, snapshot_download

    fetched = []
    try:
        repos = [(spec.sd, SD_FILES), (spec.controlnet_depth, CONTROLNET_FILES),
                 (spec.controlnet_canny, CONTROLNET_FILES), (spec.depth, DEPTH_FILES)]
        if spec.clip:
            repos.append((spec.clip, CLIP_FILES))
        for repo, patterns in repos:
            report(f"fetching {repo}")
            fetched.append(snapshot_download(repo, allow_patterns=patterns))
        for name in (spec.sam2_checkpoint, spec.upscaler):  # single files: SAM2, the super-resolution weight
            if name and name.startswith("hub:"):
                repo, _, filename = name.removeprefix("hub:").rpartition("/")
                report(f"fetching {repo}/{filename}")
                fetched.append(hf_hub_download(repo, filename))
    except Exception as exc:  # noqa: BLE001 - offline, missing repo, auth: all one message
        raise ModomoError(f"cannot download {repo}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                          " (is the network reachable and HF_HUB_OFFLINE unset?)") from None
    report(f"fetching {spec.yolo}")
    fetched.append(str(download_yolo(spec.yolo)))
    return fetched


def download_yolo(name: str) -> Path:
    """Fetch an ultralytics release weight into ultralytics' weights_dir."""
    from pipeline.models.vision import yolo_weights_dir

    target = yolo_weights_dir() / name
    if target.is_file():
        return target
    from ultralytics.utils.downloads import attempt_download_asset

    try:
        path = Path(attempt_download_asset(str(target)))
    except Exception as exc:  # noqa: BLE001
        raise ModomoError(f"cannot download YOLO weight {name}: {exc}") from None
    if not path.is_file():
        raise ModomoError(f"cannot download YOLO weight {name} (is the network reachable?)")
    return path
