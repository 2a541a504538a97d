"""Parts of the room --preserve can keep, by name, and the ADE20K classes each stands for: plain data, no torch
(the options are checked before any model loads). The scene segmentation stage (`stages.architecture`) finds them.
"""

from __future__ import annotations

import numpy as np

from pipeline.models.ade20k import ade20k_labels

# A part's name -> its ADE20K (SceneParsing) classes, as the segmentation model's labels spell them.
PARTS: dict[str, tuple[str, ...]] = {
    "window": ("windowpane",),
    "door": ("door", "screen door"),
    "fireplace": ("fireplace",),
    "stairs": ("stairs", "stairway", "step"),
    "radiator": ("radiator",),
    "column": ("column",),
    "built-in cabinet": ("cabinet",),
    "wardrobe": ("wardrobe",),
    "wall": ("wall",),
    "floor": ("floor",),
    "ceiling": ("ceiling",),
    "railing": ("railing", "bannister"),
    "blind": ("blind",),
    "shower": ("shower",),
    "bathtub": ("bathtub",),
    "countertop": ("countertop", "counter"),
    "kitchen island": ("kitchen island",),
}
ARCHITECTURE = "architecture"  # the alias for what restyling most often breaks
ARCHITECTURE_SET = ("window", "door", "fireplace", "stairs")
PART_ALIASES = {
    "windows": "window",
    "doors": "door",
    "fireplaces": "fireplace",
    "staircase": "stairs",
    "stairway": "stairs",
    "steps": "stairs",
    "radiators": "radiator",
    "columns": "column",
    "pillar": "column",
    "pillars": "column",
    "cabinet": "built-in cabinet",
    "cabinets": "built-in cabinet",
    "built-in cabinets": "built-in cabinet",
    "built-ins": "built-in cabinet",
    "wardrobes": "wardrobe",
    "walls": "wall",
    "blinds": "blind",
    "banister": "railing",
    "bannister": "railing",
    "counter": "countertop",
    "island": "kitchen island",
}


def part_names(word: str) -> tuple[str, ...] | None:
    """The parts a word names (`architecture`: windows, doors, fireplace, stairs), any case; None: not a part."""
    key = " ".join(word.lower().split())
    if key == ARCHITECTURE:
        return ARCHITECTURE_SET
    key = PART_ALIASES.get(key, key)
    return (key,) if key in PARTS else None


def room_parts(labels) -> set[str]:
    """The names among kept labels that are parts of the room (the rest are detected objects)."""
    return {label for label in labels or () if label in PARTS}


def class_ids(names) -> list[int]:
    """The ADE20K indices of parts of the room."""
    labels = ade20k_labels()
    return sorted({labels.index(cls) for name in names for cls in PARTS[name]})


def part_region(scene: np.ndarray, names) -> np.ndarray:
    """Bool H x W: the pixels of a scene map (ADE20K class per pixel) that belong to the named parts."""
    return np.isin(scene, class_ids(names))
