"""Declutter's removal mask: which pixels of a room photo are taken out, from the detections and the scene map.

A full declutter takes out what moves (furniture, decor, rugs, clutter, people) and keeps the room: its
surfaces, its architecture, its fixtures, and what is built in for the room type (a kitchen's cabinets).
`--remove` narrows it to what is named; `--preserve` and the user's keep masks hold things back. The mask is
grown past each outline, further downwards, so contact shadows go too, but never into a kept region. What is
kept and what moves is data: pipeline/data/declutter.toml. Plain numpy and OpenCV, no model: the fill stages
take `frame.removal` from here.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.errors import ImageError, UsageError
from pipeline.frames import DetectedObject, Frame
from pipeline.inputs import imaging
from pipeline.models.ade20k import ade20k_labels
from pipeline.stages.detect import FURNITURE_CLASSES
from pipeline.stages.parts import part_names, part_region, room_parts
from pipeline.stages.preserve import ALIASES, find_user_mask, soften
from styles import ROOMS, room_name

DECLUTTER_FILE = Path(__file__).resolve().parents[1] / "data" / "declutter.toml"
DEFAULT_ROOM = "default"  # the built-ins of a room type not known (yet): --room auto, or a name not in the table


@dataclass(frozen=True)
class Declutter:
    """pipeline/data/declutter.toml: what a declutter keeps, what it takes out, and how far the mask grows."""

    around: float  # growth on every side, as a share of the photo's long side
    down: float  # further growth downwards (shadows fall below), the same way
    min_area: float  # a scene class's patch under this share of the photo is noise
    surfaces: frozenset[str]  # never removed; the grown edge may cover them
    architecture: frozenset[str]  # never removed nor nameable; growth stops at them
    fixtures: frozenset[str]  # kept in every room unless named in --remove
    movable: frozenset[str]  # scene classes a full declutter takes out
    same: dict[str, tuple[str, ...]]  # COCO label -> scene classes of the same kind
    built_in: dict[str, frozenset[str]]  # room type -> movable names kept there
    groups: dict[str, tuple[str, ...]]  # clutter, furniture, decor, people
    aliases: dict[str, str]

    def built_in_for(self, room: str | None) -> frozenset[str]:
        """What a room type keeps besides the fixtures; `default` when the type is auto, missing or unknown."""
        key = room_name(room or "")
        return self.built_in.get(key, self.built_in[DEFAULT_ROOM])

    def kept_names(self, room: str | None, remove: frozenset[str] | None) -> frozenset[str]:
        """The labels kept in a room of this type: architecture, fixtures and its built-ins, less those that
        --remove names (the user named them: a freestanding wardrobe, a kitchen's cabinets)."""
        return (self.architecture | self.fixtures | self.built_in_for(room)) - (remove or frozenset())


@lru_cache(maxsize=1)
def declutter_table() -> Declutter:
    """The table, read and checked once."""
    data = tomllib.loads(DECLUTTER_FILE.read_text(encoding="utf-8"))
    scene = data["scene"]
    table = Declutter(
        around=float(data["grow"]["around"]),
        down=float(data["grow"]["down"]),
        min_area=float(data["grow"]["min_area"]),
        surfaces=frozenset(scene["surfaces"]),
        architecture=frozenset(scene["architecture"]),
        fixtures=frozenset(scene["fixtures"]),
        movable=frozenset(scene["movable"]),
        same={label: tuple(classes) for label, classes in data["same"].items()},
        built_in={room: frozenset(names) for room, names in data["built_in"].items()},
        groups={name: tuple(members) for name, members in data["groups"].items()},
        aliases=dict(data["aliases"]),
    )
    problems = table_problems(table)
    if problems:
        raise ValueError(f"{DECLUTTER_FILE}: {'; '.join(problems)}")
    return table


def table_problems(table: Declutter) -> list[str]:
    """What is wrong with a table: names that are neither ADE20K classes nor COCO labels, rooms that are not
    room types, built-ins that are not movable, group members and aliases that name nothing."""
    classes = set(ade20k_labels())
    scene = table.surfaces | table.architecture | table.fixtures | table.movable
    scene |= {cls for classes_ in table.same.values() for cls in classes_}
    problems = [f"{name!r} is not an ADE20K class" for name in sorted(scene - classes)]
    problems += [f"[same] {label!r} is not a COCO label" for label in table.same if label not in FURNITURE_CLASSES]
    problems += [
        f"[built_in] {room!r} is not a room type" for room in table.built_in if room not in (*ROOMS, DEFAULT_ROOM)
    ]
    problems += [] if DEFAULT_ROOM in table.built_in else [f"[built_in] has no {DEFAULT_ROOM!r}"]
    movable = table.movable | set(FURNITURE_CLASSES)
    problems += [f"[built_in] {n!r} is not movable" for names in table.built_in.values() for n in names - movable]
    words = [m for members in table.groups.values() for m in members] + list(table.aliases.values())
    problems += [f"{word!r} names nothing" for word in words if names_for(word, table) is None]
    return problems


def names_for(word: str, table: Declutter | None = None) -> frozenset[str] | None:
    """The labels one word stands for (any case): a group's members, a COCO label (by preserve.ALIASES: sofa is
    couch) with its scene classes of the same kind, a scene class; None when it names nothing removable."""
    table = table or declutter_table()
    key = " ".join(word.lower().split())
    key = table.aliases.get(key, key)
    if key in table.groups:
        return frozenset().union(*(names_for(member, table) or () for member in table.groups[key]))
    found = set()
    label = ALIASES.get(key, key)
    if label in FURNITURE_CLASSES:
        found |= {label, *table.same.get(label, ())}
    if key in table.fixtures | table.movable:
        found.add(key)
    return frozenset(found) or None


def resolve_remove(text: str) -> frozenset[str]:
    """`--remove tv,sofa,clutter` -> the COCO labels and ADE20K classes to take out, groups expanded; a word that
    names nothing removable is a one-line usage error listing what can be named."""
    table = declutter_table()
    names: set[str] = set()
    for raw in (word.strip() for word in text.split(",")):
        if raw:
            found = names_for(raw, table)
            if found is None:
                raise UsageError(unknown_word(raw, table))
            names |= found
    if not names:
        raise UsageError("--remove names nothing; " + nameable_text(table))
    return frozenset(names)


def unknown_word(word: str, table: Declutter) -> str:
    """The usage error's line for a word --remove does not know, or knows as part of the room itself."""
    key = " ".join(word.lower().split())
    if key in table.surfaces | table.architecture or part_names(key):
        return f"--remove {word!r}: part of the room itself, which declutter always keeps; {nameable_text(table)}"
    return f"--remove {word!r}: not something declutter can take out; {nameable_text(table)}"


def nameable_text(table: Declutter) -> str:
    """What --remove accepts, groups first."""
    scene = sorted((table.movable | table.fixtures) - set(FURNITURE_CLASSES))
    return (
        f"name a group ({', '.join(table.groups)}), a detected object ({', '.join(FURNITURE_CLASSES)}; or sofa, "
        f"table, plant, television, fridge), or a part of the scene ({', '.join(scene)})"
    )


def describe(names, table: Declutter) -> str:
    """Labels as the user would say them: a whole group by its name, a COCO label for itself and its scene
    classes of the same kind, the rest one by one."""
    left, words = set(names), []
    for word in [*table.groups, *table.same]:
        members = names_for(word, table)
        if members and members <= left:
            words.append(word)
            left -= members
    return ", ".join(words + sorted(left))


def grow(mask: np.ndarray, around: int, down: int) -> np.ndarray:
    """A bool mask grown by `around` px on every side and `down` px more below (over the contact shadows)."""
    grown = mask.astype(np.uint8)
    if down > 0:  # the anchor at the kernel's bottom row: each pixel takes the max of the `down` pixels above it
        grown = cv2.dilate(grown, np.ones((down + 1, 1), np.uint8), anchor=(0, down))
    return soften(grown > 0, around, 0) >= 0.5


def drop_specks(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """A bool mask without its connected patches under `min_pixels` (the scene segmenter's stray pixels)."""
    if min_pixels <= 1 or not mask.any():
        return mask
    _, patches, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    big = [i for i in range(1, len(stats)) if stats[i, cv2.CC_STAT_AREA] >= min_pixels]
    return np.isin(patches, big)


def object_region(obj: DetectedObject, shape: tuple[int, int]) -> np.ndarray:
    """A detection's pixels: its SAM2 mask, or its box when it has none."""
    height, width = shape
    if obj.mask is not None:
        mask = obj.mask.astype(bool)
        if mask.shape != shape:
            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        return mask
    region = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = obj.box
    region[max(0, int(y0)) : min(height, int(np.ceil(y1))), max(0, int(x0)) : min(width, int(np.ceil(x1)))] = True
    return region


def scene_at(scene: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The frame's ADE20K label map at the frame's size (nearest neighbour, so labels stay labels)."""
    if scene is None or scene.shape == shape:
        return scene
    return cv2.resize(scene, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def user_keep(frame: Frame, mask_dir: Path | None) -> np.ndarray | None:
    """The user's keep mask at the frame's size (white keeps the original, as in restyle): a manifest row's own
    mask first, else the --mask-dir file matching the input. An unreadable mask fails the frame."""
    job = frame.item.job
    path = None
    if job is not None and job.mask:
        path = Path(job.mask)
    elif mask_dir is not None:
        path = find_user_mask(mask_dir, frame.item.key)
    if path is None:
        return None
    try:
        user = imaging.decode(path.read_bytes(), str(path), min_side=1).convert("L")
    except (OSError, ImageError) as exc:
        frame.fail(f"mask {path}: {getattr(exc, 'strerror', None) or exc}")
        return None
    frame.mask_source = str(path)
    return np.asarray(user.resize(frame.image.size, Image.BILINEAR)) >= 128


class RemovalMasker:
    """Sets each frame's `removal` (bool, what is taken out), `removed` (the labels taken out) and `keep` (what
    must stay the photo's: kept, built in, the room's architecture, the user's mask).

    `remove` None takes out everything movable; otherwise only what it names (resolve_remove), even a fixture
    or a built-in the user names. `preserve` (preserve.resolve_labels: COCO labels and parts of the room, or
    any name resolve_remove knows) and the user's masks keep things; keeping wins over removing.
    """

    def __init__(
        self,
        remove: frozenset[str] | None,
        preserve: set[str] | frozenset[str],
        mask_dir: Path | None,
        table: Declutter | None = None,
    ):
        self.remove = remove
        self.preserve = frozenset(preserve or ())
        self.mask_dir = mask_dir
        self.table = table or declutter_table()

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if frame.ok and frame.image is not None:
                self.apply(frame)
        return frames

    def apply(self, frame: Frame) -> None:
        """One frame's removal mask: what goes, less what is kept, grown, the kept regions never entered."""
        width, height = frame.image.size
        shape = (height, width)
        preserve, remove, kept_names = self.choices(frame)
        held = self.held_names(preserve)
        for obj in frame.objects:
            obj.kept = obj.label in held
        keep, pieces = self.sort_objects(frame.objects, shape, kept_names, remove)
        scene = scene_at(frame.scene, shape)
        if scene is not None:
            scene_keep, scene_pieces = self.sort_scene(scene, kept_names, room_parts(preserve), remove)
            keep |= scene_keep
            for label, pixels in scene_pieces.items():
                pieces[label] = pieces.get(label, False) | pixels
        user = user_keep(frame, self.mask_dir)
        if not frame.ok:
            return
        if user is not None:
            keep |= user
        taken = {label: pixels & ~keep for label, pixels in pieces.items()}
        taken = {label: pixels for label, pixels in taken.items() if pixels.any()}
        removal = np.zeros(shape, dtype=bool)
        for pixels in taken.values():
            removal |= pixels
        if removal.any():
            long_side = max(width, height)
            removal = grow(removal, round(self.table.around * long_side), round(self.table.down * long_side))
            removal &= ~keep
        frame.removal = removal
        frame.keep = keep.astype(np.float32) if keep.any() else None  # never changed, not even by the seam
        frame.removed = sorted(taken)
        if not taken:
            asked = f" ({describe(remove, self.table)})" if remove is not None else ""
            frame.warnings.append(f"{frame.item.display}: found nothing to remove{asked}")

    def choices(self, frame: Frame) -> tuple[frozenset[str], frozenset[str] | None, frozenset[str]]:
        """What this frame's job keeps and takes out: its --preserve words, what --remove names (None: everything
        movable; a manifest row's own come first for both), and the names kept in its room."""
        job = frame.item.job
        preserve = job.preserve if job is not None and job.preserve is not None else self.preserve
        remove = job.remove if job is not None and job.remove is not None else self.remove
        return preserve, remove, self.table.kept_names(frame.room, remove) | self.held_names(preserve)

    def held_names(self, preserve) -> frozenset[str]:
        """The labels --preserve keeps: each word with its kind's other names (a kept couch keeps the scene's
        sofa pixels too); parts of the room are kept by their regions (parts.part_region)."""
        held = set(preserve)
        for word in preserve:
            held |= names_for(word, self.table) or frozenset()
        return frozenset(held)

    def wanted(self, label: str, remove: frozenset[str] | None, detected: bool) -> bool:
        """Whether a label not kept goes: what --remove names, else any detection and the movable scene classes
        (a detector's label for the room itself, from a custom model, stays)."""
        if remove is not None:
            return label in remove
        if detected:
            return label not in self.table.surfaces | self.table.architecture
        return label in self.table.movable

    def sort_objects(self, objects, shape, kept_names, remove) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The detections' kept pixels (preserved or built in) and the pixels of each label that goes."""
        keep = np.zeros(shape, dtype=bool)
        pieces: dict[str, np.ndarray] = {}
        for obj in objects:
            region = object_region(obj, shape)
            if obj.kept or obj.label in kept_names:
                keep |= region
            elif self.wanted(obj.label, remove, detected=True):
                pieces[obj.label] = pieces.get(obj.label, False) | region
        return keep, pieces

    def sort_scene(self, scene, kept_names, parts, remove) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The scene map's kept pixels (architecture, fixtures, built-ins, preserved classes and parts) and the
        pixels of each class that goes, its specks dropped."""
        labels = ade20k_labels()
        keep = part_region(scene, parts) if parts else np.zeros(scene.shape, dtype=bool)
        pieces: dict[str, np.ndarray] = {}
        min_pixels = round(self.table.min_area * scene.size)
        for index in np.unique(scene):
            if index >= len(labels):
                continue
            name, pixels = labels[index], scene == index
            if name in kept_names:
                keep |= pixels
            elif self.wanted(name, remove, detected=False):
                pixels = drop_specks(pixels, min_pixels)
                if pixels.any():
                    pieces[name] = pixels
        return keep, pieces
