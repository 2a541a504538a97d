"""Keeping what the client wants: --preserve (detected objects) and --mask-dir (the user's own masks)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.errors import UsageError
from pipeline.inputs import imaging
from pipeline.stages.preserve import find_user_mask, resolve_labels, soften

PHOTO = "living-room-02-small.jpg"


def test_aliases_resolve_to_coco_labels():
    assert resolve_labels("sofa, Plant,bed") == {"couch", "potted plant", "bed"}
    assert resolve_labels("couch,settee") == {"couch"}
    with pytest.raises(UsageError, match="lamp"):
        resolve_labels("lamp")


def test_masks_match_by_relative_path_then_stem(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("L", (4, 4), 255).save(tmp_path / "sub" / "room.png")
    Image.new("L", (4, 4), 255).save(tmp_path / "other.webp")
    (tmp_path / "sub" / "room.txt").write_text("not a mask")
    assert find_user_mask(tmp_path, "sub/room.jpg") == tmp_path / "sub" / "room.png"
    assert find_user_mask(tmp_path, "deep/er/other.jpg") == tmp_path / "other.webp"
    assert find_user_mask(tmp_path, "missing.jpg") is None


def test_soften_grows_and_feathers_but_keeps_the_inside():
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    soft = soften(mask, grow=4, feather=6)
    assert (soft[mask] == 1.0).all()
    assert soft[18, 30] == 1.0  # grown
    assert 0.0 < soft[12, 30] < 1.0  # feathered edge
    assert soft[0, 0] == 0.0


def transform(*args):
    return CliRunner().invoke(app_module().app, ["transform", *map(str, args)])


def app_module():
    import modomo_cli.app as module

    return module


def model_view(rooms: Path, size: int = 256) -> np.ndarray:
    """The input as the pipeline sees it: decoded and resized to the working size."""
    image = imaging.decode((rooms / PHOTO).read_bytes(), PHOTO)
    return np.asarray(imaging.resize_to(image, imaging.fit_size(*image.size, size)), dtype=np.int16)


@pytest.fixture
def photo_and_masks(rooms, tmp_path):
    inputs, masks = tmp_path / "in", tmp_path / "masks"
    (inputs / "a").mkdir(parents=True)
    masks.mkdir()
    shutil.copy(rooms / PHOTO, inputs / "a" / "room.jpg")
    shutil.copy(rooms / PHOTO, inputs / "nomask.jpg")
    shutil.copy(rooms / PHOTO, inputs / "broken.jpg")
    mask = Image.new("L", (600, 450), 0)  # another size than the photo: scaled
    mask.paste(255, (150, 100, 450, 350))
    (masks / "a").mkdir()
    mask.save(masks / "a" / "room.png")
    (masks / "broken.png").write_text("not an image")
    return inputs, masks


def test_user_mask_keeps_the_original_pixels(tiny_bundle, rooms, tmp_path, photo_and_masks):
    inputs, masks = photo_and_masks
    out = tmp_path / "out"
    result = transform(
        inputs,
        "--models",
        tiny_bundle,
        "--out",
        out,
        "--size",
        "256",
        "--steps",
        "2",
        "--retries",
        "0",
        "--mask-dir",
        masks,
        "--json",
    )
    assert result.exit_code == 3, result.output  # only the image with the unreadable mask fails
    records = {r["key"]: r for r in json.loads(result.stdout)["images"]}
    assert records["broken.jpg"]["status"] == "failed" and "mask" in records["broken.jpg"]["error"]
    assert records["a/room.jpg"]["status"] == "ok" and records["nomask.jpg"]["status"] == "ok"

    view = model_view(rooms)
    made = np.asarray(Image.open(records["a/room.jpg"]["outputs"]["result"]), dtype=np.int16)
    h, w = view.shape[:2]
    inside = (
        slice(int(h * 100 / 450) + 3, int(h * 350 / 450) - 3),
        slice(int(w * 150 / 600) + 3, int(w * 450 / 600) - 3),
    )
    assert np.abs(made[inside] - view[inside]).max() <= 1  # kept: the original, within encoding tolerance
    outside = (slice(0, int(h * 100 / 450) - 12), slice(None))
    assert np.abs(made[outside] - view[outside]).mean() > 20  # the rest is generated
    meta = json.loads(Path(records["a/room.jpg"]["outputs"]["metadata"]).read_text())
    assert meta["preserve"]["mask"].endswith("room.png") and 0.2 < meta["preserve"]["kept_area"] < 0.5
    nomask = json.loads(Path(records["nomask.jpg"]["outputs"]["metadata"]).read_text())
    assert nomask["preserve"]["mask"] is None and nomask["preserve"]["kept_area"] == 0.0


def test_a_mask_under_nine_tenths_does_not_warn(tiny_bundle, rooms, tmp_path, photo_and_masks):
    """(A mask over the whole photo, or leaving a tenth or less: tests/stages/test_keep_share.py.)"""
    inputs, masks = photo_and_masks
    result = transform(
        inputs / "a",
        "--models",
        tiny_bundle,
        "--out",
        tmp_path / "out",
        "--size",
        "128",
        "--steps",
        "1",
        "--retries",
        "0",
        "--mask-dir",
        masks / "a",
    )
    assert result.exit_code == 0, result.output
    assert "keep mask" not in result.stderr


def boxed_masks(monkeypatch) -> None:
    """The tiny SAM2's random masks spread over the whole photo (their couches' keep mask covers it, and such a job
    fails: tests/stages/test_keep_share.py); here each is cut to its object's box, as a trained SAM2's stays."""
    from pipeline.stages.segment import Segmenter

    real = Segmenter._segment

    def boxed(self, frame):
        real(self, frame)
        for obj in frame.objects:
            x0, y0, x1, y1 = (round(v) for v in obj.box)
            inside = np.zeros_like(obj.mask)
            inside[y0 : y1 + 1, x0 : x1 + 1] = True
            obj.mask = obj.mask & inside

    monkeypatch.setattr(Segmenter, "_segment", boxed)


def test_preserve_keeps_detected_objects(tiny_bundle, rooms, tmp_path, monkeypatch):
    boxed_masks(monkeypatch)
    out = tmp_path / "out"
    result = transform(
        rooms / PHOTO,
        "--models",
        tiny_bundle,
        "--out",
        out,
        "--size",
        "256",
        "--steps",
        "2",
        "--retries",
        "0",
        "--preserve",
        "sofa",
        "--json",
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["images"][0]
    meta = json.loads(Path(record["outputs"]["metadata"]).read_text())
    kept = [o for o in meta["objects"] if o["kept"]]
    assert kept and all(o["label"] == "couch" for o in kept)  # the tiny detector is biased to couches
    assert meta["preserve"]["labels"] == ["couch"] and 0 < meta["preserve"]["kept_area"] < 0.5
    assert "compose" in record["timings"] and "preserve" in record["timings"]


def test_unknown_preserve_name_is_a_usage_error(tiny_bundle, rooms, tmp_path):
    result = transform(rooms / PHOTO, "--models", tiny_bundle, "--out", tmp_path, "--preserve", "lamp")
    assert result.exit_code == 2 and "lamp" in result.stderr


def test_latent_hold_keeps_the_region_and_blends_its_surroundings(tiny_stack, rooms):
    """Before any pixel compose: the kept region's latents end as the original's, and the region just
    outside the mask differs from a run without the hold (the generated room continues the kept one)."""
    import torch

    from pipeline.stages.generate import GenerateSettings, Generator
    from pipeline.stages.sampling import Sampler
    from tests.stages.test_sampling import SETTINGS, controls, make_frames

    mask = np.zeros((96, 128), bool)
    mask[32:72, 40:96] = True
    keep = soften(mask, grow=0, feather=0).astype(np.float32)
    frame = make_frames(rooms, 1)[0]
    sampler = Sampler(tiny_stack.pipe, None, tiny_stack.device)
    latents = sampler(
        SETTINGS,
        controls(SETTINGS, [frame]),
        [torch.Generator("cpu").manual_seed(5)],
        96,
        128,
        output_type="latent",
        keep=[keep],
        originals=[frame.image],
    )
    init, masks = sampler.held_region([frame.image], [keep], 96, 128, latents.dtype)
    inside = masks[0, 0] == 1
    assert inside.sum() >= 20
    torch.testing.assert_close(latents[0][:, inside], init[0][:, inside], rtol=0, atol=1e-4)

    held, free = make_frames(rooms, 1)[0], make_frames(rooms, 1)[0]
    held.keep = keep
    generate = Generator(tiny_stack.pipe, GenerateSettings(**SETTINGS.__dict__), tiny_stack.device)
    generate([held])
    generate([free])
    ring = np.zeros_like(mask)
    ring[24:80, 32:104] = True
    ring &= ~mask
    difference = np.abs(pixels_of(held.result) - pixels_of(free.result))[ring]
    assert difference.mean() > 2


def pixels_of(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)
