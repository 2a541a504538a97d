"""--mode stage's region and the second pass's added-furniture mask (pipeline/stages/staging.py, second_pass.py),
from injected ADE20K label maps and detections; no model runs. A 400 x 300 frame: wall above row 200, floor
below; a living room's floor grows 0.28 x 300 = 84 px upwards, so the region starts at row 116."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.inputs.manifest import Job
from pipeline.stages.second_pass import added_mask
from pipeline.stages.staging import StageMasker, grow_up, stage_table, table_problems
from tests.stages.test_removal import SIZE, found, frame, region, scene_map

HEIGHT = round(0.28 * SIZE[1])  # stage.toml's living room: 84 px
WINDOW = (40, 150, 120, 260)  # a French window reaching the floor
DOOR = (300, 90, 360, 280)


def staged_frame(**kwargs):
    shot = frame(**kwargs)
    StageMasker(frozenset(), None)([shot])
    return shot


def test_the_table_names_real_classes_labels_and_rooms():
    table = stage_table()
    assert table_problems(table) == []
    assert table.height_for("living room") == pytest.approx(0.28)
    assert table.height_for("auto") == table.height_for("greenhouse") == table.heights["default"]
    assert "bed" in table.expected_for("bedroom") and "windowpane" in table.openings


def test_grow_up_reaches_exactly_its_height_and_never_down():
    mask = np.zeros((50, 10), bool)
    mask[30:35, 4] = True
    grown = grow_up(mask, 10)
    assert grown[20:35, 4].all() and not grown[19, 4] and not grown[35:, 4].any()
    assert grown[:, [3, 5]].sum() == 0  # straight up: no sideways growth


def test_the_region_is_the_floor_grown_by_the_room_types_height():
    shot = staged_frame(scene=scene_map())
    rows = np.flatnonzero(shot.region.any(axis=1))
    assert rows[0] == 200 - HEIGHT and rows[-1] == SIZE[1] - 1
    assert shot.keep is None and shot.ok
    bedroom = staged_frame(scene=scene_map(), room="bedroom")
    assert np.flatnonzero(bedroom.region.any(axis=1))[0] == 200 - round(0.32 * SIZE[1])


def test_windows_doors_and_the_ceiling_stay_the_photos():
    shot = staged_frame(scene=scene_map(windowpane=WINDOW, door=DOOR, ceiling=(0, 0, 280, 130)))
    window, door = region(WINDOW), region(DOOR)
    assert not (shot.region & (window | door)).any()
    assert (shot.keep[window | door] == 1.0).all() and shot.keep[~(window | door)].max() == 0.0
    assert not shot.region[:130, :280].any() and shot.region[130:200, 200].all()  # nothing stands on a ceiling
    clearance = round(0.004 * SIZE[0])  # 2 px around what is kept
    assert not shot.region[150:260, 40 - clearance : 120 + clearance].any()


def test_fixtures_built_ins_and_preserved_objects_are_kept():
    kitchen = staged_frame(scene=scene_map(cabinet=(150, 160, 250, 260)), room="kitchen")
    assert not kitchen.region[160:260, 150:250].any()  # a kitchen's cabinets are built in
    living = staged_frame(scene=scene_map(cabinet=(150, 160, 250, 260)))
    assert living.region[210:260, 150:250].all()  # a living room's sideboard is painted over
    job = Job(1, "x", preserve=frozenset({"couch"}))
    kept = staged_frame(scene=scene_map(), objects=[found("couch", (200, 210, 300, 280))], job=job)
    assert not kept.region[210:280, 200:300].any() and kept.keep[240, 250] == 1.0


def test_a_photo_without_floor_fails_in_one_line():
    shot = frame(scene=np.full(SIZE[::-1], 0, np.uint8))  # all wall
    StageMasker(frozenset(), None)([shot])
    assert not shot.ok and shot.error.startswith("no floor to stage on") and "\n" not in shot.error


def test_added_is_what_became_furniture_inside_the_region():
    shot = staged_frame(scene=scene_map(chair=(20, 220, 60, 260)))  # a stray chair was there before
    seen = frame(scene=scene_map(sofa=(150, 170, 300, 260), chair=(20, 220, 60, 260), painting=(150, 20, 250, 80)))
    seen.objects = [found("couch", (150, 170, 300, 260))]
    added = added_mask(shot, seen, StageMasker(frozenset(), None).keeps, stage_table())
    sofa = region((150, 170, 300, 260))
    assert added[sofa].all()
    assert not added[region((20, 220, 60, 260))].any()  # the chair was there in the empty room too
    assert not added[:100].any()  # the painting is outside the region: the first pass could not have made it
    grow = round(0.012 * SIZE[0])
    assert added[170 - grow, 200] and not added[170 - grow - 2, 200]


def test_added_ignores_specks_and_never_enters_what_is_kept():
    shot = staged_frame(scene=scene_map(windowpane=WINDOW))
    seen = frame(scene=scene_map(vase=(330, 250, 333, 253), sofa=(110, 200, 250, 290)))
    added = added_mask(shot, seen, StageMasker(frozenset(), None).keeps, stage_table())
    assert added[200:290, 125:250].all()
    assert not added[240:265, 320:345].any()  # 9 px of vase: under [added] min_area, noise
    assert not added[region(WINDOW)].any()
    empty = frame(scene=scene_map(vase=(330, 250, 333, 253)))
    assert not added_mask(shot, empty, StageMasker(frozenset(), None).keeps, stage_table()).any()


def test_a_photo_with_little_furniture_is_staged_as_it_is():
    """Under stage.toml's [declutter] share of movable things (detections and scene classes), no declutter runs: the
    frame is untouched (its generator is never called); over it, the photo is one to empty first."""
    from pipeline.stages.empty_first import EmptyFirst, movable_share
    from pipeline.stages.removal import RemovalMasker

    masker = RemovalMasker(None, frozenset(), None)
    chair = staged_frame(scene=scene_map(), objects=[found("chair", (20, 220, 60, 250))])  # 1 % of the photo
    assert movable_share(masker, chair) == pytest.approx(40 * 30 / (400 * 300))
    image = chair.image
    EmptyFirst(masker, [], None, None, [], stage_table().declutter_above)([chair])
    assert chair.image is image and chair.removal is None and chair.before is None
    sofa = frame(scene=scene_map(sofa=(100, 180, 300, 280)))
    assert movable_share(masker, sofa) > stage_table().declutter_above
