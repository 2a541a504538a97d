"""`modomo bench --mode stage`: what each timed run's passes were given, and the staging's summary.

A staging runs up to three diffusion passes per photo: a furnished photo is emptied first (the declutter's own
pass, its `declutter` stage), the region is painted from noise (`generate`), then only the furniture that pass
added is drawn again (`second pass`). With --compare-diffusers every one of them is diffusers'
`StableDiffusionControlNetInpaintPipeline`, one `pipe()` per image, on the same photos, models and seeds.

Unlike a declutter's, a staging's later inputs are made by the run's own earlier passes: the region is found on
the emptied room, the second pass's mask on the first pass's picture, and modomo's pictures and diffusers' differ
by a level or two. So the summary does not claim the same frames: as the generate stage begins it notes each
frame's seed, whether it was emptied first and its region, as validation begins the mask its second pass redrew,
and it says how far each baseline's masks agree with modomo's (intersection over union). A frame whose first
pass added nothing has no second pass to run: the summary counts them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from pipeline.bench.declutter import MODOMO, SHARED_STAGES, against_modomo, generators, stage_rows
from pipeline.config import RunConfig
from pipeline.frames import Frame

STAGE_STAGES = ("declutter", "region", "edges", "generate", "compose", "second pass")
PASSES = ("generate", "second pass")  # the staging's own passes: what plain diffusers' is measured against
BOTH = "generate + second pass"
AGREE = 0.99  # masks agreeing less than this (IoU) make a ratio compare somewhat different work


@dataclass(frozen=True)
class Staged:
    """What one frame's passes were given: its seed, whether it was emptied first, its region and the added
    furniture its second pass redrew (None before validation, or without a second pass)."""

    seed: int
    emptied: bool
    region: np.ndarray
    added: np.ndarray | None = None


def key(frame: Frame) -> str:
    return f"{frame.item.identity}#{frame.variation}"


class StageLog:
    """Per timed run (by name), per frame (input and variation), what its passes were given."""

    def __init__(self):
        self.runs: dict[str, dict[str, Staged]] = {}

    def watch(self, name: str, on_event: Callable | None = None) -> Callable:
        """A run's on_event: notes its frames as the generate and validate stages begin, then hands every event
        on."""
        seen = self.runs.setdefault(name, {})
        seen.clear()

        def event(kind: str, **data) -> None:
            if kind == "stage" and data.get("stage") == "generate":
                for frame in data["frames"]:
                    region = np.asarray(frame.region if frame.region is not None else np.zeros((0, 0)), dtype=bool)
                    seen[key(frame)] = Staged(frame.seed, frame.before is not None, region)
            elif kind == "stage" and data.get("stage") == "validate":
                for frame in data["frames"]:
                    if key(frame) in seen and frame.added is not None:
                        seen[key(frame)] = replace(seen[key(frame)], added=np.asarray(frame.added, dtype=bool))
            if on_event is not None:
                on_event(kind, **data)

        return event

    def agreement(self) -> dict[str, dict]:
        """Per other run: whether every frame had modomo's seed and was emptied first as modomo's was, and the
        mean and least IoU of its regions and added masks with modomo's (None where neither has one)."""
        found = {}
        for name, ours, theirs, keys in against_modomo(self.runs):
            pairs = [(ours.get(k), theirs.get(k)) for k in keys]
            whole = all(a is not None and b is not None for a, b in pairs)
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            found[name] = {
                "frames": whole,
                "seeds": whole and all(a.seed == b.seed for a, b in pairs),
                "emptied": whole and all(a.emptied == b.emptied for a, b in pairs),
                "region_iou": iou_range([iou(a.region, b.region) for a, b in pairs]),
                "added_iou": iou_range([iou(a.added, b.added) for a, b in pairs if a.added is not None or
                                        b.added is not None]),
            }  # fmt: skip
        return found


def iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Intersection over union of two masks (1 when both are empty; 0 when one is missing or they differ in
    shape)."""
    if a is None or b is None or a.shape != b.shape:
        return 0.0
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def iou_range(values: list[float]) -> dict | None:
    return {"mean": float(np.mean(values)), "min": float(min(values))} if values else None


def shares(masks: list[np.ndarray]) -> dict | None:
    """The masks' shares of their photos: mean, least, most."""
    areas = [float(m.mean()) for m in masks if m.size]
    if not areas:
        return None
    return {"mean": float(np.mean(areas)), "min": min(areas), "max": max(areas)}


def both_passes(summary: dict) -> dict:
    """The staging's two passes together, per image: modomo's and each baseline's, with modomo's over theirs."""
    rows = stage_rows(summary, PASSES)
    total = {}
    for row in rows.values():
        for name, seconds in row.items():
            if not name.startswith("ratio_"):
                total[name] = total.get(name, 0.0) + seconds
    for name in [n for n in total if n != MODOMO]:
        total[f"ratio_{name}"] = total[MODOMO] / total[name] if total[name] > 0 else None
    return total


def timed_passes(config: RunConfig) -> dict:
    """The staging's passes, as timed: the first pass's steps and controls, the second's strength and steps."""
    from pipeline.bench.flops import denoising_steps
    from pipeline.run.style_run import pass_settings

    passes = pass_settings(config, config.style)
    settings, second = passes["generate"], passes.get("second pass")
    return {
        "style": config.style.name,
        "steps": settings.steps,
        "controls": list(settings.controls),
        "first_pass_steps": denoising_steps(settings),
        "second_pass": second.strength if second else None,
        "second_pass_steps": denoising_steps(second) if second else None,
    }


def stage_summary(config: RunConfig, summary: dict, log: StageLog) -> dict:
    """The bench's `stage` section: the passes' settings, how many photos were emptied first, the regions' and
    added masks' shares, the stage rows and both passes against the baseline, what each generate stage called, and
    how far each baseline's masks agree with modomo's; `warnings` says what makes a figure mean less."""
    ours = list(log.runs.get(MODOMO, {}).values())
    second = timed_passes(config)["second_pass"]
    nothing = sum(1 for g in ours if g.added is not None and not g.added.any())
    agreement = log.agreement()
    warnings = []
    if second and nothing:
        warnings.append(
            f"{nothing} of {len(ours)} timed images had no furniture added by the first pass: their second pass ran "
            "no model, so its figures time less than a pass per image"
        )
    for name, agreed in agreement.items():
        least = min((agreed[k] or {"min": 1.0})["min"] for k in ("region_iou", "added_iou"))
        if not (agreed["frames"] and agreed["seeds"] and agreed["emptied"]) or least < AGREE:
            warnings.append(
                f"plain diffusers ({name}) staged other frames than modomo (seeds, photos emptied first, or masks "
                f"agreeing down to IoU {least:.2f}): the ratio compares somewhat different work"
            )
    rows = stage_rows(summary, (*SHARED_STAGES, *STAGE_STAGES))
    if all(name in rows for name in PASSES):
        rows[BOTH] = both_passes(summary)
    return {
        **timed_passes(config),
        "images": len(ours),
        "emptied_first": sum(g.emptied for g in ours),
        "region": shares([g.region for g in ours]),
        "added": shares([g.added for g in ours if g.added is not None]),
        "nothing_added": nothing,
        "stages": rows,
        "generator": generators(summary),
        "agreement": agreement,
        "warnings": warnings,
    }
