"""Fidelity metrics: edges F1, scale-and-shift-invariant depth RMSE, CIEDE2000 over the kept pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.stages.fidelity import (
    _hue_difference,
    _mean_hue,
    delta_e_2000,
    depth_rmse,
    edge_f1,
    edge_map,
    fidelity,
    fit_scale_shift,
    image_edges_f1,
    kept_delta_e,
    srgb_to_lab,
)

WIDTH, HEIGHT = 256, 192

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula", Table 1: all 34 pairs.
# (L1, a1, b1, L2, a2, b2, ΔE00). Pairs 9-16 straddle a* = ±2.49 where the hue difference and the mean hue wrap.
SHARMA_PAIRS = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


# ---- synthetic scenes ----------------------------------------------------------------------------------------------


def _poly(points) -> list[np.ndarray]:
    return [np.array(points, dtype=np.int32)]


def draw_room() -> np.ndarray:
    """A one-point-perspective room, RGB uint8: shaded walls, floor line, a window with mullions, a door."""
    img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    img[:] = (200, 190, 170)  # back wall
    cv2.fillPoly(img, _poly([[0, 0], [60, 30], [60, 130], [0, HEIGHT]]), (150, 140, 120))  # left wall, in shade
    cv2.fillPoly(img, _poly([[WIDTH, 0], [196, 30], [196, 130], [WIDTH, HEIGHT]]), (175, 165, 150))  # right wall
    cv2.fillPoly(img, _poly([[0, 0], [WIDTH, 0], [196, 30], [60, 30]]), (235, 235, 230))  # ceiling
    cv2.fillPoly(img, _poly([[0, HEIGHT], [60, 130], [196, 130], [WIDTH, HEIGHT]]), (110, 80, 55))  # floor
    cv2.line(img, (60, 130), (196, 130), (60, 40, 30), 2)  # skirting along the floor line
    cv2.rectangle(img, (90, 50), (150, 105), (120, 170, 220), -1)  # window glass
    cv2.rectangle(img, (90, 50), (150, 105), (250, 250, 250), 3)  # window frame
    cv2.line(img, (120, 50), (120, 105), (250, 250, 250), 2)  # mullion
    cv2.line(img, (90, 77), (150, 77), (250, 250, 250), 2)  # transom
    cv2.fillPoly(img, _poly([[206, 48], [236, 40], [236, 165], [206, 140]]), (90, 60, 40))  # door on the right wall
    cv2.circle(img, (230, 105), 3, (220, 200, 60), -1)  # door knob
    return img


def draw_unrelated(seed: int) -> np.ndarray:
    """Random filled ellipses on grey: a picture with edges, none of them the room's."""
    rng = np.random.default_rng(seed)
    img = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    for _ in range(12):
        centre = tuple(int(v) for v in rng.integers(0, [WIDTH, HEIGHT]))
        axes = tuple(int(v) for v in rng.integers(5, 40, size=2))
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return img


def recolour(img: np.ndarray) -> np.ndarray:
    """Same layout, another palette: channels permuted and brightened."""
    return np.clip(img[..., [2, 0, 1]].astype(np.float64) * 1.15 + 20, 0, 255).astype(np.uint8)


def translate(img: np.ndarray, dx: int, dy: int = 0) -> np.ndarray:
    """The picture moved by (dx, dy) px, borders replicated."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, matrix, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def room_depth() -> np.ndarray:
    """The room's depth: 1 at the frame rising to 5 on the back wall, a sofa at 2 on the left (not symmetric)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    across = np.minimum(np.minimum(x / 60, (WIDTH - 1 - x) / 60), 1.0)
    down = np.minimum(np.minimum(y / 30, (HEIGHT - 1 - y) / 62), 1.0)
    depth = 1.0 + 4.0 * np.minimum(across, down)
    depth[120:170, 20:90] = 2.0
    return depth


def pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(img, "RGB")


# ---- CIELAB and CIEDE2000 ------------------------------------------------------------------------------------------


def test_delta_e_2000_matches_sharma_test_data():
    data = np.array(SHARMA_PAIRS)
    got = delta_e_2000(data[:, 0:3], data[:, 3:6])
    assert got.shape == (len(SHARMA_PAIRS),)
    for number, (value, expected) in enumerate(zip(got, data[:, 6], strict=True), start=1):
        assert value == pytest.approx(expected, abs=1e-4), f"Sharma pair {number}"


@pytest.mark.parametrize("number", [9, 10, 11, 12, 13, 14, 15, 16])
def test_delta_e_2000_hue_wraparound_pairs_are_symmetric(number):
    """Pairs 9-16 cross the ±180° hue seam; swapping the two colours must give the same value."""
    row = np.array(SHARMA_PAIRS[number - 1])
    forward = float(delta_e_2000(row[0:3], row[3:6]))
    backward = float(delta_e_2000(row[3:6], row[0:3]))
    assert forward == pytest.approx(row[6], abs=1e-4)
    assert backward == pytest.approx(forward, abs=1e-9)


def test_delta_e_2000_hue_edge_cases_of_sharma_eq_10_and_14():
    """Where C'1 C'2 = 0, Δh' is 0 and h̄' is the plain sum; elsewhere both go the short way round the circle.

    (The zero-chroma rules cannot move ΔE00 itself, whose hue terms are then multiplied by ΔH' = 0, so they are
    pinned here on the helpers.)
    """
    h1, h2 = np.array([10.0, 350.0, 100.0, 300.0, 0.0]), np.array([350.0, 10.0, 200.0, 40.0, 250.0])
    zero = np.array([False, False, False, False, True])
    assert _hue_difference(h1, h2, zero) == pytest.approx([-20.0, 20.0, 100.0, 100.0, 0.0])
    assert _mean_hue(h1, h2, zero) == pytest.approx([0.0, 0.0, 150.0, 350.0, 250.0])
    assert _mean_hue(np.array([200.0]), np.array([340.0]), np.array([False])) == pytest.approx([270.0])
    assert _mean_hue(np.array([300.0]), np.array([100.0]), np.array([False])) == pytest.approx([20.0])


def test_delta_e_2000_is_per_pixel_and_zero_on_identity():
    lab = srgb_to_lab(draw_room())
    same = delta_e_2000(lab, lab)
    assert same.shape == (HEIGHT, WIDTH)
    assert np.all(same == 0.0)


def test_srgb_to_lab_reference_colours():
    lab = srgb_to_lab(np.array([[[255, 255, 255], [0, 0, 0], [128, 128, 128], [255, 0, 0]]], np.uint8))
    assert lab.dtype == np.float64 and lab.shape == (1, 4, 3)
    white, black, grey, red = lab[0]
    assert white == pytest.approx([100.0, 0.0, 0.0], abs=1e-3)
    assert black == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert grey[1:] == pytest.approx([0.0, 0.0], abs=1e-3)
    assert grey[0] == pytest.approx(53.585, abs=1e-3)  # sRGB 128 is L* 53.585, not 50: the gamma is undone first
    assert red == pytest.approx([53.2408, 80.0925, 67.2032], abs=1e-3)


# ---- edges ---------------------------------------------------------------------------------------------------------


def _step(left, right) -> Image.Image:
    """32x32, a vertical boundary between two colours at x = 16."""
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :16] = left
    img[:, 16:] = right
    return pil(img)


def test_edge_map_is_bool_canny_of_the_grey_image():
    edges = edge_map(pil(draw_room()))
    assert edges.dtype == bool and edges.shape == (HEIGHT, WIDTH)
    assert 500 < edges.sum() < 5000
    assert not edge_map(Image.new("RGB", (32, 32), (90, 120, 30))).any()
    assert edge_map(_step((0, 0, 0), (0, 255, 0))).any()  # green only: seen through the luminance
    assert not edge_map(_step((255, 0, 0), (0, 130, 0))).any()  # same grey (76) either side: no edge


def test_edge_map_default_thresholds_are_100_and_200():
    """A grey step of d gives a Sobel magnitude of 4d: 160 stays under the high threshold of 200, 240 passes."""
    assert not edge_map(_step(100, 140)).any()
    assert edge_map(_step(100, 160)).sum() == 32
    assert edge_map(_step(100, 140), low=50, high=100).sum() == 32


def test_edges_f1_orders_identical_recoloured_shifted_unrelated():
    room = draw_room()
    before = pil(room)
    identical = image_edges_f1(before, pil(room.copy()))
    recoloured = image_edges_f1(before, pil(recolour(room)))
    shifted = image_edges_f1(before, pil(translate(room, 12)))
    unrelated = [image_edges_f1(before, pil(draw_unrelated(seed))) for seed in (1, 4, 7)]
    assert identical == 1.0
    assert 0.7 < recoloured < 1.0  # palette changed, layout kept: most edges survive
    assert 0.25 < shifted < recoloured - 0.2  # layout kept but 12 px off: only edges along the shift still match
    assert max(unrelated) < shifted - 0.15


def test_image_edges_f1_resizes_the_result_to_the_input():
    room = draw_room()
    larger = pil(room).resize((WIDTH * 2, HEIGHT * 2), Image.Resampling.BICUBIC)
    assert image_edges_f1(pil(room), larger) > 0.7


def test_edge_f1_tolerance_forgives_a_one_pixel_shift():
    reference = np.zeros((64, 64), bool)
    reference[8:56, 30] = True
    candidate = np.zeros_like(reference)
    candidate[8:56, 31] = True
    assert edge_f1(reference, candidate, tolerance=1) == 1.0
    assert edge_f1(reference, candidate, tolerance=0) < 0.1
    assert edge_f1(reference, reference, tolerance=0) == 1.0


def test_edge_f1_precision_and_recall_use_their_own_denominators():
    """Reference: a 3-px band, 20 long (60 px). Candidate: its middle row, half as long (10 px).

    Precision = 10/10 (every candidate pixel sits on the band); recall = 33/60 (the candidate's 1-px
    neighbourhood covers 3 rows x 11 columns of the band). Swapping the denominators gives a different F1.
    """
    reference = np.zeros((24, 24), bool)
    reference[10:13, 0:20] = True
    candidate = np.zeros_like(reference)
    candidate[11, 0:10] = True
    precision, recall = 1.0, 33 / 60
    assert edge_f1(reference, candidate, tolerance=1) == pytest.approx(2 * precision * recall / (precision + recall))


def test_edge_f1_empty_maps_and_shape_mismatch():
    empty = np.zeros((16, 16), bool)
    some = empty.copy()
    some[4, 4:12] = True
    assert edge_f1(empty, empty) == 1.0
    assert edge_f1(empty, some) == 0.0
    assert edge_f1(some, empty) == 0.0
    with pytest.raises(ValueError, match="shape"):
        edge_f1(some, np.zeros((16, 17), bool))


# ---- depth ---------------------------------------------------------------------------------------------------------


def test_fit_scale_shift_recovers_an_affine_map_over_the_mask():
    rng = np.random.default_rng(0)
    prediction = rng.random((20, 30))
    target = 2.5 * prediction - 1.25
    mask = np.zeros((20, 30), bool)
    mask[5:15, 5:25] = True
    target[~mask] = 1000.0  # outside the mask: must not pull the fit
    scale, shift = fit_scale_shift(prediction, target, mask)
    assert scale == pytest.approx(2.5, abs=1e-12)
    assert shift == pytest.approx(-1.25, abs=1e-12)
    assert fit_scale_shift(np.full((4, 4), 0.1), np.arange(16.0).reshape(4, 4)) == (0.0, 7.5)


def test_depth_rmse_is_scale_and_shift_invariant():
    """Would fail without the fit: 3d + 10 is far from the [0, 1]-normalised target, yet perfectly related."""
    depth = room_depth()
    prediction = 3.0 * depth + 10.0
    normalised = (depth - depth.min()) / (depth.max() - depth.min())
    plain = float(np.sqrt(np.mean((prediction - normalised) ** 2)))
    assert plain > 10.0
    assert depth_rmse(prediction, depth) < 1e-6
    assert depth_rmse(2.0 * depth + 5.0, depth) < 1e-6


def test_depth_rmse_is_in_shares_of_the_input_depth_range():
    """A constant prediction can only be fitted to the target's mean: RMSE 0.5 for a two-pixel 0/1 target,
    whatever the target's units."""
    flat = np.full((1, 2), 7.0)
    assert depth_rmse(flat, np.array([[0.0, 10.0]])) == pytest.approx(0.5)
    assert depth_rmse(flat, np.array([[300.0, 3000.0]])) == pytest.approx(0.5)
    assert depth_rmse(flat, np.full((1, 2), 4.0)) == 0.0  # constant target: no division by zero


def test_depth_rmse_orders_identical_blurred_shifted_unrelated():
    depth = room_depth()
    identical = depth_rmse(depth.copy(), depth)
    blurred = depth_rmse(cv2.GaussianBlur(depth, (0, 0), 2.0), depth)
    shifted = depth_rmse(translate(depth, 12), depth)
    unrelated = depth_rmse(cv2.GaussianBlur(np.random.default_rng(3).random(depth.shape), (0, 0), 8.0), depth)
    flipped = depth_rmse(depth[::-1].copy(), depth)
    assert identical < 1e-12
    assert identical < blurred < shifted < unrelated
    assert blurred < 0.05
    assert flipped > 0.2 and flipped > 10 * blurred


def test_depth_rmse_resizes_the_prediction_and_honours_the_mask():
    depth = room_depth()
    half = cv2.resize(depth, (WIDTH // 2, HEIGHT // 2), interpolation=cv2.INTER_AREA)
    assert depth_rmse(half, depth) < 0.05
    # bilinear: [0, 1] stretched over four pixels is the ramp [0, .25, .75, 1] (nearest would give 0, 0, 1, 1)
    assert depth_rmse(np.array([[0.0, 1.0]]), np.array([[0.0, 0.25, 0.75, 1.0]])) < 1e-9
    broken = depth.copy()
    broken[:, :64] = np.random.default_rng(5).random((HEIGHT, 64))
    mask = np.zeros(depth.shape, bool)
    mask[:, 64:] = True
    assert depth_rmse(broken, depth, mask) < 1e-9
    assert depth_rmse(broken, depth) > 0.1


# ---- kept colour ---------------------------------------------------------------------------------------------------


def _left_half_keep() -> np.ndarray:
    keep = np.zeros((HEIGHT, WIDTH), np.float64)
    keep[:, : WIDTH // 2] = 1.0
    keep[:, WIDTH // 2 : WIDTH // 2 + 8] = 0.4  # a soft edge under the threshold
    return keep


def test_kept_delta_e_ignores_what_is_not_kept():
    room = draw_room()
    after = room.copy()
    after[:, WIDTH // 2 :] = 255 - after[:, WIDTH // 2 :]  # everything outside the kept half inverted
    assert kept_delta_e(pil(room), pil(after), _left_half_keep()) == (0.0, 0.0)


def test_kept_delta_e_sees_a_recoloured_kept_region():
    room = draw_room()
    keep = _left_half_keep()
    largest, mean = kept_delta_e(pil(room), pil(recolour(room)), keep)
    kept = keep >= 0.5
    direct = delta_e_2000(srgb_to_lab(room[kept]), srgb_to_lab(recolour(room)[kept]))
    assert (largest, mean) == (round(float(direct.max()), 3), round(float(direct.mean()), 3))
    assert largest > 20.0
    assert 0.0 < mean <= largest


def test_kept_delta_e_none_without_a_kept_pixel():
    room = pil(draw_room())
    assert kept_delta_e(room, room, None) is None
    assert kept_delta_e(room, room, np.full((HEIGHT, WIDTH), 0.3)) is None
    assert kept_delta_e(room, room, np.full((HEIGHT, WIDTH), 0.5)) == (0.0, 0.0)  # the threshold itself is kept
    with pytest.raises(ValueError, match="shape"):
        kept_delta_e(room, room, np.ones((WIDTH, HEIGHT)))


def test_kept_delta_e_resizes_the_result():
    room = draw_room()
    flat = np.full((HEIGHT, WIDTH, 3), (200, 190, 170), np.uint8)  # the back wall's colour everywhere
    keep = np.zeros((HEIGHT, WIDTH))
    keep[60:70, 100:110] = 1.0  # inside the window glass
    largest, _ = kept_delta_e(pil(room), pil(flat).resize((WIDTH * 2, HEIGHT * 2)), keep)
    assert largest > 10.0
    assert kept_delta_e(pil(flat), pil(flat).resize((WIDTH * 2, HEIGHT * 2)), keep) == (0.0, 0.0)


# ---- all together --------------------------------------------------------------------------------------------------


def test_fidelity_reports_only_what_it_was_given():
    room = draw_room()
    before, after = pil(room), pil(recolour(room))
    depth = room_depth()

    bare = fidelity(before, after)
    assert set(bare) == {"edges_f1"}
    assert bare["edges_f1"] == round(image_edges_f1(before, after, side=512), 4)

    assert set(fidelity(before, after, depth_before=depth)) == {"edges_f1"}
    assert set(fidelity(before, after, depth_after=depth)) == {"edges_f1"}
    assert set(fidelity(before, after, keep=np.zeros((HEIGHT, WIDTH)))) == {"edges_f1"}

    full = fidelity(before, after, depth_before=depth, depth_after=2 * depth + 1, keep=_left_half_keep())
    assert set(full) == {"edges_f1", "depth_rmse", "kept_delta_e"}
    assert full["depth_rmse"] == 0.0
    assert set(full["kept_delta_e"]) == {"max", "mean"}
    assert full["kept_delta_e"]["max"] > 20.0


def test_depth_rmse_counts_reversed_depth_as_no_agreement():
    """A map with near and far swapped fits exactly with a negative scale; it must score like a constant map."""
    ramp = np.tile(np.linspace(0.0, 1.0, 64), (48, 1))
    assert depth_rmse(-ramp, ramp) == pytest.approx(depth_rmse(np.zeros_like(ramp), ramp))
    assert depth_rmse(-ramp, ramp) > 0.25


def test_fidelity_measures_edges_at_one_size_whatever_the_photos():
    """The same pair at 256 and at 1024 px gives one edges F1: both are measured at a 512 px long side."""
    room, recoloured = pil(draw_room()), pil(recolour(draw_room()))
    small = fidelity(room, recoloured)["edges_f1"]
    big = fidelity(
        room.resize((1024, 768), Image.Resampling.BICUBIC), recoloured.resize((1024, 768), Image.Resampling.BICUBIC)
    )["edges_f1"]
    assert abs(small - big) < 0.05
    assert small == round(image_edges_f1(room, recoloured, side=512), 4)
