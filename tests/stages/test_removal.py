"""Declutter's removal mask (pipeline/stages/removal.py): what goes and what stays, from injected detections and
ADE20K label maps; no model runs. A 400 x 300 frame: the mask grows 4 px around and 12 px more downwards."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import UsageError
from pipeline.frames import DetectedObject, Frame, Item
from pipeline.inputs.manifest import Job
from pipeline.models.ade20k import ade20k_labels
from pipeline.stages.detect import FURNITURE_CLASSES
from pipeline.stages.preserve import resolve_labels
from pipeline.stages.removal import (
    RemovalMasker,
    declutter_table,
    names_for,
    resolve_remove,
    table_problems,
)
from styles import ROOMS

SIZE = (400, 300)  # width, height
AROUND, DOWN = 4, 12  # declutter.toml's 0.01 and 0.03 of the long side
TV = (40, 60, 120, 120)  # x0, y0, x1, y1
COUCH = (200, 150, 360, 240)


def region(box, shape=SIZE[::-1]) -> np.ndarray:
    """A bool mask of `shape` (the test photo's, by default) that is True over the box."""
    x0, y0, x1, y1 = box
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def found(label: str, box, masked: bool = True) -> DetectedObject:
    """A detection with its SAM2 mask (the box's pixels), or with none (`masked=False`: the box stands in)."""
    return DetectedObject(label=label, confidence=0.9, box=tuple(map(float, box)), mask=region(box) if masked else None)


def scene_map(**classes) -> np.ndarray:
    """An ADE20K label map: wall above, floor below row 200, then each named class over its box."""
    labels = ade20k_labels()
    scene = np.full(SIZE[::-1], labels.index("wall"), dtype=np.uint8)
    scene[200:] = labels.index("floor")
    for name, box in classes.items():
        scene[region(box)] = labels.index(name.replace("_", " "))
    return scene


def frame(objects=(), scene=None, room="living room", job=None, key="room.jpg") -> Frame:
    image = Image.new("RGB", SIZE, (128, 128, 128))
    item = Item(key=key, path=Path(key), root=".", job=job)
    return Frame(item=item, seed=0, image=image, objects=list(objects), scene=scene, room=room)


def masked(one: Frame, remove=None, preserve=(), mask_dir=None) -> Frame:
    return RemovalMasker(remove, frozenset(preserve), mask_dir)([one])[0]


def test_remove_tv_takes_out_only_the_tv_grown():
    one = masked(frame([found("tv", TV), found("couch", COUCH)]), remove=resolve_remove("tv"))
    assert one.removal.shape == (300, 400) and one.removal.dtype == bool
    assert one.removal[region(TV)].all()
    assert one.removal[60:120, 40 - AROUND].all() and not one.removal[60:120, 40 - AROUND - 1].any()  # grown
    assert not one.removal[region(COUCH)].any()
    assert one.removed == ["tv"] and not one.warnings


def test_full_declutter_takes_out_both_and_keeps_the_window_and_the_room():
    window = (250, 100, 330, 170)  # behind the couch, whose box (no SAM2 mask) covers its lower part
    scene = scene_map(windowpane=window, rug=(150, 240, 380, 290))
    one = masked(frame([found("tv", TV), found("couch", COUCH, masked=False)], scene=scene))
    assert one.removal[region(TV)].all()
    assert one.removal[region(COUCH) & ~region(window)].all()
    assert one.removal[240:290, 150:380].all()  # the rug, a scene class
    assert not one.removal[region(window)].any()  # architecture: cut out, and growth stops at it
    assert not one.removal[0:40].any() and not one.removal[:, 0:30].any()  # the wall and floor stay
    assert one.removed == ["couch", "rug", "tv"]


@pytest.mark.parametrize(
    ("room", "goes"),
    [("kitchen", False), ("bathroom", False), ("auto", False), (None, False), ("living room", True), ("bedroom", True)],
)
def test_cabinets_are_built_in_in_a_kitchen_and_furniture_in_a_living_room(room, goes):
    """The table's choice: ADE20K cannot tell a sideboard from a fitted unit; a room type not known keeps them."""
    cabinet = (60, 120, 180, 200)
    one = masked(frame([found("bottle", (100, 100, 120, 119))], scene=scene_map(cabinet=cabinet), room=room))
    assert one.removal[region(cabinet)].all() == goes
    assert one.removal[region(cabinet)].any() == goes  # kept wholly: the bottle's growth stops at its top
    assert one.removal[100:119, 100:120].all()
    assert one.removed == (["bottle", "cabinet"] if goes else ["bottle"])


def test_naming_a_built_in_takes_it_out_even_where_it_is_built_in():
    cabinet = (60, 120, 180, 200)
    one = masked(frame(scene=scene_map(cabinet=cabinet), room="kitchen"), remove=resolve_remove("cabinets"))
    assert one.removal[region(cabinet)].all() and one.removed == ["cabinet"]


def test_preserve_sofa_keeps_the_couch_and_the_scenes_sofa():
    sofa = (190, 150, 370, 240)  # the same sofa in the scene map, whose arms SAM2's mask missed
    objects = [found("tv", TV), found("couch", COUCH), found("cup", (370, 200, 390, 230))]  # a cup beside it
    one = masked(frame(objects, scene=scene_map(sofa=sofa)), preserve=resolve_labels("sofa"))
    assert not one.removal[region(sofa)].any()  # the arms too; the cup's growth stops at the kept sofa
    assert one.removal[region(TV)].all() and one.removal[200:230, 370:390].all()
    assert [o.kept for o in one.objects] == [False, True, False]
    assert one.removed == ["cup", "tv"]


def test_growth_goes_further_down_than_up_and_never_covers_a_kept_region():
    box = (100, 100, 200, 140)
    radiator = (150, 140, 260, 200)  # just below the box's right half
    one = masked(frame([found("box", box)], scene=scene_map(radiator=radiator)))
    rows = np.flatnonzero(one.removal[:, 120])  # a column clear of the radiator
    assert rows.min() == 100 - AROUND and rows.max() == 139 + DOWN + AROUND
    assert 139 + DOWN + AROUND - 139 > 2 * (100 - rows.min())  # further down than up
    assert not one.removal[region(radiator)].any()  # the growth never enters it
    assert one.removal[140:150, 140:150].all()  # beside it, it grows on


def test_clutter_expands_to_its_objects_and_scene_classes():
    clutter = resolve_remove("clutter")
    assert {"bottle", "cup", "book", "remote", "handbag", "teddy bear", "plaything", "bag", "apparel"} <= clutter
    assert "couch" not in clutter and "sofa" not in clutter
    objects = [found("bottle", (50, 50, 70, 90)), found("couch", COUCH)]
    one = masked(frame(objects, scene=scene_map(book=(100, 210, 150, 230))), remove=clutter)
    assert one.removal[50:90, 50:70].all() and one.removal[210:230, 100:150].all()
    assert not one.removal[region(COUCH)].any()
    assert one.removed == ["book", "bottle"]


def test_words_resolve_through_the_aliases_to_both_kinds_of_label():
    assert resolve_remove("TV, sofa") == {"tv", "television receiver", "crt screen", "monitor", "couch", "sofa"}
    assert resolve_remove("lamp,toys,pets") == {"lamp", "plaything", "animal"}  # lamp: a scene class, not COCO
    assert names_for("furniture") | names_for("decor") | names_for("clutter") | names_for("people") >= set(
        declutter_table().movable
    )


@pytest.mark.parametrize(("word", "why"), [("frobnicator", "not something"), ("wall", "part of the room")])
def test_an_unknown_or_fixed_word_is_a_one_line_usage_error(word, why):
    with pytest.raises(UsageError) as caught:
        resolve_remove(f"tv,{word}")
    text = str(caught.value)
    assert f"'{word}'" in text and why in text and "\n" not in text
    assert text.index("clutter") < text.index("chair")  # groups first
    with pytest.raises(UsageError, match="names nothing"):
        resolve_remove(" , ")


def test_nothing_to_remove_is_an_empty_mask_and_a_warning():
    one = masked(frame([found("toilet", (100, 100, 160, 200))], scene=scene_map(), key="bath.jpg"))
    assert one.removal.shape == (300, 400) and not one.removal.any() and one.removed == []
    assert one.warnings == ["bath.jpg: found nothing to remove"]
    one = masked(frame([found("couch", COUCH)]), remove=resolve_remove("tv,clutter"))
    assert not one.removal.any() and one.warnings == ["room.jpg: found nothing to remove (clutter, tv)"]


def test_scene_specks_are_noise_not_objects():
    scene = scene_map(bottle=(10, 10, 14, 14), vase=(300, 20, 330, 60))  # 16 px: under 0.0004 of 120 000
    one = masked(frame(scene=scene))
    assert not one.removal[10:14, 10:14].any() and one.removal[20:60, 300:330].all()
    assert one.removed == ["vase"]


def test_the_users_mask_keeps_and_a_manifest_rows_own_come_first(tmp_path: Path):
    masks = tmp_path / "masks"
    masks.mkdir()
    white = Image.new("L", (200, 150), 0)  # half the frame's size: scaled
    white.paste(255, (0, 0, 40, 150))  # keeps x < 80
    white.save(masks / "room.png")
    one = masked(frame([found("tv", TV)]), mask_dir=masks)
    assert not one.removal[:, :80].any() and one.removal[60:120, 80:120].all()
    assert one.mask_source == str(masks / "room.png")

    row = Job(line=2, digest="row", preserve=frozenset({"tv"}), mask=None)
    one = masked(frame([found("tv", TV), found("couch", COUCH)], job=row), preserve={"couch"})
    assert not one.removal[region(TV)].any() and one.removal[region(COUCH)].all()  # the row's preserve
    (masks / "broken.png").write_text("not an image")
    one = masked(frame([found("tv", TV)], job=Job(line=3, digest="b", mask=str(masks / "broken.png"))))
    assert not one.ok and "broken.png" in one.error and one.removal is None


def test_the_table_names_real_classes_rooms_and_covers_every_label():
    table = declutter_table()
    assert table_problems(table) == []
    assert set(table.built_in) == {*ROOMS, "default"}
    named = set().union(*(names_for(group) for group in table.groups))
    assert set(FURNITURE_CLASSES) - table.fixtures <= named  # every movable detection is in a group
    broken = replace(table, movable=table.movable | {"spaceship"}, built_in={**table.built_in, "garage": frozenset()})
    assert len(table_problems(broken)) == 2
