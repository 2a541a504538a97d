"""What a staging made, measured on its result with the run's own models.

- furniture_added: {"share": the share of the region (where furniture may stand) that the scene segmentation of
  the result calls movable (what a full declutter would take out there, and the empty room did not have), "pieces":
  the detections of the room type's expected pieces (pipeline/data/stage.toml [expected]) at least half inside the
  region and not in the empty room already, counted by label, "expected": those labels}. The index's
  `furniture_added` column is the share.
- openings_added: the share of the region that the scene segmentation calls a window, door or stairs (stage.toml
  [openings]) in the generated picture (the first pass's, before the second pass put the room back around its
  furniture): a window painted on a wall (the room's own openings are kept, never in the region).
- architecture_edges_f1: Canny edge F1 of the result against the empty room over the room's architecture (what the
  staging keeps: windows, doors, fixtures) and a band around it, where their outlines meet the walls. Kept pixels
  are the photo's own, so this measures their borders, not their insides.

A staging that added no furniture (no share and no expected piece) or that painted an opening scores 0 (`furnished`)
and is tried again. Plain numpy and OpenCV over the models the caller hands in.
"""

from __future__ import annotations

import numpy as np

from pipeline.frames import Frame
from pipeline.stages.declutter_check import inside, look, result_at
from pipeline.stages.fidelity import edge_f1, edge_map
from pipeline.stages.preserve import soften
from pipeline.stages.removal import RemovalMasker, object_region, scene_at
from pipeline.stages.second_pass import movable_pixels
from pipeline.stages.staging import StageTable, classes_region

BAND = 0.016  # the band around the architecture its edge F1 covers, as a share of the long side (8 px at 512)
OPENING = 0.005  # a new opening over this share of the region fails the staging (a few stray pixels do not)


def furniture_added(frame: Frame, seen: Frame, masker: RemovalMasker, table: StageTable) -> dict:
    """The share of the region that became movable in the result, and the expected pieces detected there."""
    region = np.asarray(frame.region, dtype=bool)
    shape = region.shape
    before = movable_pixels(masker, frame, frame.objects, frame.scene, shape)
    after = movable_pixels(masker, frame, seen.objects, seen.scene, shape)
    share = float((after & ~before & region).sum() / max(1, region.sum()))
    expected = table.expected_for(frame.room)
    pieces: dict[str, int] = {}
    for obj in seen.objects:
        if obj.label in expected and inside(object_region(obj, shape), region) and not there(obj, frame.objects):
            pieces[obj.label] = pieces.get(obj.label, 0) + 1
    return {"share": round(share, 4), "pieces": dict(sorted(pieces.items())), "expected": list(expected)}


def there(obj, before) -> bool:
    """Whether the empty room had this piece already: a detection of its label whose box overlaps it (IoU >= 0.5)."""
    return any(other.label == obj.label and iou(other.box, obj.box) >= 0.5 for other in before)


def iou(a, b) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    common = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - common
    return common / union if union > 0 else 0.0


def openings_added(frame: Frame, painted: Frame, table: StageTable) -> float | None:
    """The share of the region the scene calls an opening in the painted picture (the room's own openings are kept,
    so never part of the region: any there is new)."""
    if painted.scene is None:
        return None
    region = np.asarray(frame.region, dtype=bool)
    now = classes_region(scene_at(painted.scene, region.shape), table.openings)
    return round(float((now & region).sum() / max(1, region.sum())), 4)


def architecture_edges_f1(frame: Frame, result) -> float | None:
    """Edge F1 of the result against the empty room over what the staging keeps and a band around it."""
    if frame.keep is None:
        return None
    keep = np.asarray(frame.keep) >= 0.5
    band = max(3, round(BAND * max(keep.shape)))
    area = soften(keep, band, 0) > 0
    return round(edge_f1(edge_map(frame.image) & area, edge_map(result) & area), 4)


class StageCheck:
    """Measures each staging's result (module doc) into its `fidelity`, with the run's detector, segmenter and scene
    segmentation (`stages`, any None); `masker` is what a full declutter of the room takes out (its movable)."""

    def __init__(self, masker: RemovalMasker, table: StageTable, stages):
        self.masker = masker
        self.table = table
        self.stages = stages

    def applies(self, frame: Frame) -> bool:
        return frame.region is not None

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        todo = [f for f in frames if f.ok and f.result is not None and f.region is not None and f.image is not None]
        if not todo:
            return frames
        seen = look(todo, self.stages)
        for frame, after in zip(todo, seen, strict=True):
            numbers = {"furniture_added": furniture_added(frame, after, self.masker, self.table)}
            opened = openings_added(frame, frame.painted or after, self.table)  # the first pass's, seen by the second
            if opened is not None:
                numbers["openings_added"] = opened
            edges = architecture_edges_f1(frame, result_at(frame))
            if edges is not None:
                numbers["architecture_edges_f1"] = edges
            frame.fidelity = {**frame.fidelity, **numbers}
        return frames

    @staticmethod
    def score(score: float, parts: dict[str, float], measured: dict) -> tuple[float, dict[str, float]]:
        return furnished(score, parts, measured)


def furnished(score: float, parts: dict[str, float], measured: dict) -> tuple[float, dict[str, float]]:
    """A staging's score and parts with `furnished`: 0 when it added no furniture (no share, no expected piece) or
    painted an opening over OPENING of its region (the result fails and is tried again), else 1."""
    added = measured.get("furniture_added")
    if added is None:
        return score, parts
    empty = not added["share"] and not added["pieces"]
    opened = (measured.get("openings_added") or 0.0) > OPENING
    ok = 0.0 if empty or opened else 1.0
    return round(score * ok, 4), {**parts, "furnished": ok}
