"""What a declutter left, measured (pipeline/stages/declutter_check.py): objects and movable pixels inside what was
taken out, from injected detections and ADE20K label maps (random detectors find nothing meaningful); the seam's
CIEDE2000 calibrated on synthetic rooms; the validator failing a result that left an object; the numbers in the
index, the report and `modomo score --mode declutter`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.frames import Frame, Item
from pipeline.outputs.index import COLUMNS, row
from pipeline.outputs.records import ImageRecord
from pipeline.outputs.report import fidelity_text
from pipeline.stages.declutter_check import (
    DeclutterCheck,
    grow_removal,
    movable_left,
    objects_left,
    seam_delta_e,
)
from pipeline.stages.preserve import Compositor
from pipeline.stages.removal import RemovalMasker, resolve_remove
from pipeline.stages.validate import Validator, cleared
from tests.stages.test_removal import SIZE, found, region, scene_map

REMOVED = (100, 60, 260, 200)  # x0, y0, x1, y1: what was taken out


def frame(room: str = "living room") -> Frame:
    one = Frame(Item("room.jpg", Path("room.jpg"), "."), seed=0, image=Image.new("RGB", SIZE, (128, 128, 128)))
    one.room, one.removal = room, region(REMOVED)
    return one


def masker(remove=None, preserve=()) -> RemovalMasker:
    return RemovalMasker(remove, frozenset(preserve), None)


def left(objects, room="living room", **kwargs) -> int:
    one = frame(room)
    return objects_left(objects, one.removal, masker(**kwargs), one)


# ---- objects_left ------------------------------------------------------------------------------------------------

INSIDE = (140, 90, 200, 170)  # wholly inside what was taken out
OUTSIDE = (290, 80, 380, 200)  # wholly outside
ACROSS = (220, 100, 330, 180)  # a third of it inside: 40 of 110 columns


def test_an_object_left_inside_counts_one_outside_or_removed_does_not():
    assert left([found("chair", INSIDE)]) == 1
    assert left([found("chair", INSIDE, masked=False)]) == 1  # no SAM2 mask: its box stands in
    assert left([found("chair", OUTSIDE)]) == 0  # the photo's own chair, kept beside the hole
    assert left([found("chair", ACROSS)]) == 0  # mostly outside: under OVERLAP inside
    assert left([]) == 0  # what was taken out and is gone: the result shows nothing there
    assert left([found("chair", INSIDE), found("person", (110, 70, 150, 190)), found("couch", OUTSIDE)]) == 2


def test_what_the_masker_keeps_is_not_left():
    assert left([found("microwave", INSIDE)], room="living room") == 1
    assert left([found("microwave", INSIDE)], room="kitchen") == 0  # built in there
    assert left([found("tv", INSIDE)], preserve={"tv"}) == 0  # --preserve tv
    assert left([found("chair", INSIDE)], remove=resolve_remove("tv")) == 0  # --remove tv: a chair stays
    assert left([found("tv", INSIDE)], remove=resolve_remove("tv")) == 1


def test_movable_left_is_the_share_of_the_removal_the_scene_calls_movable():
    one, taker = frame(), masker()
    assert movable_left(scene_map(), one.removal, taker, one) == 0.0  # wall and floor: the room itself
    assert movable_left(scene_map(sofa=(100, 60, 180, 200)), one.removal, taker, one) == 0.5
    assert movable_left(scene_map(sofa=(290, 80, 380, 200)), one.removal, taker, one) == 0.0  # outside
    assert movable_left(scene_map(windowpane=(100, 60, 180, 200)), one.removal, taker, one) == 0.0  # architecture
    assert movable_left(scene_map(sofa=(100, 60, 104, 64)), one.removal, taker, one) == 0.0  # a speck is noise
    assert movable_left(None, one.removal, taker, one) is None


class Stand:
    """A stand-in stage: records what it was called with and sets what it is told on each frame."""

    def __init__(self, **sets):
        self.sets, self.seen = sets, []

    def __call__(self, frames):
        for one in frames:
            self.seen.append(one.image)
            for name, value in self.sets.items():
                setattr(one, name, value)
        return frames


def test_the_check_looks_at_the_result_with_the_models_it_is_given():
    one, restyle = frame(), frame()
    one.result = Image.new("RGB", SIZE, (10, 200, 30))
    restyle.removal, restyle.result = None, one.result
    detector, scene = Stand(objects=[found("chair", INSIDE)]), Stand(scene=scene_map(sofa=(100, 60, 180, 200)))
    DeclutterCheck(masker(), detector, None, scene)([one, restyle])
    assert [np.asarray(seen).tolist() for seen in detector.seen] == [np.asarray(one.result).tolist()]  # not the photo
    assert one.fidelity["objects_left"] == 1 and one.fidelity["movable_left"] == 0.5
    assert "seam_delta_e" in one.fidelity and restyle.fidelity == {}


# ---- seam_delta_e: calibrated on synthetic rooms -----------------------------------------------------------------

W, H = 512, 384
WALL, FLOOR = (200, 190, 170), (120, 85, 60)
IN_WALL = (150, 60, 330, 200)  # a picture or a shelf on the wall
ON_FLOOR = (150, 150, 330, 330)  # a sofa against the wall: the box crosses the skirting


def room(seed: int) -> np.ndarray:
    """A flat-coloured room, 512 x 384: wall above, skirting, floor below row 260; camera noise (sd 6 levels)."""
    pixels = np.zeros((H, W, 3), np.float32)
    pixels[:], pixels[260:], pixels[255:260] = WALL, FLOOR, (90, 90, 90)
    return pixels + np.random.default_rng(seed).normal(0, 6, pixels.shape)


def filled(box, how: str) -> tuple[Image.Image, np.ndarray]:
    """The room with `box` filled: `well` (the same room, other noise), `blurred` (a smooth continuation), or flat
    `slight` (about 1.5 CIEDE2000 off the wall), `mid` (about 5 off) or `other` (another colour: a hard edge)."""
    photo, mask = room(0), region(box, (H, W))
    fill = {
        "well": room(1),
        "blurred": cv2.GaussianBlur(photo, (0, 0), 6),
        "slight": np.full_like(photo, (195, 186, 168)) + np.random.default_rng(2).normal(0, 6, photo.shape),
        "mid": np.full_like(photo, (180, 170, 150)) + np.random.default_rng(2).normal(0, 6, photo.shape),
        "other": np.full_like(photo, (90, 120, 160)) + np.random.default_rng(2).normal(0, 6, photo.shape),
    }[how]
    photo[mask] = fill[mask]
    return Image.fromarray(np.clip(photo, 0, 255).round().astype(np.uint8)), mask


@pytest.mark.parametrize("box", [IN_WALL, ON_FLOOR], ids=["in-the-wall", "across-the-floor-line"])
@pytest.mark.parametrize("how", ["well", "blurred"])
def test_a_good_fill_has_a_low_seam(box, how):
    """Measured: 0.27-0.39 mean, 0.56-1.01 p95 (at 128 px, with fewer pixels per window: 0.9 mean, 2.2 p95)."""
    seam = seam_delta_e(*filled(box, how))
    assert seam["mean"] < 0.6 and seam["p95"] < 1.5, seam


@pytest.mark.parametrize(
    "box,how,low,high",
    [
        (IN_WALL, "slight", 1.0, 2.0),  # measured 1.37: about the just-noticeable difference
        (IN_WALL, "mid", 4.0, 7.0),  # measured 5.5
        (IN_WALL, "other", 25.0, 45.0),  # measured 35.0
        (ON_FLOOR, "slight", 10.0, 25.0),  # measured 16.7: the wall's colour carried over the floor
        (ON_FLOOR, "other", 25.0, 45.0),  # measured 33.2
    ],
)
def test_a_bad_fill_has_a_high_seam(box, how, low, high):
    seam = seam_delta_e(*filled(box, how))
    assert low < seam["mean"] < high and seam["p95"] >= seam["mean"], seam


def test_the_seam_survives_the_compositor_and_is_none_without_a_border():
    """The compositor's feathered seam and colour match do not hide a fill of another colour that the photo around
    it does not share (measured 33.6 composited, 35.0 not)."""
    made, mask = filled(IN_WALL, "other")
    one = Frame(Item("room.jpg", None, "."), seed=0, image=filled(IN_WALL, "well")[0])
    one.removal, one.result = mask, made
    Compositor()([one])
    assert seam_delta_e(one.result, mask)["mean"] > 25
    assert seam_delta_e(made, np.zeros((H, W), bool)) is None and seam_delta_e(made, np.ones((H, W), bool)) is None


# ---- the validator and a retry's mask ----------------------------------------------------------------------------


def test_the_validator_fails_a_declutter_that_left_an_object():
    assert cleared(0.6, {"sanity": 1.0}, {"objects_left": 1, "movable_left": 0.0}) == (
        0.0,
        {"sanity": 1.0, "clear": 0.0},
    )
    assert cleared(0.6, {}, {"objects_left": 0, "movable_left": 0.25}) == (0.45, {"clear": 0.75})
    assert cleared(0.6, {"sanity": 1.0}, {"edges_f1": 0.5}) == (0.6, {"sanity": 1.0})  # a restyle: unchanged


def test_a_declutters_kept_delta_e_is_measured_where_it_holds_the_photo():
    """No keep mask at all (nothing preserved): the kept ΔE is over everything the declutter holds, and about 0."""
    photo, mask = filled(IN_WALL, "well")
    one = Frame(Item("room.jpg", None, "."), seed=0, image=photo)
    one.removal, one.result = mask, filled(IN_WALL, "other")[0].resize((256, 192))  # generated pictures vary
    Compositor()([one])
    check = DeclutterCheck(RemovalMasker(None, frozenset(), None), Stand(objects=[]))
    Validator().judge(Validator()([one]), check)
    assert one.keep is None and "kept_delta_e" in one.fidelity, one.fidelity
    kept = one.fidelity["kept_delta_e"]
    assert kept["max"] < 1.5 and kept["mean"] < 0.05, kept
    assert one.fidelity["objects_left"] == 0 and one.fidelity["seam_delta_e"]["mean"] > 25
    assert one.quality_parts["clear"] == 1.0 and one.quality_parts["change"] == 1.0  # changed where it was meant to


def test_a_retry_grows_the_removal_a_step_never_into_what_is_kept():
    one = frame()
    one.keep = region((260, 60, 300, 200)).astype(np.float32)  # a kept tv right of the hole
    before = one.removal
    grow_removal(one, masker())
    assert one.removal is not before and before.sum() == 160 * 140  # a new array: variations share the old
    assert one.removal[60:200, 96:100].all() and not one.removal[60:200, 95].any()  # 4 px around (0.01 of 400)
    assert one.removal[200:216, 100:260].all() and not one.removal[216].any()  # 12 more down, then 4 around
    tv = one.keep > 0
    assert not one.removal[tv].any() and one.removal[205, 260:264].all()  # never into the kept tv; below it, yes


# ---- where the numbers go ----------------------------------------------------------------------------------------

MEASURED = {"edges_f1": 0.5, "objects_left": 2, "movable_left": 0.125, "seam_delta_e": {"mean": 3.5, "p95": 9.25}}


def test_the_numbers_reach_the_index_and_the_report():
    record = ImageRecord("id", "in/room.jpg", "room.jpg", "empty", "ok", seed=1, quality=0.0, fidelity=MEASURED)
    cells = row(record, None)
    declutter = ("objects_left", "movable_left", "seam_delta_e")
    assert COLUMNS[-7:-4] == declutter and list(cells)[-7:] == list(COLUMNS[-7:])
    assert cells["mode"] == "declutter"  # a line written before the mode was kept: `empty` is a declutter's
    assert (cells["objects_left"], cells["movable_left"], cells["seam_delta_e"]) == (2, 0.125, 3.5)
    restyled = row(ImageRecord("id", "in/room.jpg", "room.jpg", "boho", "ok", fidelity={"edges_f1": 0.5}), None)
    assert (restyled["objects_left"], restyled["seam_delta_e"]) == (None, None)
    text = fidelity_text(MEASURED)
    assert "objects left 2" in text and "movable left 12.5%" in text and "seam \u0394E mean 3.50, p95 9.25" in text


def test_score_scores_a_pair_as_a_declutter(tiny_bundle, rooms, tmp_path):
    """The tiny random models find random things: the numbers are there and of their kind."""
    from modomo_cli.app import app

    photo = rooms / "living-room-02-small.jpg"
    after = tmp_path / "after.png"
    Image.open(photo).convert("RGB").transpose(Image.FLIP_LEFT_RIGHT).save(after)
    result = CliRunner().invoke(
        app, ["score", str(photo), str(after), "--mode", "declutter", "--models", str(tiny_bundle), "--json"]
    )
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert scored["mode"] == "declutter" and 0.0 <= scored["declutter"]["removed_area"] <= 1.0
    assert isinstance(scored["fidelity"].get("objects_left"), int) and "depth" in scored["parts"], scored
    if scored["declutter"]["removed_area"] > 0:
        assert "clear" in scored["parts"] and "kept_delta_e" in scored["fidelity"]
    refused = CliRunner().invoke(app, ["score", str(photo), str(after), "--mode", "declutter"])
    assert refused.exit_code == 2 and "--mode declutter needs --models" in refused.output
