"""What of a preset is on this machine, where, and what is missing: asked once, offline, with one file rule and one
reader of `hub:` names. The plan, `doctor`, `models list`, `score` and the loaders all read this."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.models.presets import ModelSpec, cache_dir, hub_file_cached, hub_parts

HUB = "hub:"
BUILT = "built in memory"
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")  # what diffusers reads, either
TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
SD_CONFIGS = (
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "tokenizer/tokenizer_config.json",
    "scheduler/scheduler_config.json",
)
SD_WEIGHTS = (
    tuple(f"unet/{w}" for w in WEIGHTS),
    tuple(f"vae/{w}" for w in WEIGHTS),
    ("text_encoder/model.safetensors", "text_encoder/pytorch_model.bin"),
)
CONTROLNET_FILES = (("config.json",), WEIGHTS)
DEPTH_FILES = (("config.json",), ("preprocessor_config.json",), TRANSFORMERS_WEIGHTS)
SEGMENTER_FILES = (("config.json",), TRANSFORMERS_WEIGHTS)
CLIP_FILES = (("config.json",),)
# The optional parts of a preset: `modomo transform` with its defaults runs without them; each enables this.
OPTIONAL_ROLES = {
    "clip": "--room auto and the style part of the score",
    "upscaler": "super-resolution for --output-size (without it, a plain resize)",
    "controlnet lines": "the straight-line control of styles with [controls.lines] (without it, those styles run "
    "on depth and canny)",
    "segmentation": "--preserve window, door, fireplace, stairs and other parts of the room",
    "ip-adapter": "--style-ref and room sets (a reference photo steering the look)",
    "controlnet inpaint": "--mode declutter: the refine pass that redraws where furniture was taken out",
    "lama": "--mode declutter: the first fill (LaMa) of where furniture was taken out",
}
DECLUTTER_ROLES = ("controlnet inpaint", "lama")  # what --mode declutter needs beyond the required parts
FAST = "fast lora "  # a few-step recipe's LoRA is the part "fast lora RECIPE"


def offline() -> bool:
    """Whether loading may not fetch anything (HF_HUB_OFFLINE)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def yolo_dir() -> Path:
    """Where modomo keeps detector weights it downloads: its own cache, never another program's settings."""
    return cache_dir() / "yolo"


@dataclass(frozen=True)
class Part:
    """One model of a preset: where it comes from (`source`: a hub id, REPO/FILE or a path), where it is on this
    machine (`path`; BUILT for a random preset; None when it is not here), and whether loading could fetch it."""

    role: str
    source: str
    path: str | None
    fetchable: bool = False

    @property
    def present(self) -> bool:
        return self.path is not None

    @property
    def required(self) -> bool:
        return self.role not in OPTIONAL_ROLES and not self.role.startswith(FAST)


@dataclass(frozen=True)
class Inventory:
    """Every part of one preset, looked up once."""

    spec: ModelSpec
    parts: tuple[Part, ...]
    looked_in: tuple[str, ...]

    def part(self, role: str) -> Part | None:
        return next((p for p in self.parts if p.role == role), None)

    def has(self, role: str) -> bool:
        """Whether the preset has this part and it is on this machine."""
        part = self.part(role)
        return part is not None and part.present

    def path(self, role: str) -> str | None:
        part = self.part(role)
        return part.path if part is not None else None

    def missing(self, roles: tuple[str, ...] | None = None) -> list[Part]:
        """The required parts (of `roles`, or all) that are not on this machine."""
        return [p for p in self.parts if p.required and not p.present and (roles is None or p.role in roles)]


def locate(source: str, groups: tuple[tuple[str, ...], ...] = ()) -> str | None:
    """The one file rule. `hub:REPO/FILE` is one file in the hub cache; a hub repo id is present when every group of
    its files has one file cached (the path of the last group's); a path is present when it exists (a folder:
    when every group has one file in it)."""
    if source.startswith(HUB):
        return hub_file_cached(*hub_parts(source))
    path = Path(source).expanduser()
    if path.is_absolute() or path.exists():
        if path.is_dir():
            return str(path) if all(any((path / name).is_file() for name in group) for group in groups) else None
        return str(path) if path.is_file() else None
    try:
        found = [next(filter(None, (hub_file_cached(source, name) for name in group)), None) for group in groups]
    except ValueError:  # not a hub id at all: nothing to find
        return None
    return found[-1] if found and all(found) else None


def find_yolo(weights: str) -> str | None:
    """A detector weight: as given (a path), or a bare name in modomo's own folder."""
    path = Path(weights).expanduser()
    if path.is_file():
        return str(path.resolve())
    if path.parent == Path(".") and (yolo_dir() / path.name).is_file():
        return str((yolo_dir() / path.name).resolve())
    return None


def _required(spec: ModelSpec, fetchable: bool) -> list[Part]:
    sd_groups = tuple((c,) for c in SD_CONFIGS) + (() if spec.checkpoint else SD_WEIGHTS)
    parts = [Part("stable diffusion", spec.sd, locate(spec.sd, sd_groups), fetchable)]
    if spec.checkpoint:
        parts.append(Part("checkpoint", spec.checkpoint, locate(spec.checkpoint)))
    parts += [
        Part("controlnet depth", spec.controlnet_depth, locate(spec.controlnet_depth, CONTROLNET_FILES), fetchable),
        Part("controlnet canny", spec.controlnet_canny, locate(spec.controlnet_canny, CONTROLNET_FILES), fetchable),
        Part("depth", spec.depth, locate(spec.depth, DEPTH_FILES), fetchable),
        Part("sam2", spec.sam2_checkpoint.removeprefix(HUB), locate(spec.sam2_checkpoint), fetchable),
        Part("sam2 config", spec.sam2_config, locate(spec.sam2_config)),
        Part("yolo", spec.yolo, find_yolo(spec.yolo)),  # never downloaded on load
    ]
    return parts


def _ip_adapter(source: str) -> str | None:
    """Where the adapter is (its cached file, or the bundle's folder) when it and its image encoder are both here:
    the adapter is useless alone."""
    from pipeline.models.ip_adapter import ENCODER_FILES, SUBFOLDER, WEIGHT

    return locate(source, (*((name,) for name in ENCODER_FILES), (f"{SUBFOLDER}/{WEIGHT}",)))


def _optional(spec: ModelSpec) -> list[Part]:
    parts = []
    if spec.controlnet_lines:
        parts.append(Part("controlnet lines", spec.controlnet_lines, locate(spec.controlnet_lines, CONTROLNET_FILES)))
    if spec.segmenter:
        parts.append(Part("segmentation", spec.segmenter, locate(spec.segmenter, SEGMENTER_FILES)))
    if spec.clip:
        parts.append(Part("clip", spec.clip, locate(spec.clip, CLIP_FILES)))
    if spec.upscaler:
        parts.append(Part("upscaler", spec.upscaler.removeprefix(HUB), locate(spec.upscaler)))
    if spec.ip_adapter:
        parts.append(Part("ip-adapter", spec.ip_adapter, _ip_adapter(spec.ip_adapter)))
    if spec.controlnet_inpaint:
        where = locate(spec.controlnet_inpaint, CONTROLNET_FILES)
        parts.append(Part("controlnet inpaint", spec.controlnet_inpaint, where))
    if spec.lama:
        parts.append(Part("lama", spec.lama.removeprefix(HUB), locate(spec.lama)))
    for recipe, where in spec.fast_loras.items():
        parts.append(Part(FAST + recipe, where.removeprefix(HUB), locate(where)))
    return parts


def _built(spec: ModelSpec) -> list[Part]:
    """A preset whose models are built from a seed: every part it names is here."""
    sources = {
        "stable diffusion": spec.sd,
        "controlnet depth": spec.controlnet_depth,
        "controlnet canny": spec.controlnet_canny,
        "depth": spec.depth,
        "sam2": spec.sam2_checkpoint,
        "yolo": spec.yolo,
        "controlnet lines": spec.controlnet_lines,
        "segmentation": spec.segmenter,
        "clip": spec.clip,
        "upscaler": spec.upscaler,
        "ip-adapter": spec.ip_adapter,
        "controlnet inpaint": spec.controlnet_inpaint,
        "lama": spec.lama,
        **{FAST + recipe: where for recipe, where in spec.fast_loras.items()},
    }
    return [Part(role, source, BUILT) for role, source in sources.items() if source]


def inventory(spec: ModelSpec) -> Inventory:
    """What of `spec` is on this machine, looked up without network."""
    from huggingface_hub import constants

    if spec.builder:
        return Inventory(spec, tuple(_built(spec)), ())
    fetchable = not spec.local and not offline()
    looked_in = (spec.name,) if spec.local else (constants.HF_HUB_CACHE, str(yolo_dir()), str(Path.cwd()))
    return Inventory(spec, tuple(_required(spec, fetchable) + _optional(spec)), looked_in)


def hub_hint(model_id: str) -> str:
    """The one line for a hub model that is not in the local cache."""
    return (
        f"model {model_id!r} is not in the local Hugging Face cache "
        f"({os.environ.get('HF_HOME') or '~/.cache/huggingface'}); fetch the preset once with network "
        "(`modomo models download sd15`), use a bundle folder, or try modomo without any download: --models tiny"
    )


def check_weights(
    spec: ModelSpec, roles: tuple[str, ...] | None = None, fetch: bool = True, stock: Inventory | None = None
) -> None:
    """Before a preset loads: one error naming every required part missing (of `roles`, or all), when loading
    cannot fetch one of them, or at all without `fetch` (a command that loads one model never downloads it);
    `stock`: the preset's inventory, when the caller has it."""
    from pipeline.errors import ModomoError

    stock = stock or inventory(spec)
    missing = stock.missing(roles)
    if not missing or (fetch and all(part.fetchable for part in missing)):
        return
    names = ", ".join(f"{part.role} ({part.source})" for part in missing)
    where = f"looked in {', '.join(stock.looked_in)}; " if stock.looked_in else ""
    raise ModomoError(
        f"model weights not found for {spec.name}: {names}; {where}fetch them once with network: "
        f"`modomo models download {spec.name}`, or try modomo without any download: --models tiny"
    )


def ip_adapter_missing(spec: ModelSpec) -> str:
    """The one line for a reference the preset cannot take: where the adapter comes from, and how to get it."""
    if spec.local or not spec.ip_adapter:  # a bundle: nothing to download for it, but sd15 can fetch its own
        return (
            f"style references and room sets need an IP-Adapter, which {spec.name} lacks (a bundle keeps it in "
            "ip-adapter/: models/ip-adapter_sd15.safetensors and models/image_encoder/, the layout of "
            "h94/IP-Adapter); or run --models sd15 after `modomo models download sd15 --style-ref`"
        )
    return (
        f"style references and room sets need the IP-Adapter ({spec.ip_adapter}: "
        "models/ip-adapter_sd15.safetensors and its image encoder), not on this machine; fetch it once with "
        f"`modomo models download {spec.name} --style-ref`"
    )


def declutter_missing(spec: ModelSpec, stock: Inventory, mode: str = "declutter") -> str | None:
    """The one line for --mode declutter or --mode stage (a furnished photo is emptied first) when the preset lacks
    the inpaint ControlNet or LaMa here (naming each, and how to get them); None when both are on this machine."""
    missing = [role for role in DECLUTTER_ROLES if not stock.has(role)]
    if not missing:
        return None
    sources = {"controlnet inpaint": spec.controlnet_inpaint, "lama": spec.lama}
    names = ", ".join(f"{role} ({sources[role].removeprefix(HUB)})" if sources[role] else role for role in missing)
    needs = f"--mode {mode} needs the inpaint ControlNet and LaMa"
    if spec.local or not all(sources[role] for role in missing):  # a bundle: nothing to download for it
        return (
            f"{needs}; {spec.name} lacks {names} (a bundle keeps them in controlnet-inpaint/ and lama/); or run "
            "--models sd15 after `modomo models download sd15 --declutter`"
        )
    fetch = f"modomo models download {spec.name} --declutter"
    return f"{needs}; not on this machine: {names}; fetch them once with `{fetch}`"
