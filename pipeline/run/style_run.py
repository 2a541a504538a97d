"""StyleRun: what one style of a run needs, built once by the runner and handed with each of its jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.frames import Item
from styles import Style

if TYPE_CHECKING:
    from pipeline.stages.edges import EdgeDetector
    from pipeline.stages.generate import GenerateSettings, Generator, PlainDiffusersGenerator


@dataclass
class StyleRun:
    """What one style needs, built once: its settings, their hash, its own edge and generate stages."""

    style: Style
    settings: GenerateSettings
    settings_hash: str
    threshold: float
    edges: EdgeDetector
    generator: Generator | PlainDiffusersGenerator
    stems: dict[Item, str]
    loras: list
