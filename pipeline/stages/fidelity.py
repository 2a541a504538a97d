"""Fidelity: how faithful a restyled result is to its input photo, as ControlNet++ (Li et al. 2024) scores control.

- Edges F1: Canny edges (100/200, as ControlNet++) of both images; precision is the share of the result's edge
  pixels within `tolerance` px of an input edge, recall the share of input edges the result kept; F1 = 2PR/(P+R).
- Depth RMSE: the input's depth map is scaled to [0, 1], the result's depth is fitted onto it by least-squares
  scale and shift (relative depth has neither, as MiDaS evaluates it), and the RMSE is left: a share of the
  input's depth range, 0 is perfect.
- Kept ΔE: CIEDE2000 (Sharma, Wu & Dalal 2005) between the two images over the pixels the run meant to keep
  (where the keep mask holds the input, >= HELD), largest and mean; about 1 is a just-noticeable difference.

Pure numpy, OpenCV and Pillow: no model, no torch.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

EDGE_SIDE = 512  # edges F1 is measured with the long side at 512 px, ControlNet++'s evaluation size
HELD = 0.99  # kept ΔE is measured where the keep mask holds the input; its feathered rim blends by design
# sRGB (IEC 61966-2-1) linear RGB -> XYZ, and the D65 reference white.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_LAB_EPSILON = (6.0 / 29.0) ** 3
_TWENTY_FIVE_TO_SEVENTH = 25.0**7


# ---- edges -------------------------------------------------------------------------------------------------------


def edge_map(image: Image.Image, low: int = 100, high: int = 200) -> np.ndarray:
    """Bool HxW Canny edges of the image's greyscale (ControlNet++'s default thresholds)."""
    grey = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    return cv2.Canny(grey, low, high) > 0


def _near(edges: np.ndarray, tolerance: int) -> np.ndarray:
    """Pixels within `tolerance` px (a square, chessboard distance) of an edge pixel."""
    if tolerance == 0:
        return edges
    kernel = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
    return cv2.dilate(edges.astype(np.uint8), kernel) > 0


def edge_f1(input_edges: np.ndarray, candidate: np.ndarray, tolerance: int = 1) -> float:
    """F1 of the candidate's edge pixels against the input's, each matched within `tolerance` px.

    Precision: share of candidate edge pixels near an input edge. Recall: share of input edge pixels near a
    candidate edge. Both maps empty is a perfect 1.0; only one empty is 0.0.
    """
    input_edges = np.asarray(input_edges, dtype=bool)
    candidate = np.asarray(candidate, dtype=bool)
    if input_edges.shape != candidate.shape:
        raise ValueError(f"edge maps differ in shape: {input_edges.shape} vs {candidate.shape}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    n_input, n_candidate = int(input_edges.sum()), int(candidate.sum())
    if n_input == 0 and n_candidate == 0:
        return 1.0
    if n_input == 0 or n_candidate == 0:
        return 0.0
    precision = np.count_nonzero(candidate & _near(input_edges, tolerance)) / n_candidate
    recall = np.count_nonzero(input_edges & _near(candidate, tolerance)) / n_input
    if precision + recall == 0:
        return 0.0
    return float(2.0 * precision * recall / (precision + recall))


def _to_size(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The image at `size` (bicubic), or itself when it already is."""
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)


def image_edges_f1(
    before: Image.Image,
    after: Image.Image,
    low: int = 100,
    high: int = 200,
    tolerance: int = 1,
    side: int | None = None,
) -> float:
    """Edge F1 of `after` against `before`, `after` first resized to `before`'s size; with `side`, both at that
    long side first (edges at one size: fine edges move more at a larger one, so figures compare at one size)."""
    if side is not None:
        scale = side / max(before.size)
        before = _to_size(before, (max(1, round(before.width * scale)), max(1, round(before.height * scale))))
    after = _to_size(after, before.size)
    return edge_f1(edge_map(before, low, high), edge_map(after, low, high), tolerance)


# ---- depth -------------------------------------------------------------------------------------------------------


def _selection(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The mask as bool (all pixels when None), checked against the shape and for at least one pixel."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    selected = np.asarray(mask, dtype=bool)
    if selected.shape != shape:
        raise ValueError(f"mask shape {selected.shape} does not match {shape}")
    if not selected.any():
        raise ValueError("mask selects no pixel")
    return selected


def fit_scale_shift(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Least-squares (s, t) minimising ||s * prediction + t - target||² over the mask, in float64.

    A constant prediction carries no scale: s = 0 and t is the target's mean.
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.shape != target.shape:
        raise ValueError(f"prediction shape {prediction.shape} does not match target {target.shape}")
    selected = _selection(mask, target.shape)
    x, y = prediction[selected], target[selected]
    mean_x, mean_y = float(x.mean()), float(y.mean())
    if x.max() == x.min():
        return 0.0, mean_y
    dx = x - mean_x
    scale = float(np.dot(dx, y - mean_y) / np.dot(dx, dx))
    return scale, mean_y - scale * mean_x


def depth_rmse(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Scale- and shift-invariant RMSE of a predicted depth map against the target, in shares of its range.

    The target is min-max normalised to [0, 1] over the mask, the prediction (resized to the target's shape,
    bilinear, if needed) is fitted onto it with `fit_scale_shift`, and the RMSE of the fit is returned. A fit with a
    negative scale (the depth order reversed) is replaced by the constant fit: as bad as no depth at all.
    """
    target = np.asarray(target, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    if prediction.shape != target.shape:
        height, width = target.shape[:2]
        prediction = cv2.resize(prediction, (width, height), interpolation=cv2.INTER_LINEAR)
    selected = _selection(mask, target.shape)
    x, y = prediction[selected], target[selected]
    low, high = float(y.min()), float(y.max())
    normalised = (y - low) / (high - low) if high > low else np.zeros_like(y)
    scale, shift = fit_scale_shift(x, normalised)
    if scale < 0:  # near and far swapped fits "perfectly" with a negative scale: count it as no agreement
        scale, shift = 0.0, float(normalised.mean())
    return float(np.sqrt(np.mean((scale * x + shift - normalised) ** 2)))


# ---- colour ------------------------------------------------------------------------------------------------------


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 ...x3 sRGB to float64 CIELAB (D65): sRGB linearisation, XYZ, then L*a*b*."""
    rgb = np.asarray(rgb)
    if rgb.shape[-1] != 3:
        raise ValueError(f"expected ...x3 RGB, got shape {rgb.shape}")
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    ratio = (linear @ _RGB_TO_XYZ.T) / _D65_WHITE
    f = np.where(ratio > _LAB_EPSILON, np.cbrt(ratio), ratio / (3.0 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    lightness = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a, b], axis=-1)


def _prime_chroma_hue(a: np.ndarray, b: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sharma eq. 2-4: C' and h' (degrees, [0, 360)) after stretching a* by (1 + G)."""
    a_prime = (1.0 + g) * a
    chroma = np.hypot(a_prime, b)
    hue = np.degrees(np.arctan2(b, a_prime)) % 360.0
    return chroma, np.where(chroma == 0, 0.0, hue)


def _hue_difference(h1: np.ndarray, h2: np.ndarray, zero_chroma: np.ndarray) -> np.ndarray:
    """Sharma eq. 10: Δh' in (-180, 180], 0 where either chroma is 0."""
    diff = h2 - h1
    diff = np.where(diff > 180.0, diff - 360.0, np.where(diff < -180.0, diff + 360.0, diff))
    return np.where(zero_chroma, 0.0, diff)


def _mean_hue(h1: np.ndarray, h2: np.ndarray, zero_chroma: np.ndarray) -> np.ndarray:
    """Sharma eq. 14: the mean hue h̄' going the short way round; the sum where either chroma is 0."""
    total = h1 + h2
    wrapped = np.where(total < 360.0, (total + 360.0) / 2.0, (total - 360.0) / 2.0)
    mean = np.where(np.abs(h1 - h2) <= 180.0, total / 2.0, wrapped)
    return np.where(zero_chroma, total, mean)


def _weights(l_mean: np.ndarray, c_mean: np.ndarray, h_mean: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sharma eq. 15-22: S_L, S_C, S_H and the rotation term R_T."""
    rad = np.radians
    t = (
        1.0
        - 0.17 * np.cos(rad(h_mean - 30.0))
        + 0.24 * np.cos(rad(2.0 * h_mean))
        + 0.32 * np.cos(rad(3.0 * h_mean + 6.0))
        - 0.20 * np.cos(rad(4.0 * h_mean - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_mean - 275.0) / 25.0) ** 2))
    r_c = 2.0 * np.sqrt(c_mean**7 / (c_mean**7 + _TWENTY_FIVE_TO_SEVENTH))
    l_offset = (l_mean - 50.0) ** 2
    s_l = 1.0 + 0.015 * l_offset / np.sqrt(20.0 + l_offset)
    s_c = 1.0 + 0.045 * c_mean
    s_h = 1.0 + 0.015 * c_mean * t
    r_t = -np.sin(rad(2.0 * d_theta)) * r_c
    return s_l, s_c, s_h, r_t


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference per pixel of two ...x3 CIELAB arrays, kL = kC = kH = 1 (Sharma et al. 2005)."""
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = np.moveaxis(lab1, -1, 0)
    l2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0
    g = 0.5 * (1.0 - np.sqrt(c_bar**7 / (c_bar**7 + _TWENTY_FIVE_TO_SEVENTH)))
    c1, h1 = _prime_chroma_hue(a1, b1, g)
    c2, h2 = _prime_chroma_hue(a2, b2, g)
    zero_chroma = c1 * c2 == 0
    d_l = l2 - l1
    d_c = c2 - c1
    d_h = 2.0 * np.sqrt(c1 * c2) * np.sin(np.radians(_hue_difference(h1, h2, zero_chroma) / 2.0))
    s_l, s_c, s_h, r_t = _weights((l1 + l2) / 2.0, (c1 + c2) / 2.0, _mean_hue(h1, h2, zero_chroma))
    return np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h))


def kept_delta_e(
    before: Image.Image, after: Image.Image, keep: np.ndarray | None, threshold: float = 0.5
) -> tuple[float, float] | None:
    """(largest, mean) CIEDE2000 between the images over the pixels where keep >= threshold, to 3 decimals.

    `keep` is float HxW in [0, 1] at `before`'s size; `after` is resized (bicubic) to it if needed. None when there
    is no keep mask or no pixel reaches the threshold.
    """
    if keep is None:
        return None
    keep = np.asarray(keep, dtype=np.float64)
    width, height = before.size
    if keep.shape != (height, width):
        raise ValueError(f"keep mask shape {keep.shape} does not match the image's {(height, width)}")
    kept = keep >= threshold
    if not kept.any():
        return None
    lab_before = srgb_to_lab(np.asarray(before.convert("RGB"))[kept])
    lab_after = srgb_to_lab(np.asarray(_to_size(after, before.size).convert("RGB"))[kept])
    difference = delta_e_2000(lab_before, lab_after)
    return round(float(difference.max()), 3), round(float(difference.mean()), 3)


# ---- all together ------------------------------------------------------------------------------------------------


def fidelity(
    before: Image.Image,
    after: Image.Image,
    depth_before: np.ndarray | None = None,
    depth_after: np.ndarray | None = None,
    keep: np.ndarray | None = None,
) -> dict:
    """The result's fidelity to its input: edges F1 always; depth RMSE with both depth maps; kept ΔE with a mask."""
    scores: dict = {"edges_f1": round(image_edges_f1(before, after, side=EDGE_SIDE), 4)}
    if depth_before is not None and depth_after is not None:
        scores["depth_rmse"] = round(depth_rmse(depth_after, depth_before), 4)
    kept = kept_delta_e(before, after, keep, HELD)
    if kept is not None:
        scores["kept_delta_e"] = {"max": kept[0], "mean": kept[1]}
    return scores
