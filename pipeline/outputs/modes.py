"""What a declutter or a staging says about its result beyond a restyle's: its block of the metadata, what was done
in words (XMP, C2PA), and its map of what was made (`room.empty.removal.png`, `room.boho.region.png`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.frames import Frame
from pipeline.outputs.provenance import done_to
from pipeline.stages.preserve import made_alpha

if TYPE_CHECKING:
    from pipeline.config import RunConfig


def removed_of(frame: Frame) -> list[str] | None:
    """What a declutter took out (its labels, maybe none); None for a restyle or a staging."""
    return list(frame.removed) if frame.removal is not None else None


def done_of(frame: Frame, run) -> str:
    """What was done to the photo, in a few words (provenance.done_to)."""
    return done_to(run.style.name, removed_of(frame), run.style.mode)


def about_mode(frame: Frame, run) -> dict:
    """A signed result's words on its mode (C2PA): a declutter's labels taken out, a staging's furniture words."""
    style = run.style
    if style.mode == "declutter":
        return {"mode": style.mode, "removed": removed_of(frame)}
    if style.mode == "stage":
        return {"mode": style.mode, "furniture": style.staging.words_for(frame.room)}
    return {}


def mode_json(frame: Frame, run, config: RunConfig) -> dict:
    """The metadata's block of a declutter (`declutter`), a staging (`stage`, and `declutter` when the photo was
    emptied first); nothing for a restyle."""
    blocks = {"declutter": declutter_json(frame, config)} if frame.removal is not None else {}
    if frame.region is not None and run.style.staging is not None:
        blocks["stage"] = stage_json(frame, run)
    return blocks


def declutter_json(frame: Frame, config: RunConfig) -> dict:
    """What a declutter asked to take out (its manifest row's, else the command's), what it found and took out, and
    the share of the photo that is."""
    job = frame.item.job
    labels = job.remove if job is not None and job.remove is not None else config.remove_labels
    asked = sorted(labels) if labels is not None else "movable"
    area = round(float(frame.removal.mean()), 4)
    return {"remove": asked, "removed": list(frame.removed), "removed_area": area}


def stage_json(frame: Frame, run) -> dict:
    """What a staging asked for (the furniture words of its room type), where it could put furniture (the region's
    share of the photo), and what its second pass redrew (the added furniture's share; None without that pass)."""
    staging = run.style.staging
    added = round(float(frame.added.mean()), 4) if frame.added is not None else None
    return {
        "furniture": staging.words_for(frame.room),
        "region_area": round(float(frame.region.mean()), 4),
        "second_pass": staging.second_strength if staging.second_pass else None,
        "added_area": added,
    }


def map_kind(frame: Frame) -> str:
    """The name of a result's map of what was made: a staging's region, a declutter's removal."""
    return "region" if frame.region is not None else "removal"


def made_map(frame: Frame):
    """What a declutter or a staging made, as a grey map at the working size: white where the result is made,
    black where it is the photo's own pixel (the seam in between); None for a restyle."""
    from PIL import Image

    if frame.changes is None:
        return None
    alpha = made_alpha(frame)
    if alpha is None:
        return Image.new("L", frame.image.size, 0)
    return Image.fromarray(((1.0 - alpha) * 255.0).round().astype("uint8"), "L")
