"""The room types a prompt names (pipeline/data/rooms.toml): their labels, the names still accepted for them, and
the CLIP text `--room auto` compares each with."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOMS_FILE = Path(__file__).resolve().parents[1] / "pipeline" / "data" / "rooms.toml"
AUTO_ROOM = "auto"  # found per photo by the preset's CLIP


def _rooms() -> tuple[tuple[str, ...], dict[str, str], str]:
    data = tomllib.loads(ROOMS_FILE.read_text(encoding="utf-8"))
    return tuple(data["labels"]), dict(data.get("aliases", {})), data["template"]


ROOMS, ROOM_ALIASES, ROOM_TEMPLATE = _rooms()


def room_name(text: str) -> str | None:
    """A room type as given (any case, an alias), or None when it is not one."""
    key = " ".join(text.lower().split())
    key = ROOM_ALIASES.get(key, key)
    return key if key in ROOMS or key == AUTO_ROOM else None
