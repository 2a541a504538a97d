"""Validate stage: a quality score in [0, 1] from named parts, so a bad restyle can be caught and retried.

- sanity: 0 for a frame that is near-uniform (a black frame, which is also how NaN latents and the
  safety checker's refusals decode, or a blank one) or blown out; rises to 1 with ordinary contrast.
- structure: how much of the input's layout the result keeps. Both images are reduced to 64 px on
  the long side (only walls, windows, the floor line and large furniture survive) and their
  gradients compared as sign-free orientations (angle doubled, so a dark-to-light edge agrees with
  a light-to-dark one): sum(m_a m_b cos 2(t_a - t_b)) / sum(m_a m_b), the strength-weighted mean
  agreement where both images have edges. Recolouring and relighting keep it near 1; a mirrored
  or shifted layout drops it to about 0; an unrelated room scores about 0.1.
- depth (when a depth model is loaded, as in every transform run): the correlation of the input's
  and the result's depth maps at 64 px, negative clipped to 0: the room keeps its geometry.

- style (when a CLIP model is present, not with the tiny models): how much more the result looks
  like its own style's prompt than like the other styles' prompts: CLIP's softmax probability of
  the right style among all of them.

- change: how much the region meant to change (outside the keep mask) differs from the input: the mean
  absolute difference per pixel and channel (0-1 units), 0 up to CHANGE_NONE = 0.02 and 1 from CHANGE_FULL =
  0.06, linear between. Measured at 512 px on the real living room: a JPEG re-encode differs by 0.010 (quality
  85) to 0.015 (60), a slight blur by 0.023, a 10 % brightness change by 0.055, a 30 % tint by 0.078, a swap
  of colour channels by 0.095, the real restyle by 0.27. A result that leaves the photo (nearly) as it was
  scores 0 however well it keeps the room, and is retried like any low score.

- clear (a declutter's, once `Validator.judge` has looked at its result: pipeline/stages/declutter_check.py): 0 when
  the run's detector still finds a movable object inside what was taken out (`objects_left`), so the result fails
  whatever else it scores; else 1 less the share of that region the scene calls movable (`movable_left`).

score = sanity x change x mean(structure, depth and style, those present) [x clear].

A declutter's `change` is measured against what it holds (preserve.held: everywhere but what is taken out, and its
seam): only the removal region was meant to change; its kept ΔE over the same hold is the check's (`judge`). A
restyle's hold is its keep mask, as before.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from pipeline.frames import Frame
from pipeline.stages.clip import probabilities, text_features
from pipeline.stages.fidelity import fidelity
from pipeline.stages.preserve import held

COARSE = 64
CHANGE_NONE, CHANGE_FULL = 0.02, 0.06  # mean absolute difference (0-1 units): untouched below, fully changed above


def _orientation_field(image: Image.Image) -> np.ndarray:
    """Coarse gradients as complex numbers m * exp(2i theta): strength with sign-free orientation."""
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    height, width = grey.shape
    scale = COARSE / max(height, width)
    small = cv2.resize(
        grey, (max(8, round(width * scale)), max(8, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    z = (gx + 1j * gy).astype(np.complex64)
    magnitude = np.abs(z)
    return np.where(magnitude > 1e-6, z * z / np.maximum(magnitude, 1e-6), 0)


def sanity(result: Image.Image) -> float:
    """1 for an ordinary photo, 0 for NaN, near-uniform, black or blown-out frames."""
    pixels = np.asarray(result.convert("RGB"), dtype=np.float32) / 255.0
    if not np.isfinite(pixels).all():
        return 0.0
    mean, std = float(pixels.mean()), float(pixels.std())
    if std < 0.01 or mean < 0.02 or mean > 0.98:
        return 0.0
    clipped = float(((pixels < 0.005) | (pixels > 0.995)).mean())
    return float(np.clip(std / 0.08, 0.0, 1.0) * np.clip(1.0 - max(0.0, clipped - 0.25) * 2, 0.0, 1.0))


def structure(before: Image.Image, after: Image.Image) -> float:
    """Strength-weighted edge-orientation agreement of the two images at a coarse scale, in [0, 1]."""
    if after.size != before.size:
        after = after.resize(before.size, Image.BICUBIC)
    a, b = _orientation_field(before), _orientation_field(after)
    denom = float((np.abs(a) * np.abs(b)).sum())
    if denom < 1e-12:
        return 0.0
    return float(np.clip(np.real((a * np.conj(b)).sum()) / denom, 0.0, 1.0))


def _coarse(array: np.ndarray) -> np.ndarray:
    height, width = array.shape[:2]
    scale = COARSE / max(height, width)
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    return cv2.resize(array.astype(np.float32), size, interpolation=cv2.INTER_AREA)


def depth_agreement(before: np.ndarray, after: np.ndarray) -> float:
    """Correlation of two depth maps at a coarse scale, negative clipped to 0."""
    a = _coarse(before).ravel()
    b = _coarse(
        cv2.resize(after.astype(np.float32), before.shape[1::-1]) if after.shape != before.shape else after
    ).ravel()
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float(np.clip((a * b).sum() / denom, 0.0, 1.0)) if denom > 1e-12 else 0.0


def difference(before: Image.Image, after: Image.Image, keep: np.ndarray | None = None) -> float:
    """Mean absolute difference per pixel and channel (0-1 units) where the result was meant to change: weighted
    by 1 - keep; 0 when the keep mask covers everything."""
    if after.size != before.size:
        after = after.resize(before.size, Image.BICUBIC)
    a = np.asarray(before.convert("RGB"), dtype=np.float32) / 255.0
    b = np.asarray(after.convert("RGB"), dtype=np.float32) / 255.0
    per_pixel = np.abs(a - b).mean(axis=2)
    weight = np.ones_like(per_pixel) if keep is None or keep.shape != per_pixel.shape else 1.0 - keep
    total = float(weight.sum())
    return float((per_pixel * weight).sum() / total) if total > 0.5 else 0.0


def change(before: Image.Image, after: Image.Image, keep: np.ndarray | None = None) -> float:
    """0 for a result that leaves the region meant to change as it was, rising to 1 for a real restyle."""
    return float(np.clip((difference(before, after, keep) - CHANGE_NONE) / (CHANGE_FULL - CHANGE_NONE), 0.0, 1.0))


def quality(
    before: Image.Image,
    after: Image.Image,
    depth_before: np.ndarray | None = None,
    depth_after: np.ndarray | None = None,
    style: float | None = None,
    keep: np.ndarray | None = None,
) -> tuple[float, dict[str, float]]:
    """The score and its named parts (depth only when both depth maps are given, style when scored)."""
    parts = {"sanity": sanity(after), "change": change(before, after, keep), "structure": structure(before, after)}
    if depth_before is not None and depth_after is not None:
        parts["depth"] = depth_agreement(depth_before, depth_after)
    if style is not None:
        parts["style"] = style
    layout = [v for k, v in parts.items() if k not in ("sanity", "change")]
    score = parts["sanity"] * parts["change"] * sum(layout) / len(layout)
    return round(score, 4), {k: round(v, 4) for k, v in parts.items()}


class StyleScorer:
    """CLIP style adherence: the probability of a result's own style among every style's prompt."""

    def __init__(self, model, processor, prompts: dict[str, str], device, dtype):
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self.names = list(prompts)
        self.text = text_features(model, processor, list(prompts.values()), device)

    def __call__(self, images: list[Image.Image], styles: list[str]) -> list[float | None]:
        probs = probabilities(self.model, self.processor, images, self.text, self.device, self.dtype)
        return [float(probs[i, self.names.index(s)]) if s in self.names else None for i, s in enumerate(styles)]


class Validator:
    """Scores each rendered frame against its input; with a depth estimator it also compares depth, with a
    StyleScorer it also scores style adherence."""

    def __init__(self, depth=None, style: StyleScorer | None = None):
        self.depth = depth  # a DepthEstimator, or None for the image-only parts
        self.style = style

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        todo = [f for f in frames if f.ok and f.result is not None]
        if not todo:
            return frames
        depths = self.depth.estimate([f.result for f in todo]) if self.depth is not None else None
        styles = self.style([f.result for f in todo], [f.style for f in todo]) if self.style else [None] * len(todo)
        for i, frame in enumerate(todo):
            before = np.asarray(frame.depth.convert("L")) if depths is not None and frame.depth else None
            after = depths[i] if depths is not None else None
            hold = held(frame)  # a restyle's keep mask; a declutter's: all but what it takes out
            frame.quality, frame.quality_parts = quality(frame.image, frame.result, before, after, styles[i], hold)
            frame.fidelity = fidelity(frame.image, frame.result, before, after, frame.keep)
        return frames

    def judge(self, frames: list[Frame], check=None) -> list[Frame]:
        """A declutter's or a staging's results checked (`check`: a declutter_check.DeclutterCheck, what it left;
        a stage_check.StageCheck, what it added), the numbers into each frame's fidelity, and scored by the check's
        rule (`cleared`, `furnished`); nothing without a check."""
        if check is None:
            return frames
        todo = [f for f in frames if f.ok and f.result is not None and f.quality is not None and check.applies(f)]
        if todo:
            check(todo)
        for frame in todo:
            frame.quality, frame.quality_parts = check.score(frame.quality, frame.quality_parts, frame.fidelity)
        return frames


def cleared(score: float, parts: dict[str, float], measured: dict) -> tuple[float, dict[str, float]]:
    """A declutter's score and parts with `clear`: 0 when objects were left inside what was taken out (the result
    fails), else 1 less the share of it the scene calls movable; unchanged when nothing was checked."""
    left = measured.get("objects_left")
    if left is None:
        return score, parts
    clear = 0.0 if left else 1.0 - float(measured.get("movable_left") or 0.0)
    return round(score * clear, 4), {**parts, "clear": round(clear, 4)}
