"""`modomo transform --mode declutter` end to end on the tiny models: a real room photo emptied, the photo's own
pixels everywhere outside what is taken out (at its own resolution too), results named and resumed as `empty`.

Tiny random models find random things: the tests check what holds whatever they find (the mask map and the result
agree pixel for pixel), and that they found something, so the checks are not vacuous."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from tests.conftest import restyle
from tests.run.test_stage_run import made_where


@pytest.fixture(scope="module", params=["original", "working"])
def emptied(request, tiny_bundle, rooms, tmp_path_factory):
    """living-room-01 decluttered at its own resolution (and at the working size), the left half kept by a user
    mask, the control maps saved: (summary, output folder, photo, output size)."""
    root = tmp_path_factory.mktemp("declutter")
    photo = root / "in" / "living-room-01.jpg"
    photo.parent.mkdir()
    shutil.copy(rooms / "living-room-01.jpg", photo)
    masks = root / "masks"  # the left half kept (white): random models would take out nearly all the rest
    masks.mkdir()
    keep = np.zeros((96, 128), np.uint8)
    keep[:, :64] = 255
    Image.fromarray(keep).save(masks / "living-room-01.png")
    out = root / "out"
    summary = restyle(tiny_bundle, photo.parent, out, *DECLUTTER, "--mask-dir", masks, "--output-size", request.param)
    return summary, out, photo, request.param


DECLUTTER = ("--mode", "declutter", "--save-controls", "--room", "living room")


def test_the_result_is_named_empty_and_says_what_it_is(emptied):
    summary, out, *_ = emptied
    (record,) = summary["images"]
    assert record["status"] == "ok", record
    assert record["style"] == "empty"
    assert (out / "living-room-01.empty.png").is_file()
    meta = json.loads((out / "living-room-01.empty.json").read_text())
    assert meta["settings"]["mode"] == "declutter" and meta["settings"]["remove"] == "movable"
    assert meta["settings"]["controls"][-1] == "inpaint"
    assert meta["declutter"]["remove"] == "movable"
    assert set(meta["declutter"]) == {"remove", "removed", "removed_area"}
    xmp = (out / "living-room-01.empty.png").read_bytes()
    assert b"decluttered" in xmp and b"restyled as" not in xmp


def test_outside_the_mask_every_pixel_is_the_photos(emptied):
    """Wherever the removal map (grown and feathered) is zero, the result's pixel is the decoded, upright photo's,
    exactly (at the photo's own resolution, and at the working size: the photo as the models saw it); inside,
    the result is made."""
    _, out, photo, size = emptied
    result, original, full = made_where(out, "living-room-01.empty", "removal", photo, size)
    outside = full == 0
    assert 0.02 < 1 - outside.mean() < 0.98, "the tiny models took out nothing, or everything: the check is vacuous"
    assert np.array_equal(result[outside], original[outside])
    kept = original.shape[1] * 63 // 128  # the kept half, short of the pixels the working size's edge resamples
    assert outside[:, :kept].all()  # what the keep mask holds (--mask-dir) is never taken out, nor seamed
    inside = full >= 255
    assert np.abs(result[inside].astype(int) - original[inside]).mean() > 1


def test_a_rerun_finds_the_declutter_done(emptied, tiny_bundle):
    _, out, photo, size = emptied
    masks = photo.parent.parent / "masks"
    again = restyle(tiny_bundle, photo.parent, out, *DECLUTTER, "--mask-dir", masks, "--output-size", size)
    assert [r["status"] for r in again["images"]] == ["skipped"]


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--mode", "declutter", "--style", "boho"], "--style with --mode declutter"),
        (["--remove", "tv", "--mode", "restyle"], "--remove takes things out"),
        (["--mode", "tidy"], "--mode 'tidy': choose one of restyle, declutter"),
        (["--remove", "unicorn"], "unicorn"),
        (["--mode", "stage", "--remove", "tv"], "--remove takes things out of the room: it goes with --mode declutter"),
        (["--mode", "stage", "--style", "boho,boho"], "style 'boho' is named twice"),
        (
            ["--mode", "declutter", "--steps", "1"],
            "--steps 1: the declutter's pass at strength 0.6 would run int(1 x "
            "0.6) = 0 denoising steps; give --steps 2 or more",
        ),
        (["--mode", "stage", "--steps", "1"], "the staging's second pass at strength 0.5 would run"),
    ],
)
def test_what_a_mode_cannot_take_is_one_line(tiny_bundle, rooms, tmp_path, extra, words):
    result = CliRunner().invoke(
        app,
        ["transform", str(rooms / "living-room-02-small.jpg"), "--models", str(tiny_bundle), "--out",
         str(tmp_path / "out"), *extra],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert words in message and len(message.splitlines()) == 1, message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra", [["--fast"], ["--preserve", "window,door,sofa"]], ids=["fast", "preserve-parts"])
def test_a_declutter_takes_fast_mode_and_kept_parts(tiny_bundle, rooms, tmp_path, extra):
    """--fast runs the pass few-step; --preserve names parts of the room and objects alike."""
    summary = restyle(tiny_bundle, rooms / "living-room-02-small.jpg", tmp_path / "out", "--mode", "declutter", *extra)
    (record,) = summary["images"]
    assert record["status"] == "ok", record
    meta = json.loads((tmp_path / "out" / "living-room-02-small.empty.json").read_text())
    if extra == ["--fast"]:
        assert meta["settings"]["fast"]["recipe"] == "lcm" and meta["settings"]["mode"] == "declutter"
    else:
        assert meta["settings"]["preserve"] == ["couch", "door", "window"]


def test_at_a_larger_size_only_what_was_made_is_enlarged(monkeypatch):
    """A declutter at the photo's own size: the enlarging (super-resolution, Lanczos) sees only the box around
    what was made; the rest is the full-size photo itself."""
    from pipeline.frames import Frame, Item
    from pipeline.stages.upscale import Upscaler

    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (384, 512, 3), dtype=np.uint8))
    frame = Frame(Item("a.jpg", None, "."), seed=0, image=photo.resize((128, 96)))
    frame.removal = np.zeros((96, 128), bool)
    frame.removal[40:50, 80:90] = True
    frame.result = Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    frame.original, frame.target_size = photo, photo.size
    seen = []
    real = Upscaler.resize
    monkeypatch.setattr(
        Upscaler, "resize", lambda self, image, size: seen.append(image.size) or real(self, image, size)
    )
    Upscaler()([frame])
    assert seen and all(w < 64 and h < 64 for w, h in seen), seen  # the box around it, not the whole result
    result, original = np.asarray(frame.result), np.asarray(photo)
    assert result.shape == original.shape
    assert np.array_equal(result[:56], original[:56]) and np.array_equal(result[:, :200], original[:, :200])
    assert np.abs(result[160:200, 320:360].astype(int) - original[160:200, 320:360]).mean() > 10
