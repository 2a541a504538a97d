"""Keep what the client wants: the masks of chosen objects (or the user's own masks) keep the original pixels.

The keep mask is grown a little and feathered; generation fills the rest around it (the kept region's
latents are held to the original's at every step, so light and perspective blend), and `Compositor`
puts the exact original pixels back afterwards.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from PIL import Image

from pipeline.errors import ImageError, UsageError
from pipeline.frames import Frame
from pipeline.inputs import imaging
from pipeline.stages.detect import FURNITURE_CLASSES
from pipeline.stages.parts import ARCHITECTURE_SET, PARTS, part_names, part_region, room_parts

ALIASES = {
    "sofa": "couch",
    "settee": "couch",
    "loveseat": "couch",
    "armchair": "chair",
    "stool": "chair",
    "table": "dining table",
    "desk": "dining table",
    "plant": "potted plant",
    "houseplant": "potted plant",
    "television": "tv",
    "tv set": "tv",
    "fridge": "refrigerator",
    "books": "book",
    "vases": "vase",
    "lamp": None,  # not a COCO class: named so the error can say so
}


def resolve_labels(text: str) -> set[str]:
    """`couch,sofa,bed,window` -> COCO labels of detected objects and names of parts of the room (`architecture`:
    window, door, fireplace, stairs); an unknown name is a usage error listing what can be kept."""
    labels = set()
    for raw in (part.strip().lower() for part in text.split(",")):
        if not raw:
            continue
        label = ALIASES.get(raw, raw)
        parts = part_names(raw)
        if label in FURNITURE_CLASSES:  # a detected object first (a COCO sink, not ADE20K's)
            labels.add(label)
        elif parts:
            labels.update(parts)
        else:
            raise UsageError(
                f"--preserve {raw!r}: not a detectable object nor a part of the room; choose from "
                f"{', '.join(FURNITURE_CLASSES)} (or sofa, armchair, table, plant, television, fridge), "
                f"or {', '.join(PARTS)}, or architecture ({', '.join(ARCHITECTURE_SET)})"
            )
    return labels


def soften(mask: np.ndarray, grow: int, feather: int) -> np.ndarray:
    """Grow a bool mask by `grow` px and feather its edge over `feather` px; float in [0, 1]."""
    keep = mask.astype(np.uint8)
    if grow > 0:
        keep = cv2.dilate(keep, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    soft = keep.astype(np.float32)
    if feather > 0:
        soft = cv2.GaussianBlur(soft, (0, 0), feather / 2)
        soft = np.maximum(soft, keep.astype(np.float32) * (cv2.erode(keep, np.ones((3, 3), np.uint8)) > 0))
    return np.clip(soft, 0.0, 1.0)


def find_user_mask(folder: Path, key: str) -> Path | None:
    """The mask for an input: same relative path and stem under `folder` (any image format), else same stem."""
    rel = PurePosixPath(key)
    for base in (folder / rel.parent, folder):
        if base.is_dir():
            for candidate in sorted(base.iterdir()):
                if (
                    candidate.is_file()
                    and candidate.stem == rel.stem
                    and candidate.suffix.lower() in imaging.IMAGE_SUFFIXES
                ):
                    return candidate
    return None


LITTLE_LEFT = 0.10  # a keep mask leaving this share or less to restyle: said at once, and no retry is spent on it


def changeable(keep: np.ndarray | None) -> float:
    """The share of the photo a restyle is meant to change, 0..1: what the keep mask leaves free (weighted by its
    feathered edge), 1 without a mask."""
    return 1.0 if keep is None else float(np.clip(1.0 - keep.mean(dtype=np.float64), 0.0, 1.0))


def little_left(keep: np.ndarray | None) -> bool:
    """Whether a keep mask leaves LITTLE_LEFT of the photo or less to restyle: a retry could change next to nothing."""
    return keep is not None and changeable(keep) <= LITTLE_LEFT


def nothing_left(keep: np.ndarray | None) -> bool:
    """Whether a keep mask leaves less than half a pixel's worth free: there is nothing to restyle."""
    return keep is not None and float((1.0 - keep).sum(dtype=np.float64)) < 0.5


def share_text(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 else "under 1%"


class Preserver:
    """Sets each frame's keep mask from its detected objects (by label) or from a user's mask file."""

    def __init__(self, labels: set[str], mask_dir: Path | None, grow: int = 6, feather: int = 8, restyles=None):
        """`restyles(item)`: whether a photo is restyled at all (a declutter keeps what it keeps in its own mask,
        `stages.removal`); every photo is, by default."""
        self.labels = labels
        self.mask_dir = mask_dir
        self.grow = grow
        self.feather = feather
        self.restyles = restyles or (lambda item: True)

    @property
    def active(self) -> bool:
        return bool(self.labels or self.mask_dir)

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if frame.ok and self.restyles(frame.item):
                self.apply(frame)
        return frames

    def apply(self, frame: Frame) -> None:
        """The frame's keep mask: its objects of the kept labels, and its mask file (a manifest row's own
        labels and mask file come before the command's)."""
        width, height = frame.image.size
        job = frame.item.job
        labels = job.preserve if job is not None and job.preserve is not None else self.labels
        keep = np.zeros((height, width), dtype=bool)
        for obj in frame.objects:
            obj.kept = obj.label in labels and obj.mask is not None
            if obj.kept:
                keep |= obj.mask
        parts = room_parts(labels)
        if parts and frame.scene is not None:
            keep |= part_region(frame.scene, parts)
        path = None
        if job is not None and job.mask:
            path = Path(job.mask)
        elif self.mask_dir is not None:
            path = find_user_mask(self.mask_dir, frame.item.key)
        if path is not None:
            try:
                user = imaging.decode(path.read_bytes(), str(path), min_side=1).convert("L")
            except (OSError, ImageError) as exc:
                frame.fail(f"mask {path}: {getattr(exc, 'strerror', None) or exc}")
                return
            keep |= np.asarray(user.resize((width, height), Image.BILINEAR)) >= 128
            frame.mask_source = str(path)
        frame.keep = soften(keep, self.grow, self.feather) if keep.any() else None
        check_share(frame, labels)


def check_share(frame: Frame, labels) -> None:
    """Measured as soon as the mask is made: a keep mask over the whole photo fails the job (nothing to restyle);
    one leaving LITTLE_LEFT or less gives a warning (the runner tells it at once and spends no retry on it)."""
    if not little_left(frame.keep):
        return
    if nothing_left(frame.keep):
        made_of = frame.mask_source or ", ".join(sorted(labels or ()))
        frame.fail(f"the keep mask ({made_of}) covers the whole photo: nothing left to restyle")
        return
    frame.warnings.append(
        f"{frame.item.display}: the keep mask leaves {share_text(changeable(frame.keep))} of the photo to "
        "restyle, so the result will barely change (no retries are spent on it)"
    )


SEAM = 8  # px at the working size over which a declutter's fill fades into the photo around what is taken out
RING = 16  # px of the photo itself, beyond the seam, whose colour the fill is matched to


def held(frame: Frame) -> np.ndarray | None:
    """Float H x W, 1 where a result is the photo's own pixel: the keep mask (--preserve, --mask-dir); for a
    declutter or a staging, everywhere but what it changed (`frame.changes`), grown by a feathered seam (1 exactly
    where that is zero) that stops at what it keeps (its `keep`)."""
    changes = frame.changes
    if changes is not None and changes.any():
        around = 1.0 - soften(changes, 0, SEAM)
        return around if frame.keep is None else np.maximum(around, frame.keep)
    return frame.keep if changes is None else None


def made_alpha(frame: Frame) -> np.ndarray | None:
    """Float H x W, 1 where a result is the input photo's own pixel: `held`, and for a staging of a photo emptied
    first (stages.empty_first), only where the empty room was the photo's too (`held` is the empty room's)."""
    alpha = held(frame)
    if frame.emptied is None:
        return alpha
    return frame.emptied if alpha is None else np.minimum(alpha, frame.emptied)


def match_colour(made: np.ndarray, original: np.ndarray, alpha: np.ndarray, removal: np.ndarray) -> np.ndarray:
    """The generated picture with its colour matched to the photo's, per channel (mean and spread), measured on a
    ring of the photo around the seam, where the two should agree: a decode's colour shift (diffusers#5808) is
    taken out before the seam blends, so the fill meets the photo without a visible edge."""
    grown = cv2.dilate(removal.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * RING + 1,) * 2))
    ring = (grown > 0) & (alpha >= 1.0)
    if ring.sum() < 16:
        return made
    want, have = original[ring], made[ring]
    gain = np.clip(want.std(axis=0) / np.maximum(have.std(axis=0), 1e-3), 0.5, 2.0)
    return np.clip((made - have.mean(axis=0)) * gain + want.mean(axis=0), 0.0, 255.0)


class Compositor:
    """Puts the original pixels back where the keep mask says so (exactly where it is 1); around what a declutter
    or a staging changed, the made picture's colour matched to the photo's first."""

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            alpha = held(frame) if frame.ok and frame.result is not None else None
            if alpha is not None:
                original = np.asarray(frame.image, dtype=np.float32)
                made = np.asarray(frame.result.convert("RGB").resize(frame.image.size), dtype=np.float32)
                if frame.changes is not None:
                    made = match_colour(made, original, alpha, frame.changes)
                alpha = alpha[..., None]
                frame.result = Image.fromarray((alpha * original + (1 - alpha) * made).round().astype(np.uint8))
        return frames
