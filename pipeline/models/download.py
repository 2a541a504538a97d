"""Fetch a preset's weights into the standard caches (Hugging Face cache, ultralytics weights_dir), and on
request the few-step LoRAs that --fast fuses, the IP-Adapter that --style-ref steers with, and the inpaint ControlNet
and LaMa of --mode declutter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.errors import ModomoError, UsageError
from pipeline.models.presets import ModelSpec, hub_parts

# Only what the loaders read: safetensors in full precision, configs, tokenizer files.
SD_FILES = [
    "model_index.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/*",
    "scheduler/*",
]
CONTROLNET_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]
DEPTH_FILES = ["config.json", "model.safetensors", "preprocessor_config.json"]
SEGMENTER_FILES = ["config.json", "preprocessor_config.json", "model.safetensors", "pytorch_model.bin"]
CLIP_FILES = [
    "config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "tokenizer*",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
]


def download(spec: ModelSpec, report: Callable[[str], None] = print) -> list[str]:
    """Download every hub model of `spec` (no-op for bundles); returns what was fetched."""
    if spec.local:
        return []
    from huggingface_hub import hf_hub_download, snapshot_download

    fetched = []
    try:
        repos = [
            (spec.sd, SD_FILES),
            (spec.controlnet_depth, CONTROLNET_FILES),
            (spec.controlnet_canny, CONTROLNET_FILES),
            (spec.depth, DEPTH_FILES),
        ]
        if spec.clip:
            repos.append((spec.clip, CLIP_FILES))
        if spec.controlnet_lines:  # styles' [controls.lines]
            repos.append((spec.controlnet_lines, CONTROLNET_FILES))
        if spec.segmenter:  # --preserve window, door, ...
            repos.append((spec.segmenter, SEGMENTER_FILES))
        for repo, patterns in repos:
            report(f"fetching {repo}")
            fetched.append(snapshot_download(repo, allow_patterns=patterns))
        for name in (spec.sam2_checkpoint, spec.upscaler):  # single files: SAM2, the super-resolution weight
            if name and name.startswith("hub:"):
                repo, filename = hub_parts(name)
                report(f"fetching {repo}/{filename}")
                fetched.append(hf_hub_download(repo, filename))
    except Exception as exc:  # noqa: BLE001 - offline, missing repo, auth: all one message
        raise ModomoError(
            f"cannot download {repo}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            " (is the network reachable and HF_HUB_OFFLINE unset?)"
        ) from None
    report(f"fetching {spec.yolo}")
    fetched.append(str(download_yolo(spec.yolo)))
    return fetched


def fast_recipes(choice: str | None) -> list[str]:
    """The recipes `--fast-recipe` names: one, or `all`; none given is the default recipe."""
    from pipeline.models.recipes import DEFAULT_RECIPE, RECIPES

    if choice is None:
        return [DEFAULT_RECIPE]
    if choice == "all":
        return list(RECIPES)
    if choice not in RECIPES:
        raise UsageError(f"--fast-recipe {choice!r}: choose {', '.join(RECIPES)} or all")
    return [choice]


def download_fast(spec: ModelSpec, recipes: list[str], report: Callable[[str], None] = print) -> list[str]:
    """Fetch these recipes' LoRA files of a hub preset into the Hugging Face cache (presets that build or bundle
    theirs have nothing to fetch); returns the cached paths."""
    from huggingface_hub import hf_hub_download

    fetched = []
    for name in recipes:
        where = spec.fast_loras.get(name, "")
        if not where.startswith("hub:"):
            continue
        repo, filename = hub_parts(where)
        report(f"fetching {repo}/{filename} (--fast {name})")
        try:
            fetched.append(hf_hub_download(repo, filename))
        except Exception as exc:  # noqa: BLE001 - offline, missing repo, auth: all one message
            raise ModomoError(
                f"cannot download {repo}/{filename}: {first_line(exc)}"
                " (is the network reachable and HF_HUB_OFFLINE unset?)"
            ) from None
    return fetched


def download_ip_adapter(spec: ModelSpec, report: Callable[[str], None] = print) -> list[str]:
    """Fetch the IP-Adapter file and its image encoder of a hub preset into the Hugging Face cache (bundles carry
    theirs, random-sd15 builds its own); returns the cached paths."""
    if spec.local or spec.builder or not spec.ip_adapter:
        return []
    from huggingface_hub import hf_hub_download

    from pipeline.models.ip_adapter import hub_files

    fetched = []
    for filename in hub_files():
        report(f"fetching {spec.ip_adapter}/{filename} (--style-ref)")
        try:
            fetched.append(hf_hub_download(spec.ip_adapter, filename))
        except Exception as exc:  # noqa: BLE001 - offline, missing repo, auth: all one message
            raise ModomoError(
                f"cannot download {spec.ip_adapter}/{filename}: {first_line(exc)}"
                " (is the network reachable and HF_HUB_OFFLINE unset?)"
            ) from None
    return fetched


def download_declutter(spec: ModelSpec, report: Callable[[str], None] = print) -> list[str]:
    """Fetch --mode declutter's inpaint ControlNet and LaMa weight of a hub preset into the Hugging Face cache
    (bundles carry theirs, random-sd15 builds its own); returns the cached paths."""
    if spec.local or spec.builder:
        return []
    from huggingface_hub import hf_hub_download, snapshot_download

    fetched = []
    if spec.controlnet_inpaint:
        repo = spec.controlnet_inpaint
        report(f"fetching {repo} (--declutter)")
        fetched.append(_fetch(repo, lambda: snapshot_download(repo, allow_patterns=CONTROLNET_FILES)))
    if spec.lama and spec.lama.startswith("hub:"):
        repo, filename = hub_parts(spec.lama)
        report(f"fetching {repo}/{filename} (--declutter)")
        fetched.append(_fetch(f"{repo}/{filename}", lambda: hf_hub_download(repo, filename)))
    return fetched


def _fetch(name: str, fetch: Callable[[], str]) -> str:
    """One hub download, its failure as one line naming it."""
    try:
        return fetch()
    except Exception as exc:  # noqa: BLE001 - offline, missing repo, auth: all one message
        raise ModomoError(
            f"cannot download {name}: {first_line(exc)} (is the network reachable and HF_HUB_OFFLINE unset?)"
        ) from None


def first_line(exc: Exception) -> str:
    """The first line of an error: hub errors span several, and the CLI shows one."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def download_yolo(name: str) -> Path:
    """Fetch an ultralytics release weight into modomo's own detector folder (models.inventory.yolo_dir)."""
    from pipeline.models.inventory import yolo_dir

    target = yolo_dir() / name
    target.parent.mkdir(parents=True, exist_ok=True)
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
