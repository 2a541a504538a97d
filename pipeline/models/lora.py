"""LoRA adapters: loaded once into the pipeline, switched per style (`--lora FILE[:SCALE]`, style `loras`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ModomoError, UsageError


@dataclass(frozen=True)
class Lora:
    """A LoRA weights file and the scale it is applied at."""

    path: Path
    scale: float = 1.0

    @property
    def adapter(self) -> str:
        """A stable adapter name for this file."""
        return "lora_" + hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:10]

    def to_json(self) -> dict:
        return {"file": str(self.path), "scale": self.scale}


def parse(text: str, base: Path | None = None) -> Lora:
    """`FILE[:SCALE]`; a relative FILE is taken from `base` (a style file's folder) when given."""
    file, _, scale = text.rpartition(":") if text.count(":") and _is_number(text.rpartition(":")[2]) else (text, "", "")
    path = Path(file).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise UsageError(f"LoRA file not found: {path}")
    return Lora(path, float(scale) if scale else 1.0)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def load(pipe, loras: list[Lora]) -> None:
    """Load every distinct LoRA file once, each under its own adapter name, all inactive until `activate`."""
    present = {name for names in (pipe.get_list_adapters() or {}).values() for name in names}
    seen = set(present)
    for lora in loras:
        if lora.adapter in seen:
            continue
        seen.add(lora.adapter)
        try:
            pipe.load_lora_weights(str(lora.path.parent), weight_name=lora.path.name, adapter_name=lora.adapter)
        except Exception as exc:  # noqa: BLE001 - corrupt file, wrong architecture, missing peft
            raise ModomoError(f"{lora.path}: cannot load LoRA: {str(exc).splitlines()[0]}") from None
    if seen:
        pipe.disable_lora()


def activate(pipe, loras: list[Lora]) -> None:
    """Use exactly these adapters at these scales (none: the base weights)."""
    if not loras:
        if getattr(pipe, "get_list_adapters", None) and pipe.get_list_adapters():
            pipe.disable_lora()
        return
    pipe.enable_lora()
    pipe.set_adapters([lora.adapter for lora in loras], adapter_weights=[lora.scale for lora in loras])
