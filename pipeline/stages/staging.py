"""--mode stage's region: where a staging may put furniture in a photo of an empty room.

Furniture stands on the floor: the region is the floor (and rugs) the scene segmentation finds, grown upwards by
the height furniture reaches in the room type, less what a staging never changes: the room's architecture
(windows, doors, stairs, radiators), its fixtures and the room type's built-ins (what a declutter keeps:
pipeline/data/declutter.toml), the ceiling, and what --preserve and the user's masks keep. Those keep their pixels
exactly (`frame.keep`, composited back as --preserve does). The numbers are data: pipeline/data/stage.toml.
Plain numpy and OpenCV, no model.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from pipeline.frames import Frame
from pipeline.models.ade20k import ade20k_labels
from pipeline.stages.detect import FURNITURE_CLASSES
from pipeline.stages.parts import part_region, room_parts
from pipeline.stages.preserve import soften
from pipeline.stages.removal import RemovalMasker, object_region, scene_at, user_keep
from styles import ROOMS, room_name

STAGE_FILE = Path(__file__).resolve().parents[1] / "data" / "stage.toml"
DEFAULT_ROOM = "default"
NEVER = ("ceiling",)  # never part of the region, however high it grows: nothing stands on a ceiling


@dataclass(frozen=True)
class StageTable:
    """pipeline/data/stage.toml: the region's floor and heights, when a photo is emptied first, what the second
    pass redraws, the pieces a room type should show and the classes that are openings."""

    floor: frozenset[str]
    heights: dict[str, float]  # room type -> how far the floor grows upwards, as a share of the photo's height
    clearance: float
    min_area: float
    declutter_above: float
    added_grow: float
    added_min_area: float
    expected: dict[str, tuple[str, ...]]
    openings: frozenset[str]

    def height_for(self, room: str | None) -> float:
        return self.heights.get(room_name(room or "") or "", self.heights[DEFAULT_ROOM])

    def expected_for(self, room: str | None) -> tuple[str, ...]:
        return self.expected.get(room_name(room or "") or "", self.expected[DEFAULT_ROOM])


@lru_cache(maxsize=1)
def stage_table() -> StageTable:
    """The table, read and checked once."""
    data = tomllib.loads(STAGE_FILE.read_text(encoding="utf-8"))
    region, added = dict(data["region"]), data["added"]
    table = StageTable(
        floor=frozenset(region.pop("floor")),
        clearance=float(region.pop("clearance")),
        min_area=float(region.pop("min_area")),
        heights={room: float(share) for room, share in region.items()},
        declutter_above=float(data["declutter"]["above"]),
        added_grow=float(added["grow"]),
        added_min_area=float(added["min_area"]),
        expected={room: tuple(labels) for room, labels in data["expected"].items()},
        openings=frozenset(data["openings"]["classes"]),
    )
    problems = table_problems(table)
    if problems:
        raise ValueError(f"{STAGE_FILE}: {'; '.join(problems)}")
    return table


def table_problems(table: StageTable) -> list[str]:
    """Names that are neither ADE20K classes nor COCO labels, rooms that are not room types, heights outside 0..1."""
    classes = set(ade20k_labels())
    problems = [f"{name!r} is not an ADE20K class" for name in sorted((table.floor | table.openings) - classes)]
    rooms = {*ROOMS, DEFAULT_ROOM}
    for where, by_room in (("region", table.heights), ("expected", table.expected)):
        problems += [f"[{where}] {room!r} is not a room type" for room in by_room if room not in rooms]
        problems += [] if DEFAULT_ROOM in by_room else [f"[{where}] has no {DEFAULT_ROOM!r}"]
    problems += [f"[region] {room} = {h} is not a share" for room, h in table.heights.items() if not 0 < h <= 1]
    labels = {label for names in table.expected.values() for label in names}
    problems += [f"[expected] {label!r} is not a COCO label" for label in sorted(labels - set(FURNITURE_CLASSES))]
    return problems


def grow_up(mask: np.ndarray, pixels: int) -> np.ndarray:
    """A bool mask grown `pixels` px upwards: each pixel joins when one of the `pixels` below it is in the mask."""
    if pixels <= 0 or not mask.any():
        return mask.astype(bool)
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((pixels + 1, 1), np.uint8), anchor=(0, 0))
    return grown > 0


def classes_region(scene: np.ndarray, names) -> np.ndarray:
    """Bool H x W: the scene map's pixels of the named ADE20K classes."""
    labels = ade20k_labels()
    return np.isin(scene, [labels.index(name) for name in names if name in labels])


class StageMasker:
    """Sets each frame's `region` (bool: where the staging may put furniture) and `keep` (float: what stays the
    photo's exactly: architecture, fixtures, built-ins, what --preserve and the user's masks keep).

    What is kept is a declutter's (its table, through RemovalMasker's choices: a manifest row's --preserve first);
    `table` is pipeline/data/stage.toml's."""

    def __init__(self, preserve, mask_dir: Path | None, table: StageTable | None = None):
        self.keeps = RemovalMasker(None, preserve, mask_dir)
        self.table = table or stage_table()

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if frame.ok and frame.image is not None:
                self.apply(frame)
        return frames

    def apply(self, frame: Frame) -> None:
        """One frame's region: the floor grown upwards, less what it keeps (and a clearance around that)."""
        width, height = frame.image.size
        shape = (height, width)
        scene = scene_at(frame.scene, shape)
        if scene is None:
            frame.fail("staging needs the scene segmentation, which did not run")
            return
        keep = self.kept(frame, scene, shape)
        if not frame.ok:
            return
        floor = classes_region(scene, self.table.floor) & ~keep
        region = grow_up(floor, round(self.table.height_for(frame.room) * height))
        clear = round(self.table.clearance * max(width, height))
        blocked = soften(keep, clear, 0) > 0 if keep.any() else keep
        region &= ~(blocked | classes_region(scene, NEVER))
        frame.keep = keep.astype(np.float32) if keep.any() else None
        frame.region = region
        if region.mean() < self.table.min_area:
            frame.fail(
                f"no floor to stage on: the scene shows {region.mean():.1%} of the photo as floor a piece of "
                f"furniture could stand on (at least {self.table.min_area:.0%} is needed)"
            )

    def kept(self, frame: Frame, scene: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Bool H x W: what the staging keeps exactly: the kept scene classes and detections of the frame's room
        type, the parts of the room --preserve names, and the user's mask."""
        preserve, _, kept_names = self.keeps.choices(frame)
        keep = part_region(scene, room_parts(preserve)) | classes_region(scene, kept_names)
        for obj in frame.objects:  # the detections are shared with the photo's other jobs: not marked here
            if obj.label in kept_names:
                keep |= object_region(obj, shape)
        user = user_keep(frame, self.keeps.mask_dir)
        return keep if user is None else keep | user
