"""The 150 ADE20K (SceneParsing) class names, in the index order of SegFormer's ADE20K head: plain data, no torch."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

ADE20K_FILE = Path(__file__).resolve().parents[1] / "data" / "ade20k.json"


@lru_cache(maxsize=1)
def ade20k_labels() -> tuple[str, ...]:
    """The class names, read once from pipeline/data/ade20k.json."""
    return tuple(json.loads(ADE20K_FILE.read_text(encoding="utf-8"))["labels"])
