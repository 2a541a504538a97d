"""`modomo transform --mode stage` end to end on the tiny models, whose scene segmentation here knows where the test
rooms' floor is (tests/floor_segmenter.py): a real room photo furnished in boho, the photo's own pixels everywhere
outside what was made (its window whole, at its own resolution too), results named and resumed as the style's, a
room set's photos following their anchor.

Tiny random models paint noise: the tests check the mechanics (the region, the composite, the anchor, the numbers
on the written files), and that something was made, so the checks are not vacuous."""

from __future__ import annotations

import csv
import json
import shutil
from contextlib import contextmanager
from dataclasses import replace

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.inputs import imaging
from tests.conftest import restyle
from tests.floor_segmenter import WINDOW

STAGE = ("--mode", "stage", "--style", "boho", "--save-controls", "--room", "living room")


@contextmanager
def as_empty_rooms():
    """The test photos staged as the empty rooms they stand in for: the tiny detector finds couches in every photo
    (and its random masks cover most of it), so with the table as it is every one would be emptied first; here no
    share of furniture is enough for that (pipeline/data/stage.toml [declutter] above = 1)."""
    from pipeline.stages import staging

    table = replace(staging.stage_table(), declutter_above=1.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(staging, "stage_table", lambda: table)
        yield


@pytest.fixture(scope="module", params=["original", "working"])
def staged_run(request, floor_bundle, rooms, tmp_path_factory):
    """living-room-01 staged at its own resolution (and at the working size), its right half kept by a user mask
    (the tiny models' random masks would take out nearly the whole room first): (summary, output, photo, size)."""
    root = tmp_path_factory.mktemp("stage")
    photo = root / "in" / "living-room-01.jpg"
    photo.parent.mkdir()
    shutil.copy(rooms / "living-room-01.jpg", photo)
    masks = root / "masks"
    masks.mkdir()
    keep = np.zeros((96, 128), np.uint8)
    keep[:, 64:] = 255
    Image.fromarray(keep).save(masks / "living-room-01.png")
    out = root / "out"
    with as_empty_rooms():
        summary = restyle(floor_bundle, photo.parent, out, *STAGE, "--mask-dir", masks, "--output-size", request.param)
    return summary, out, photo, request.param


def test_the_result_is_named_for_its_style_and_says_it_was_staged(staged_run):
    summary, out, *_ = staged_run
    (record,) = summary["images"]
    assert record["status"] == "ok", record
    assert record["style"] == "boho" and (out / "living-room-01.boho.png").is_file()
    meta = json.loads((out / "living-room-01.boho.json").read_text())
    assert meta["settings"]["mode"] == "stage" and meta["settings"]["second_pass"] == 0.5
    assert meta["settings"]["controls"] == ["depth", "lines", "inpaint"]
    stage = meta["stage"]
    assert stage["furniture"].startswith("a sofa, two armchairs") and stage["furniture"] in meta["prompt"]
    assert 0.1 < stage["region_area"] < 0.9 and 0 < stage["added_area"] <= stage["region_area"]
    assert "window" in meta["negative_prompt"]
    assert "declutter" not in meta  # an empty room is staged as it is: nothing taken out first
    assert {"region", "generate", "second pass"} <= set(meta["timings"])
    data = (out / "living-room-01.boho.png").read_bytes()
    assert b"virtually staged as boho" in data and b"restyled as" not in data
    with open(out / "index.csv", encoding="utf-8-sig", newline="") as sheet:
        (row,) = list(csv.DictReader(sheet))
    assert row["mode"] == "stage" and row["style"] == "boho"
    measured = meta["fidelity"]  # on the written result, by the run's own detector, segmenter and scene model
    assert set(measured["furniture_added"]) == {"share", "pieces", "expected"}
    assert 0 <= measured["openings_added"] <= 1 and 0 <= measured["architecture_edges_f1"] <= 1
    assert meta["quality"]["furnished"] in (0.0, 1.0)
    assert float(row["furniture_added"]) == measured["furniture_added"]["share"]
    assert float(row["architecture_edges_f1"]) == measured["architecture_edges_f1"]


def photo_pixels(photo, size: str) -> np.ndarray:
    """The decoded, upright photo's pixels at its own size, or at the 128 px working size."""
    decoded = imaging.decode(photo.read_bytes(), str(photo)).convert("RGB")
    if size == "working":
        decoded = imaging.resize_to(decoded, imaging.fit_size(*decoded.size, 128))
    return np.asarray(decoded)


def made_where(out, stem: str, map_kind: str, photo, size: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A result, the decoded photo at the result's size, and the result's map of what was made (its seam
    included) at that size, as arrays: (result, original, made: 0 the photo's, 255 made)."""
    original = photo_pixels(photo, size)
    result = np.asarray(Image.open(out / f"{stem}.png").convert("RGB"))
    assert result.shape == original.shape
    made = np.asarray(Image.open(out / f"{stem}.{map_kind}.png"), dtype=np.float32)
    return result, original, cv2.resize(made, (original.shape[1], original.shape[0]), interpolation=cv2.INTER_LINEAR)


def test_outside_what_was_made_every_pixel_is_the_photos(staged_run):
    """Wherever the region map (what was made, with its seam) is zero, the result's pixel is the decoded photo's,
    exactly; the right half the user's mask keeps and the window the segmentation finds are whole there; inside,
    the result is made."""
    _, out, photo, size = staged_run
    result, original, full = made_where(out, "living-room-01.boho", "region", photo, size)
    outside = full == 0
    assert 0.01 < 1 - outside.mean() < 0.9, "nothing, or everything, was made: the check is vacuous"
    assert np.array_equal(result[outside], original[outside])
    kept = original.shape[1] * 65 // 128  # the right half the user's mask keeps, past the edge's resampling
    assert outside[:, kept:].all()
    height, width = outside.shape
    x0, y0, x1, y1 = WINDOW  # its core: the segmentation's outline of the window is the model's, not the box's
    window = (
        slice(round((0.75 * y0 + 0.25 * y1) * height), round((0.25 * y0 + 0.75 * y1) * height)),
        slice(round((0.75 * x0 + 0.25 * x1) * width), round((0.25 * x0 + 0.75 * x1) * width)),
    )
    assert outside[window].all() and np.array_equal(result[window], original[window])
    inside = full >= 255
    assert np.abs(result[inside].astype(int) - original[inside]).mean() > 1


def test_a_rerun_finds_the_staging_done_and_a_restyle_of_the_style_is_another_result(staged_run, floor_bundle):
    _, out, photo, size = staged_run
    again = restyle(
        floor_bundle, photo.parent, out, *STAGE, "--mask-dir", photo.parent.parent / "masks", "--output-size", size
    )
    assert [r["status"] for r in again["images"]] == ["skipped"]
    if size == "working":
        staged = json.loads((out / "living-room-01.boho.json").read_text())["settings"]
        plain = restyle(floor_bundle, photo.parent, out / "plain", "--style", "boho", "--output-size", size)
        settings = json.loads((out / "plain" / "living-room-01.boho.json").read_text())["settings"]
        assert plain["images"][0]["status"] == "ok" and "mode" not in settings and staged["mode"] == "stage"


def test_a_furnished_photo_is_emptied_first_then_staged(floor_bundle, rooms, tmp_path):
    """With the table as it is, the tiny detector's couches make every photo a furnished one: the declutter's own
    pass empties it first (its own stage), the staging's region is found on the empty room, and the result is the
    photo's own pixel wherever neither took anything out or made anything; the photo's maps stay the photo's."""
    photo = rooms / "living-room-02-small.jpg"
    summary = restyle(floor_bundle, photo, tmp_path / "out", *STAGE)
    (record,) = summary["images"]
    assert record["status"] == "ok", record
    meta = json.loads((tmp_path / "out" / "living-room-02-small.boho.json").read_text())
    assert meta["declutter"]["removed"] and meta["declutter"]["remove"] == "movable"
    assert meta["stage"]["region_area"] > 0.05
    assert ["declutter", "region"] == [s for s in meta["timings"] if s in ("declutter", "region")]
    assert {"declutter", "region", "generate", "second pass"} <= set(summary["stages"])
    original = photo_pixels(photo, "working")
    result = np.asarray(Image.open(tmp_path / "out" / "living-room-02-small.boho.png").convert("RGB"))
    made = np.asarray(Image.open(tmp_path / "out" / "living-room-02-small.boho.region.png"))
    assert 0.01 < (made > 0).mean() and np.array_equal(result[made == 0], original[made == 0])
    preview = np.asarray(Image.open(tmp_path / "out" / "living-room-02-small.input.jpg").convert("RGB"), dtype=int)
    assert np.abs(preview - original).mean() < 3  # the input as the models saw it: the photo, not the empty room


def test_a_room_set_follows_its_anchor(floor_bundle, rooms, tmp_path):
    """Two photos of one room (the second mirrored and cropped), staged as a set: the second follows the anchor's
    result (its reference is the anchor's written file), each in its own region."""
    room = tmp_path / "in" / "flat-3"
    room.mkdir(parents=True)
    photo = Image.open(rooms / "living-room-01.jpg").convert("RGB")
    photo.save(room / "a.jpg")
    width, height = photo.size
    photo.transpose(Image.FLIP_LEFT_RIGHT).crop((width // 10, 0, width, height)).save(room / "b.jpg")
    with as_empty_rooms():
        summary = restyle(floor_bundle, tmp_path / "in", tmp_path / "out", *STAGE, "--sets-by", "parent")
    assert [r["status"] for r in summary["images"]] == ["ok", "ok"]
    entries = {
        json.loads(line)["key"]: json.loads(line)
        for line in (tmp_path / "out" / ".modomo" / "journal.jsonl").read_text().splitlines()
    }
    anchor, member = entries["flat-3/a.jpg"], entries["flat-3/b.jpg"]
    assert member["reference"]["digest"] == anchor["digest"] and member["mode"] == anchor["mode"] == "stage"
    meta = json.loads((tmp_path / "out" / "flat-3" / "b.boho.json").read_text())
    assert meta["reference"]["anchor"] and meta["stage"]["added_area"] > 0


def test_a_signed_staging_says_it_was_staged(floor_bundle, rooms, signing_chain, tmp_path):
    """Its content credentials: the edit action's description and modomo's assertion name the mode and the
    furniture asked for, beside the XMP's words."""
    from tests.outputs.test_signing import assertion, read

    signing = ("--sign-cert", signing_chain.cert, "--sign-key", signing_chain.key)
    with as_empty_rooms():
        restyle(floor_bundle, rooms / "living-room-02-small.jpg", tmp_path / "out", *STAGE, *signing)
    state, failures, manifest, _ = read((tmp_path / "out" / "living-room-02-small.boho.png").read_bytes(), "image/png")
    assert state == "Valid" and failures == ["signingCredential.untrusted"]
    edited = next(a for a in assertion(manifest, "c2pa.actions")["actions"] if a["action"] == "c2pa.edited")
    assert edited["description"] == "Virtually staged as boho with a generative model"
    own = assertion(manifest, "modomo.restyle")
    assert own["mode"] == "stage" and own["furniture"].startswith("a sofa, two armchairs") and "removed" not in own
