"""`modomo doctor`: what this machine has and lacks for each preset, offline; the CLI form of /health."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from pipeline.models.inventory import FAST, OPTIONAL_ROLES, inventory, yolo_dir
from pipeline.models.presets import BUNDLE_FILE, TINY_VERSION, ModelSpec, cache_dir, sd15
from pipeline.models.recipes import DEFAULT_RECIPE

OK, MISSING, WARN, INFO = "ok", "missing", "warn", "info"
# The optional parts the plain `modomo models download` leaves out, and the option that fetches each.
FETCH_OPTIONS = {"ip-adapter": "--style-ref", "controlnet inpaint": "--declutter", "lama": "--declutter"}
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
    """(role, id, path on this machine or None) for every model of a preset but its few-step LoRAs."""
    return [(p.role, p.source, p.path) for p in inventory(spec).parts if not p.role.startswith(FAST)]


def fast_lora_files(spec: ModelSpec) -> list[tuple[str, str, str | None]]:
    """(recipe, id, path on this machine or None) for each few-step LoRA of a preset; optional: only --fast reads
    them."""
    parts = inventory(spec).parts
    return [(p.role.removeprefix(FAST), p.source, p.path) for p in parts if p.role.startswith(FAST)]


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
        found = path if path == model_id else f"{model_id}: {path}"
        return Check(spec.name, role, OK, found, required=enables is None, enables=enables)
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
    from pipeline.models.vision import ultralytics_offline

    ultralytics_offline()
    from ultralytics.utils import SETTINGS_FILE

    return [
        Check("ultralytics", "settings", INFO, str(SETTINGS_FILE)),
        Check("ultralytics", "detector", INFO, f"a bare weight name is looked for in {Path.cwd()}, then {yolo_dir()}"),
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
