"""What a declutter left behind, measured on its result with the run's own models.

- objects_left: the movable detections the run's detector (and segmenter) still find on the result inside what was
  taken out. Movable is what `RemovalMasker` takes out (its table, its `--remove`, `--preserve` and built-ins, read
  through its own `sort_objects`); a detection counts when at least OVERLAP of its pixels (its SAM2 mask, else its
  box) lie inside the removal mask.
- movable_left: the share of the removal mask's pixels that the scene segmentation of the result calls movable (the
  classes `RemovalMasker.sort_scene` takes out, its specks dropped); without a scene model, not measured.
- seam_delta_e: CIEDE2000 across the removal's border on the result. Along the border, each point compares the
  local mean colour of the result just inside the removal (within `band` px of its edge) with the local mean just
  outside (within `band` px), over a window of 4 x band + 1 px around the point; `mean` and `p95` over the points.
  A fill that meets the photo without a visible edge scores low, one of another colour high (docs/quality.md).
- kept_delta_e: fidelity's kept ΔE over what a declutter holds (preserve.held >= HELD: everywhere but what is taken
  out and its seam), where a restyle's is over its keep mask; about 0 by construction.

Plain numpy and OpenCV on top of the models the caller hands in: a run's Detector, Segmenter and SceneSegmenter.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from pipeline.frames import Frame, Item
from pipeline.stages.fidelity import HELD, delta_e_2000, kept_delta_e, srgb_to_lab
from pipeline.stages.parts import room_parts
from pipeline.stages.preserve import held
from pipeline.stages.removal import RemovalMasker, grow

OVERLAP = 0.5  # share of a detection's pixels inside the removal mask for it to count as left there
BAND = 0.016  # the seam's width on each side of the border, as a share of the long side (8 px at 512)
MIN_BAND = 3  # px: the narrowest band, on small frames
ENOUGH = 0.25  # a border point is measured when each side covers this share of a band across its window


# ---- objects and movable pixels left ---------------------------------------------------------------------------


def choices(masker: RemovalMasker, frame: Frame) -> tuple[frozenset[str], frozenset[str], frozenset[str] | None]:
    """What the masker keeps and takes out for this frame, as its `apply` decides it: the kept names, the parts of
    the room kept, and what `--remove` (or the manifest row's `remove`) names (None: everything movable)."""
    preserve, remove, kept = masker.choices(frame)
    return kept, frozenset(room_parts(preserve)), remove


def inside(region: np.ndarray, removal: np.ndarray) -> bool:
    """Whether at least OVERLAP of a detection's pixels lie inside the removal mask."""
    size = int(region.sum())
    return size > 0 and int((region & removal).sum()) >= OVERLAP * size


def objects_left(objects, removal: np.ndarray, masker: RemovalMasker, frame: Frame) -> int:
    """How many of the result's detections the masker would take out (movable, not kept) lie inside `removal`."""
    kept, _, remove = choices(masker, frame)
    count = 0
    for obj in objects:
        _, pieces = masker.sort_objects([obj], removal.shape, kept, remove)  # its pixels when it goes, else none
        region = pieces.get(obj.label)
        count += region is not None and inside(region, removal)
    return count


def movable_left(scene: np.ndarray | None, removal: np.ndarray, masker: RemovalMasker, frame: Frame) -> float | None:
    """The share of the removal mask's pixels whose scene class the masker would take out; None without a scene
    map or a removal."""
    if scene is None or not removal.any():
        return None
    kept, parts, remove = choices(masker, frame)
    _, pieces = masker.sort_scene(scene, kept, parts, remove)
    movable = np.zeros(removal.shape, dtype=bool)
    for pixels in pieces.values():
        movable |= pixels
    return round(float((movable & removal).sum() / removal.sum()), 4)


# ---- the seam ----------------------------------------------------------------------------------------------------


def band_width(shape: tuple[int, int]) -> int:
    """The seam's width on each side of the border, in px, for a frame of this shape."""
    return max(MIN_BAND, round(BAND * max(shape)))


def seam_sides(removal: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray]:
    """The removal's pixels within `band` px of its border, and the pixels outside it within `band` px."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    mask = removal.astype(np.uint8)
    core = cv2.erode(mask, disc) > 0  # the image's edge does not erode: a removal there has no seam
    grown = cv2.dilate(mask, disc) > 0
    return removal & ~core, grown & ~removal


def local_mean(pixels: np.ndarray, mask: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the mean colour of `mask`'s pixels in the side x side window around it, and how many there are."""
    weight = cv2.boxFilter(mask.astype(np.float32), -1, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)
    total = cv2.boxFilter(pixels * mask[..., None], -1, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)
    return total / np.maximum(weight, 1.0)[..., None], weight


def seam_delta_e(image: Image.Image, removal: np.ndarray) -> dict | None:
    """CIEDE2000 between the result's local mean colour just inside and just outside the removal's border, per
    border point: {"mean", "p95"} to 3 decimals; None when the mask has no border to measure."""
    removal = np.asarray(removal, dtype=bool)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    if pixels.shape[:2] != removal.shape:
        raise ValueError(f"removal mask {removal.shape} does not match the image's {pixels.shape[:2]}")
    if not removal.any() or removal.all():
        return None
    band = band_width(removal.shape)
    side = 4 * band + 1  # a border point's neighbourhood: the pairs are local
    near_in, near_out = seam_sides(removal, band)
    border = removal & ~(cv2.erode(removal.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    mean_in, weight_in = local_mean(pixels, near_in, side)
    mean_out, weight_out = local_mean(pixels, near_out, side)
    enough = ENOUGH * band * side
    points = border & (weight_in >= enough) & (weight_out >= enough)
    if not points.any():
        return None
    difference = delta_e_2000(srgb_to_lab(mean_in[points]), srgb_to_lab(mean_out[points]))
    return {"mean": round(float(difference.mean()), 3), "p95": round(float(np.percentile(difference, 95)), 3)}


# ---- the check ---------------------------------------------------------------------------------------------------


def measure(frame: Frame, seen: Frame, masker: RemovalMasker) -> dict:
    """A declutter's numbers from its result (`seen`: the result with the detections and scene found on it)."""
    removal = np.asarray(frame.removal, dtype=bool)
    numbers: dict = {"objects_left": objects_left(seen.objects, removal, masker, frame)}
    movable = movable_left(seen.scene, removal, masker, frame)
    if movable is not None:
        numbers["movable_left"] = movable
    seam = seam_delta_e(seen.image, removal)
    if seam is not None:
        numbers["seam_delta_e"] = seam
    kept = kept_delta_e(frame.image, seen.image, held(frame), HELD)  # ~0: the photo's own pixels are put back
    if kept is not None:
        numbers["kept_delta_e"] = {"max": kept[0], "mean": kept[1]}
    return numbers


class DeclutterCheck:
    """Measures what each declutter result left (module doc) into its `fidelity`, with the models handed in: a
    detector (sets `objects` on frames), a segmenter (their masks) and a scene segmenter (`scene`), any of the
    last two None. `masker` is the run's own RemovalMasker: what it takes out is what counts as left."""

    def __init__(self, masker: RemovalMasker, detector, segmenter=None, scene=None):
        self.masker = masker
        self.detector = detector
        self.segmenter = segmenter
        self.scene = scene

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        todo = [f for f in frames if f.ok and f.result is not None and self.applies(f) and f.image is not None]
        if todo:
            for frame, seen in zip(todo, self.look(todo), strict=True):
                frame.fidelity = {**frame.fidelity, **measure(frame, seen, self.masker)}
        return frames

    def look(self, frames: list[Frame]) -> list[Frame]:
        return look(frames, (self.detector, self.segmenter, self.scene))

    def applies(self, frame: Frame) -> bool:
        """Whether a result is one this check measures: a declutter's."""
        return frame.removal is not None and frame.region is None

    @staticmethod
    def score(score: float, parts: dict[str, float], measured: dict) -> tuple[float, dict[str, float]]:
        from pipeline.stages.validate import cleared

        return cleared(score, parts, measured)

    def removal_of(self, image: Image.Image, room: str | None = None) -> Frame:
        """A photo's frame with what the masker would take out of it (its removal, keep and labels): the photo's
        detections, masks and scene from the check's own models (`modomo score --mode declutter`)."""
        frame = Frame(item=Item("before", None, "."), seed=0, image=image.convert("RGB"), room=room)
        for stage in (self.detector, self.segmenter, self.scene, self.masker):
            if stage is not None:
                stage([frame])
        return frame


def look(frames: list[Frame], stages) -> list[Frame]:
    """Each result at its frame's size, as the shared stages see a photo: `stages` (a detector, a segmenter, a
    scene segmenter; any None) set its detections, their masks, the scene."""
    seen = [Frame(item=f.item, seed=f.seed, image=result_at(f), room=f.room) for f in frames]
    for stage in stages:
        if stage is not None:
            stage(seen)
    return seen


def result_at(frame: Frame) -> Image.Image:
    """The frame's result in RGB at the frame's (working) size, where its removal mask is."""
    result = frame.result.convert("RGB")
    return result if result.size == frame.image.size else result.resize(frame.image.size, Image.BICUBIC)


# ---- a retry's larger mask ---------------------------------------------------------------------------------------


def grow_removal(frame: Frame, masker: RemovalMasker) -> None:
    """A retry's removal: the frame's grown one more step of the table's growth (around, and further down), never
    into what it keeps; a new array (variations share the old one)."""
    if frame.removal is None or not frame.removal.any():
        return
    long_side = max(frame.removal.shape)
    table = masker.table
    grown = grow(frame.removal, max(1, round(table.around * long_side)), round(table.down * long_side))
    if frame.keep is not None:
        grown &= ~(np.asarray(frame.keep) >= 0.5)
    frame.removal = grown


# ---- modomo score --mode declutter -------------------------------------------------------------------------------


def load_check(spec, device, dtype) -> DeclutterCheck:
    """A DeclutterCheck with a preset's detector (people too, as a declutter's), SAM2 and, when the preset has it,
    its scene segmentation; a full declutter's masker (everything movable, nothing preserved)."""
    from pipeline.models.inventory import inventory
    from pipeline.models.loaders import loaders_for
    from pipeline.stages.detect import Detector
    from pipeline.stages.segment import Segmenter

    stock = inventory(spec)
    source = loaders_for(spec, stock)
    detector = Detector(source.yolo(device), str(device), also=("person",))
    scene = None
    if spec.segmenter and stock.has("segmentation"):
        from pipeline.stages.architecture import SceneSegmenter

        model, processor = source.segmenter(device, dtype)
        scene = SceneSegmenter(model, processor, device, dtype)
    return DeclutterCheck(RemovalMasker(None, frozenset(), None), detector, Segmenter(source.sam2(device)), scene)
