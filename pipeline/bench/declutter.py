"""`modomo bench --mode declutter`: what each timed run's diffusion pass was given, and the declutter's summary.

A declutter's stages before its pass (the removal mask, LaMa's fill, the edges) are the same code on the same
photos and models whichever generator follows, so modomo's run and the plain diffusers baseline (diffusers'
`StableDiffusionControlNetInpaintPipeline`, one `pipe()` per image) each make them; the bench then checks they made
the same frames. As the generate stage begins (the runner's `stage` event) each frame's seed, removal mask and
starting picture (LaMa's fill inside the mask) are noted by digest, and the summary says whether every timed run
gave its pass exactly those of modomo's run. It also says how much of each photo the mask takes out: a frame with
nothing to take out runs no model at all (its result is the photo), so a generate time over such frames would
time nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.config import RunConfig
from pipeline.frames import Frame
from pipeline.run.owners import content_digest as digest

# The declutter's own stages (style_run.declutter_stages, then the pass and its compose), and the shared stages
# it needs (the scene map is part of the removal mask), in the order they run.
DECLUTTER_STAGES = ("mask", "fill", "edges", "generate", "compose")
SHARED_STAGES = ("read", "detect", "segment", "depth", "scene", "room")
MODOMO = "modomo"


@dataclass(frozen=True)
class Given:
    """What one frame's pass was given: its seed, and digests of its removal mask and starting picture."""

    seed: int
    removal: str
    start: str
    area: float  # the share of the photo the mask takes out


def given(frame: Frame) -> Given:
    removal = frame.removal if frame.removal is not None else np.zeros((0, 0), dtype=bool)
    start = frame.start if frame.start is not None else frame.image
    shape = f"{removal.shape}".encode()
    return Given(
        seed=frame.seed,
        removal=digest(shape + np.packbits(removal).tobytes()),
        start=digest(f"{start.size}{start.mode}".encode() + start.tobytes()) if start is not None else "",
        area=float(removal.mean()) if removal.size else 0.0,
    )


def against_modomo(runs: dict[str, dict]) -> Iterator[tuple[str, dict, dict, list[str]]]:
    """Each other timed run by name, with modomo's frames, its own, and every frame either of them reached."""
    ours = runs.get(MODOMO, {})
    for name, theirs in runs.items():
        if name != MODOMO:
            yield name, ours, theirs, sorted(set(ours) | set(theirs))


class FrameLog:
    """Per timed run (by name), per frame (input and variation), what its pass was given."""

    def __init__(self):
        self.runs: dict[str, dict[str, Given]] = {}

    def watch(self, name: str, on_event: Callable | None = None) -> Callable:
        """A run's on_event: notes its frames as the generate stage begins, then hands every event on."""
        seen = self.runs.setdefault(name, {})
        seen.clear()

        def event(kind: str, **data) -> None:
            if kind == "stage" and data.get("stage") == "generate":
                for frame in data["frames"]:
                    seen[f"{frame.item.identity}#{frame.variation}"] = given(frame)
            if on_event is not None:
                on_event(kind, **data)

        return event

    def differences(self) -> dict[str, list[str]]:
        """Per other run, the frames whose pass was given another seed, mask or start than modomo's (or that
        one of the two runs did not reach)."""
        found = {}
        for name, ours, theirs, keys in against_modomo(self.runs):
            found[name] = [key for key in keys if ours.get(key) != theirs.get(key)]
        return found


BASELINES = ("diffusers", "diffusers_fp32")


def stage_rows(summary: dict, stages: tuple[str, ...] = (*SHARED_STAGES, *DECLUTTER_STAGES)) -> dict[str, dict]:
    """Per stage a mode runs, modomo's mean seconds per image and each baseline's (its faster run), with
    modomo's time over the baseline's."""
    rows = {}
    for name in stages:
        ours = summary["stages"].get(name, {}).get("mean")
        if ours is None:
            continue
        row = {MODOMO: ours}
        for key in BASELINES:
            theirs = (summary.get(key) or {}).get("stages", {}).get(name, {}).get("mean")
            if theirs is not None:
                row[key] = theirs
                row[f"ratio_{key}"] = ours / theirs if theirs > 0 else None
        rows[name] = row
    return rows


def generators(summary: dict) -> dict[str, list | None]:
    """What each timed run's generate stage called: modomo's and each baseline's."""
    found = {MODOMO: summary.get("generator")}
    for key in BASELINES:
        if key in summary:
            found[key] = summary[key].get("generator")
    return found


def removal_source(config: RunConfig) -> str:
    """Where the removal masks come from, in words."""
    what = "what --remove names" if config.remove_labels is not None else "everything movable"
    kept = f", less the keep masks of --mask-dir {config.options.mask_dir}" if config.options.mask_dir else ""
    return f"{what} in the preset's detections and scene map{kept} (transform's --mode declutter code)"


def declutter_summary(config: RunConfig, summary: dict, log: FrameLog) -> dict:
    """The bench's `declutter` section: the pass's settings, the removal masks' share of the photos, the stage
    rows against the baseline, what each generate stage called, and whether every timed run gave its pass the same
    frames; `warnings` says what makes a figure mean less (masks that take out nothing, frames that differ)."""
    from pipeline.bench.flops import denoising_steps

    settings = config.generate_settings()
    ours = log.runs.get(MODOMO, {})
    areas = [g.area for g in ours.values()]
    empty = sum(area == 0 for area in areas)
    differences = log.differences()
    warnings = []
    if empty:
        warnings.append(
            f"{empty} of {len(areas)} timed images had nothing to take out: no model ran for them (their result is "
            "the photo), so the generate figures time less than a pass per image"
        )
    for name, keys in differences.items():
        if keys:
            warnings.append(
                f"plain diffusers ({name}) was given another seed, removal mask or LaMa fill than modomo for "
                f"{len(keys)} image(s): the ratio compares different work"
            )
    return {
        "strength": settings.strength,
        "steps": settings.steps,
        "denoising_steps": denoising_steps(settings),
        "controls": list(settings.controls),
        "removal": {
            "source": removal_source(config),
            "images": len(areas),
            "empty": empty,
            "area_mean": float(np.mean(areas)) if areas else None,
            "area_min": min(areas) if areas else None,
            "area_max": max(areas) if areas else None,
        },
        "stages": stage_rows(summary),
        "generator": generators(summary),
        "same_frames": {name: not keys for name, keys in differences.items()},
        "frames_checked": {name: len(run) for name, run in log.runs.items()},
        "warnings": warnings,
    }
