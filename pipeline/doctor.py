"""`modomo doctor`: what this machine has and lacks for each preset, offline; the CLI form of /health."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from pipeline.models.presets import BUNDLE_FILE, TINY_VERSION, ModelSpec, cache_dir, hub_file_cached, sd15
from pipeline.models.recipes import DEFAULT_RECIPE

OK, MISSING, WARN, INFO = "ok", "missing", "warn", "info"
# The optional parts of a preset: `modomo transform` with its defaults runs without them; each enables this.
OPTIONAL_ROLES = {
    "clip": "--room auto and the style part of the score",
    "upscaler": "super-resolution for --output-size (without it, a plain resize)",
    "controlnet lines": "the straight-line control of styles with [controls.lines] (without it, those styles run "
    "on depth and canny)",
    "segmentation": "--preserve window, door, fireplace, stairs and other parts of the room",
    "ip-adapter": "--style-ref and room sets (a reference photo steering the look)",
}
# The optional parts the plain `modomo models download` leaves out, and the option that fetches each.
FETCH_OPTIONS = {"ip-adapter": "--style-ref"}
R2_ENABLES = "r2:// inputs and outputs"
OPTIONAL_PACKAGES = {
    "boto3": R2_ENABLES,
    "c2pa-python": "signed C2PA content credentials (--sign-cert) and their check in verify",
}


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table; `required` lines that are not ok make the exit code non-zero. An optional
    line that is not ok is a warning; `enables` says what it is needed for."""

    area: str
    name: str
    status: str
    detail: str
    required: bool = False
    enables: str | None = None


def model_files(spec: ModelSpec) -> list[tuple[str, str, str | None]]:
    """(role, id, cached path or None) for every weight a hub preset needs."""
    from pipeline.models.vision import yolo_weights_dir

    rows = [
        ("stable diffusion", spec.sd, hub_file_cached(spec.sd, "unet/diffusion_pytorch_model.safetensors")),
        (
            "controlnet depth",
            spec.controlnet_depth,
            hub_file_cached(spec.controlnet_depth, "diffusion_pytorch_model.safetensors"),
        ),
        (
            "controlnet canny",
            spec.controlnet_canny,
            hub_file_cached(spec.controlnet_canny, "diffusion_pytorch_model.safetensors"),
        ),
        ("depth", spec.depth, hub_file_cached(spec.depth, "model.safetensors")),
    ]
    repo, _, filename = spec.sam2_checkpoint.removeprefix("hub:").rpartition("/")
    rows.append(("sam2", f"{repo}/{filename}", hub_file_cached(repo, filename)))
    if spec.controlnet_lines:  # styles' [controls.lines]
        rows.append(
            (
                "controlnet lines",
                spec.controlnet_lines,
                hub_file_cached(spec.controlnet_lines, "diffusion_pytorch_model.safetensors"),
            )
        )
    if spec.segmenter:  # --preserve window, door, ...
        rows.append(("segmentation", spec.segmenter, segmenter_cached(spec.segmenter)))
    if spec.clip:  # --room auto and the style-adherence score
        rows.append(("clip", spec.clip, hub_file_cached(spec.clip, "config.json")))
    if spec.upscaler and spec.upscaler.startswith("hub:"):  # --output-size above the working size
        repo, _, filename = spec.upscaler.removeprefix("hub:").rpartition("/")
        rows.append(("upscaler", f"{repo}/{filename}", hub_file_cached(repo, filename)))
    if spec.ip_adapter:  # --style-ref and room sets
        rows.append(("ip-adapter", spec.ip_adapter, ip_adapter_cached(spec.ip_adapter)))
    candidates = [Path(spec.yolo), yolo_weights_dir() / spec.yolo]
    rows.append(("yolo", spec.yolo, next((str(p) for p in candidates if p.is_file()), None)))
    return rows


def segmenter_cached(model_id: str) -> str | None:
    """The cached weight of a hub segmentation model, in either format its repo may hold."""
    return hub_file_cached(model_id, "model.safetensors") or hub_file_cached(model_id, "pytorch_model.bin")


def ip_adapter_cached(repo: str) -> str | None:
    """The cached adapter file of a hub IP-Adapter when its image encoder is cached too (it is useless alone)."""
    from pipeline.models.ip_adapter import hub_files

    paths = [hub_file_cached(repo, name) for name in hub_files()]
    return paths[0] if all(paths) else None


def fast_lora_files(spec: ModelSpec) -> list[tuple[str, str, str | None]]:
    """(recipe, hub id, cached path or None) for each few-step LoRA of a hub preset; optional: only --fast reads
    them."""
    rows = []
    for name, where in spec.fast_loras.items():
        if where.startswith("hub:"):
            repo, _, filename = where.removeprefix("hub:").rpartition("/")
            rows.append((name, f"{repo}/{filename}", hub_file_cached(repo, filename)))
    return rows


def fast_checks(spec: ModelSpec) -> list[Check]:
    """One optional line per recipe: cached, or a warning with the command that fetches it. Never a problem:
    without it only `--fast` with that recipe is unavailable."""
    checks = []
    for name, model_id, path in fast_lora_files(spec):
        enables = "--fast" if name == DEFAULT_RECIPE else f"--fast --fast-recipe {name}"
        fetch = f"modomo models download {spec.name} --fast --fast-recipe {name}"
        checks.append(
            Check(
                spec.name,
                f"fast lora {name}",
                OK if path else WARN,
                f"{model_id}: {path}" if path else f"{model_id}: not cached, optional for {enables} ({fetch})",
                enables=enables,
            )
        )
    return checks


def model_check(spec: ModelSpec, role: str, model_id: str, path: str | None) -> Check:
    """A required weight not cached is missing (a problem); an optional one is a warning naming what it enables."""
    enables = OPTIONAL_ROLES.get(role)
    if path:
        return Check(spec.name, role, OK, f"{model_id}: {path}", required=enables is None, enables=enables)
    fetch = " ".join(filter(None, ("modomo models download", spec.name, FETCH_OPTIONS.get(role))))
    if enables:
        return Check(
            spec.name, role, WARN, f"{model_id}: not cached, optional for {enables} ({fetch})", enables=enables
        )
    return Check(spec.name, role, MISSING, f"{model_id}: not cached ({fetch})", required=True)


def system_checks() -> list[Check]:
    import torch

    from pipeline import __version__

    checks = [
        Check("system", "modomo", OK, __version__, required=True),
        Check("system", "python", OK, platform.python_version(), required=True),
        Check("system", "torch", OK, f"{torch.__version__} (CUDA {torch.version.cuda or 'none'})", required=True),
    ]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            checks.append(Check("system", f"cuda:{index}", OK, f"{props.name}, {props.total_memory / 2**30:.0f} GB"))
    else:
        checks.append(Check("system", "gpu", WARN, "no CUDA GPU: runs on the CPU (slow for sd15; fine for tiny)"))
        from pipeline.models.precision import cpu_supports_bf16

        fast = cpu_supports_bf16()
        checks.append(
            Check(
                "system",
                "cpu bf16",
                INFO,
                "AMX or AVX-512 BF16: --dtype auto runs bf16"
                if fast
                else "no AMX or AVX-512 BF16: --dtype auto runs fp32",
            )
        )
    for package in ("diffusers", "transformers", "ultralytics", "sam2", "boto3", "c2pa-python"):
        enables = OPTIONAL_PACKAGES.get(package)
        try:
            from importlib.metadata import version

            checks.append(Check("system", package, OK, version(package), required=enables is None, enables=enables))
        except Exception:  # noqa: BLE001 - a missing package is exactly what doctor reports
            if enables:
                checks.append(Check("system", package, WARN, f"not installed, optional for {enables}", enables=enables))
            else:
                checks.append(Check("system", package, MISSING, "not installed", required=True))
    return checks


def preset_checks() -> list[Check]:
    checks = []
    hf_home = os.environ.get("HF_HOME") or "~/.cache/huggingface"
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    checks.append(Check("models", "HF_HOME", INFO, f"{hf_home}{' (HF_HUB_OFFLINE set)' if offline else ''}"))
    spec = sd15()
    checks += [model_check(spec, role, model_id, path) for role, model_id, path in model_files(spec)]
    checks += fast_checks(spec)
    tiny = cache_dir() / f"tiny-v{TINY_VERSION}" / BUNDLE_FILE
    checks.append(
        Check(
            "tiny",
            "bundle",
            OK if tiny.is_file() else INFO,
            str(tiny.parent) if tiny.is_file() else f"built on first use into {tiny.parent}",
        )
    )
    checks.append(Check("random-sd15", "architectures", OK, "built in memory from configs, nothing to fetch"))
    return checks


def ultralytics_checks() -> list[Check]:
    from pipeline.models.vision import ultralytics_offline, yolo_weights_dir

    ultralytics_offline()
    from ultralytics.utils import SETTINGS_FILE

    return [
        Check("ultralytics", "settings", INFO, str(SETTINGS_FILE)),
        Check("ultralytics", "weights_dir", INFO, str(yolo_weights_dir())),
        Check("ultralytics", "offline", INFO, f"YOLO_OFFLINE={os.environ.get('YOLO_OFFLINE', '')}"),
    ]


def r2_checks() -> list[Check]:
    """Which R2 variables are set (never their values), and whether the bucket answers when they are."""
    from pipeline.r2 import Remote, Settings, parse

    names = ("R2_ENDPOINT_URL", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_BUCKET_NAME", "CDN_DOMAIN")
    checks = [
        Check("r2", name, OK if os.environ.get(name) else INFO, "set" if os.environ.get(name) else "not set")
        for name in names
    ]
    settings = Settings.from_env()
    if settings.bucket and settings.access_key_id:
        remote = Remote(settings)
        try:
            remote.check(parse("r2:///", settings.bucket))
            checks.append(Check("r2", "bucket", OK, f"{settings.bucket} reachable"))
        except Exception as exc:  # noqa: BLE001 - the reason is the report
            checks.append(Check("r2", "bucket", WARN, str(exc), enables=R2_ENABLES))
    return checks


def run_checks() -> list[Check]:
    return system_checks() + preset_checks() + ultralytics_checks() + r2_checks()
