"""StyleRun: what one style of a run needs, built once by the runner and handed with each of its jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.frames import Item
from styles import Style

if TYPE_CHECKING:
    from pipeline.stages.generate import GenerateSettings, Generator, PlainDiffusersGenerator


@dataclass
class StyleRun:
    """What one style needs, built once: its settings, their hash, the stages that prepare its jobs (a restyle's
    edges; a declutter's removal mask, fill and edges), named as the stage table shows them, and its generator."""

    style: Style
    settings: GenerateSettings
    settings_hash: str
    threshold: float
    prepare: tuple[tuple[str, Any], ...]
    generator: Generator | PlainDiffusersGenerator
    stems: dict[Item, str]
    loras: list


def style_run(config, stack, style: Style, settings, generator) -> StyleRun:
    """One style's run, built once: its settings' hash, the stages that prepare its jobs, its generator."""
    from pipeline.stages.edges import EdgeDetector

    lines = style.lines_min_length if "lines" in settings.controls else None
    prepare = [("edges", EdgeDetector(style.canny_low, style.canny_high, lines))]
    if style.mode == "declutter":
        prepare = [*declutter_stages(config, stack), *prepare]
    return StyleRun(
        style,
        settings,
        config.result_hash(style, config.result_models(stack.spec)),
        config.quality_threshold(style),
        tuple(prepare),
        generator,
        {},
        config.loras_for(style),
    )


def declutter_stages(config, stack) -> list[tuple[str, Any]]:
    """What a declutter does before its refine pass: the removal mask from the photo's detections and scene, then
    LaMa's fill of it (the pass's starting picture)."""
    from pathlib import Path

    from pipeline.stages.fill import Filler
    from pipeline.stages.removal import RemovalMasker

    folder = Path(config.options.mask_dir) if config.options.mask_dir else None
    masker = RemovalMasker(config.remove_labels, config.keep_labels, folder)
    return [("mask", masker), ("fill", Filler(stack.lama, stack.device))]
