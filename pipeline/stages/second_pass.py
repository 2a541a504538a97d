"""--mode stage's second pass: only the furniture the first pass added is drawn again, over the empty room.

The first pass paints the whole region (the floor and the height above it), so the floor around the new pieces is
the model's, not the photo's. The second pass finds what was added, with the run's own detector, segmenter and
scene segmentation: what a full declutter would take out of the staged picture and not of the empty room, inside
the region (pipeline/data/stage.toml [added]: grown over its contact shadow, specks dropped). Only that mask is
inpainted again, starting from the first pass's picture (its pieces, their shapes) at the recipe's
`second_pass.strength`, held to the empty room outside it; the compositor then puts the photo's own pixels back
everywhere but the furniture and its seam. A staging that added nothing has nothing to redraw: its result is the
empty room, and its check fails it.
"""

from __future__ import annotations

import numpy as np

from pipeline.frames import Frame
from pipeline.stages.declutter_check import look, result_at
from pipeline.stages.preserve import soften
from pipeline.stages.removal import RemovalMasker, drop_specks, scene_at
from pipeline.stages.staging import StageTable


def movable_pixels(masker: RemovalMasker, frame: Frame, objects, scene, shape: tuple[int, int]) -> np.ndarray:
    """Bool H x W: what a full declutter of the frame's room would take out of a picture with these detections and
    this scene map (its furniture and decor; architecture, fixtures and built-ins stay out)."""
    _, _, kept = masker.choices(frame)
    _, pieces = masker.sort_objects([o for o in objects if not o.kept], shape, kept, None)
    movable = np.zeros(shape, dtype=bool)
    for pixels in pieces.values():
        movable |= pixels
    scene = scene_at(scene, shape)
    if scene is not None:
        _, found = masker.sort_scene(scene, kept, frozenset(), None)
        for pixels in found.values():
            movable |= pixels
    return movable


def added_mask(frame: Frame, seen: Frame, masker: RemovalMasker, table: StageTable) -> np.ndarray:
    """Bool H x W: the furniture the first pass added (`seen`: its picture with the detections and scene found on
    it), inside the frame's region, its specks dropped, grown over its contact shadow but never into what is kept."""
    region = np.asarray(frame.region, dtype=bool)
    shape = region.shape
    before = movable_pixels(masker, frame, frame.objects, frame.scene, shape)
    after = movable_pixels(masker, frame, seen.objects, seen.scene, shape)
    added = drop_specks(after & ~before & region, round(table.added_min_area * region.size))
    if added.any():
        added = soften(added, round(table.added_grow * max(shape)), 0) > 0
        if frame.keep is not None:
            added &= ~(np.asarray(frame.keep) >= 0.5)
    return added


class SecondPass:
    """Sets each staged frame's `added` (the furniture mask) and redraws its result there (module doc). `generator`
    renders at the second pass's strength (a Generator or the plain diffusers one); `compositor` puts the empty
    room back around it; `stages` are the run's detector, segmenter and scene segmentation (any may be None)."""

    def __init__(self, masker: RemovalMasker, table: StageTable, generator, compositor, stages):
        self.masker = masker
        self.table = table
        self.generator = generator
        self.compositor = compositor
        self.stages = stages

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        todo = [f for f in frames if f.ok and f.result is not None and f.region is not None and f.image is not None]
        if not todo:
            return frames
        for frame, added in zip(todo, self.find(todo), strict=True):
            frame.start = result_at(frame)
            frame.added = added
        self.generator(todo)
        if self.compositor is not None:
            self.compositor(todo)
        return frames

    def find(self, frames: list[Frame]) -> list[np.ndarray]:
        """Each first-pass result's added furniture: its detections and scene found by the run's own models (kept as
        the frame's `painted`: the staging's check reads its openings there, without looking again)."""
        seen = look(frames, self.stages)
        for frame, view in zip(frames, seen, strict=True):
            frame.painted = view
        return [added_mask(f, s, self.masker, self.table) for f, s in zip(frames, seen, strict=True)]
