"""What a staging made (pipeline/stages/stage_check.py), measured on synthetic furnished and unfurnished rooms:
injected ADE20K label maps and detections stand for what the real segmenter and detector would find (the tiny
random models find nothing meaningful; their numbers are checked on written files in tests/run/test_stage_run.py).
A 400 x 300 living room: wall above row 200, floor below, a French window on the left."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.stages.stage_check import architecture_edges_f1, furnished, furniture_added, openings_added
from pipeline.stages.staging import StageMasker, stage_table
from tests.stages.test_removal import found, frame, scene_map
from tests.stages.test_staging import WINDOW

SOFA = (150, 170, 300, 260)


def empty_room():
    """The empty room staged: its region (the floor grown up), its kept window, a drawn window frame to see edges."""
    shot = frame(scene=scene_map(windowpane=WINDOW))
    picture = Image.new("RGB", shot.image.size, (200, 196, 190))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, 200, 400, 300), fill=(150, 120, 90))
    draw.rectangle(WINDOW, outline=(40, 40, 40), width=4)
    shot.image = picture
    StageMasker(frozenset(), None)([shot])
    return shot


def looked(**classes):
    """What the segmenter and detector would find on a result: the scene with `classes`, a couch where a sofa is."""
    seen = frame(scene=scene_map(windowpane=WINDOW, **classes))
    seen.objects = [found("couch", classes["sofa"])] if "sofa" in classes else []
    return seen


def masker():
    return StageMasker(frozenset(), None).keeps


def test_a_furnished_room_adds_furniture_and_an_unfurnished_one_none():
    shot = empty_room()
    furnished_room = furniture_added(shot, looked(sofa=SOFA), masker(), stage_table())
    share = (SOFA[2] - SOFA[0]) * (SOFA[3] - SOFA[1]) / shot.region.sum()
    assert furnished_room["share"] == pytest.approx(share, abs=1e-3) and furnished_room["pieces"] == {"couch": 1}
    assert furnished_room["expected"] == ["couch", "chair", "dining table", "potted plant"]
    bare = furniture_added(shot, looked(), masker(), stage_table())
    assert bare == {"share": 0.0, "pieces": {}, "expected": furnished_room["expected"]}


def test_furniture_that_was_there_or_outside_the_region_is_not_added():
    shot = empty_room()
    shot.scene = scene_map(windowpane=WINDOW, sofa=SOFA)  # the "empty" room had that sofa
    shot.objects = [found("couch", (152, 168, 300, 262))]
    assert furniture_added(shot, looked(sofa=SOFA), masker(), stage_table())["pieces"] == {}
    assert furniture_added(shot, looked(sofa=SOFA), masker(), stage_table())["share"] == 0.0
    high = furniture_added(empty_room(), looked(painting=(200, 10, 300, 60)), masker(), stage_table())
    assert high["share"] == 0.0  # a painting high on the wall: not where the staging may put furniture


def test_a_window_painted_on_a_wall_is_an_opening_added():
    shot = empty_room()
    assert openings_added(shot, looked(sofa=SOFA), stage_table()) == 0.0  # the room's own window is not new
    painted = looked(sofa=SOFA, door=(320, 130, 380, 260))
    region = shot.region
    new = np.zeros_like(region)
    new[130:260, 320:380] = True
    assert openings_added(shot, painted, stage_table()) == pytest.approx((new & region).sum() / region.sum(), abs=1e-4)


def test_the_architectures_edges_survive_or_not():
    shot = empty_room()
    assert architecture_edges_f1(shot, shot.image) == 1.0
    moved = shot.image.copy()
    ImageDraw.Draw(moved).rectangle((0, 140, 130, 270), fill=(200, 196, 190))  # the window frame painted over
    assert architecture_edges_f1(shot, moved) < 0.5
    furnished_floor = shot.image.copy()
    ImageDraw.Draw(furnished_floor).rectangle(SOFA, fill=(90, 60, 40), outline=(20, 20, 20), width=3)
    assert architecture_edges_f1(shot, furnished_floor) == 1.0  # furniture away from the window: its edges stay
    shot.keep = None
    assert architecture_edges_f1(shot, moved) is None  # nothing kept: no architecture to measure


@pytest.mark.parametrize(
    "measured,expected",
    [
        ({"furniture_added": {"share": 0.3, "pieces": {"couch": 1}}, "openings_added": 0.0}, (0.5, 1.0)),
        ({"furniture_added": {"share": 0.0, "pieces": {"chair": 1}}}, (0.5, 1.0)),
        ({"furniture_added": {"share": 0.0, "pieces": {}}, "openings_added": 0.0}, (0.0, 0.0)),
        ({"furniture_added": {"share": 0.3, "pieces": {}}, "openings_added": 0.02}, (0.0, 0.0)),
        ({"furniture_added": {"share": 0.3, "pieces": {}}, "openings_added": 0.004}, (0.5, 1.0)),
    ],
)
def test_a_staging_without_furniture_or_with_a_new_opening_fails(measured, expected):
    score, parts = furnished(0.5, {"sanity": 1.0}, measured)
    assert (score, parts["furnished"]) == expected and parts["sanity"] == 1.0
    assert furnished(0.5, {}, {"edges_f1": 0.9}) == (0.5, {})  # not a staging: unchanged


def test_the_check_reads_openings_where_the_second_pass_looked():
    """The first pass's picture, as the second pass saw it (`painted`), is where a painted door shows: the final
    result has the room put back around the furniture. No model runs here (the check's models: none)."""
    from pipeline.stages.stage_check import StageCheck

    shot = empty_room()
    shot.result = shot.image.copy()
    shot.painted = looked(sofa=SOFA, door=(320, 130, 380, 260))
    StageCheck(masker(), stage_table(), ())([shot])
    assert shot.fidelity["openings_added"] > 0.01 and shot.fidelity["architecture_edges_f1"] == 1.0
    assert furnished(0.5, {}, shot.fidelity)[0] == 0.0
