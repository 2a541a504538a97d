"""Keeping the room itself: the lines control's map, --fidelity, and --preserve of parts of the room (windows,
doors, ...) found by the scene segmentation stage, end to end on the tiny bundle (random SegFormer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from pipeline.errors import UsageError
from pipeline.inputs import imaging
from pipeline.stages.architecture import SceneSegmenter
from pipeline.stages.edges import line_segments, lines
from pipeline.stages.parts import part_region
from pipeline.stages.preserve import resolve_labels
from pipeline.stages.settings import FIDELITY_RULES, with_fidelity

PHOTO = "living-room-01.jpg"  # the tiny bundle's random SegFormer marks about 6 % of it as windowpane at 256 px


def transform(*args):
    from modomo_cli.app import app

    return CliRunner().invoke(app, ["transform", *map(str, args)])


def synthetic_room() -> tuple[Image.Image, np.ndarray, list[tuple[int, int, int, int]]]:
    """A 256 x 192 room drawing: a window, a door and the floor line on a smooth wall, plus a short tick and a
    circle (neither is a long straight line); the image, a mask of the long straight edges, the drawn lines."""
    size = (256, 192)
    ramp = np.linspace(150, 190, size[0], dtype=np.float32)[None, :, None] * np.ones((size[1], 1, 3), np.float32)
    image = Image.fromarray(ramp.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    known = [
        (30, 40, 110, 40),
        (30, 100, 110, 100),
        (30, 40, 30, 100),
        (110, 40, 110, 100),  # window
        (160, 60, 160, 150),
        (210, 60, 210, 150),
        (160, 60, 210, 60),  # door
        (0, 150, 255, 150),
    ]  # floor line
    for x0, y0, x1, y1 in known:
        draw.line((x0, y0, x1, y1), fill=(40, 40, 40), width=2)
    draw.line((60, 170, 64, 170), fill=(40, 40, 40), width=2)  # a 4 px tick
    draw.ellipse((200, 10, 240, 50), outline=(40, 40, 40), width=2)
    mask = Image.new("L", size, 0)
    for segment in known:
        ImageDraw.Draw(mask).line(segment, fill=255, width=2)
    return image, np.asarray(mask) > 0, known


def near(mask: np.ndarray, pixels: int) -> np.ndarray:
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * pixels + 1,) * 2, np.uint8)) > 0


def test_the_lines_map_has_segments_where_the_rooms_straight_edges_are():
    image, edges, known = synthetic_room()
    drawn = np.asarray(lines(image, 0.08))
    assert drawn.shape == (192, 256, 3) and (drawn[..., 0] == drawn[..., 2]).all()  # white on black, RGB
    white = drawn[..., 0] > 127
    assert white.sum() > 400
    assert white[near(edges, 3)].sum() / white.sum() > 0.97  # precision: every segment lies on a known edge
    for x0, y0, x1, y1 in known:  # recall: every known edge is covered along most of its length
        probe = Image.new("L", (256, 192), 0)
        ImageDraw.Draw(probe).line((x0, y0, x1, y1), fill=255, width=1)
        on_line = np.asarray(probe) > 0
        assert near(white, 3)[on_line].mean() > 0.8, (x0, y0, x1, y1)
    assert not white[180:, :].any()  # the short tick is dropped by the minimum length
    assert not white[5:55, 195:245].any()  # so is the circle: LSD finds only short pieces of it


def test_the_minimum_length_is_a_share_of_the_long_side():
    image, _, _ = synthetic_room()
    lengths = [np.hypot(x1 - x0, y1 - y0) for x0, y0, x1, y1 in line_segments(image, 0.0)]
    assert min(lengths) < 8  # unfiltered, LSD reports the tick and the circle's pieces
    kept = line_segments(image, 0.2)
    assert len(kept) and all(np.hypot(x1 - x0, y1 - y0) >= 0.2 * 256 for x0, y0, x1, y1 in kept)
    assert len(kept) < len(line_segments(image, 0.08))


def test_fidelity_levels_scale_the_weights_and_move_the_window_end():
    assert with_fidelity(0.6, 0.0, 0.8, "balanced") == (0.6, 0.0, 0.8)
    assert with_fidelity(0.6, 0.0, 0.8, "strict") == (0.75, 0.0, 0.9)  # half of what is left of the run
    assert with_fidelity(0.6, 0.2, 0.8, "loose") == (0.45, 0.2, 0.65)  # back a quarter of its window
    assert with_fidelity(1.8, 0.0, 1.0, "strict") == (2.0, 0.0, 1.0)  # capped at ControlNet's usual 2
    assert set(FIDELITY_RULES) == {"loose", "balanced", "strict"}


def test_fidelity_is_in_the_settings_hash_and_a_style_may_set_it(tmp_path):
    from pipeline.config import config_for
    from pipeline.options import TransformOptions
    from styles import STYLE_DIR, load_style

    modern = load_style("modern")

    def config(**kw):
        return config_for(TransformOptions(inputs=["x.jpg"], style="modern", **kw))

    hashes = {level: config(fidelity=level).result_hash(modern, {}) for level in ("loose", "balanced", "strict")}
    assert len(set(hashes.values())) == 3
    assert config().result_hash(modern, {}) == hashes["balanced"]  # the default is balanced
    strict = config(fidelity="strict").generate_settings()
    assert strict.controls == ("depth", "canny", "lines")
    assert strict.controlnet_conditioning_scale == (1.25, 0.75, 0.75)
    assert config(fidelity="strict").settings_json()["fidelity"] == "strict"
    assert "fidelity" not in config().settings_json()
    text = (STYLE_DIR / "modern.toml").read_text().replace("min_quality = 0.2", 'min_quality = 0.2\nfidelity = "loose"')
    (tmp_path / "modern.toml").write_text(text)
    own = load_style(path=tmp_path / "modern.toml")
    assert config().fidelity_of(own) == "loose" and config(fidelity="strict").fidelity_of(own) == "strict"


def test_architecture_expands_and_mixes_with_detected_objects():
    assert resolve_labels("architecture, sofa") == {"window", "door", "fireplace", "stairs", "couch"}
    assert resolve_labels("Windows,built-ins,radiators") == {"window", "built-in cabinet", "radiator"}
    with pytest.raises(UsageError) as info:
        resolve_labels("lamp")
    message = str(info.value)
    assert "'lamp'" in message and "window" in message and "couch" in message and "\n" not in message


def scene_of(stack, image: Image.Image) -> np.ndarray:
    model, processor = stack.segmenter
    return SceneSegmenter(model, processor, stack.device, torch.float32).segment([image])[0]


def model_view(rooms: Path) -> Image.Image:
    image = imaging.decode((rooms / PHOTO).read_bytes(), PHOTO)
    return imaging.resize_to(image, imaging.fit_size(*image.size, 256))


def test_preserve_window_keeps_the_segmented_windows_pixels_exactly(tiny_bundle, tiny_stack, rooms, tmp_path):
    result = transform(
        rooms / PHOTO,
        "--models",
        tiny_bundle,
        "--out",
        tmp_path / "out",
        "--size",
        "256",
        "--steps",
        "2",
        "--retries",
        "0",
        "--format",
        "png",
        "--preserve",
        "window",
        "--json",
    )
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)["images"]
    view = model_view(rooms)
    window = part_region(scene_of(tiny_stack, view), ["window"])
    assert 0.02 < window.mean() < 0.3  # the random segmentation marks a region
    made = np.asarray(Image.open(record["outputs"]["result"]).convert("RGB"), dtype=np.int16)
    original = np.asarray(view, dtype=np.int16)
    assert made.shape == original.shape
    assert (made[window] == original[window]).all()  # kept exactly
    assert np.abs(made[~near(window, 16)] - original[~near(window, 16)]).mean() > 20  # the rest is restyled
    meta = json.loads(Path(record["outputs"]["metadata"]).read_text())
    assert meta["preserve"]["labels"] == ["window"] and meta["preserve"]["kept_area"] >= window.mean()
    assert meta["fidelity"]["kept_delta_e"]["max"] == 0.0 and 0 <= meta["fidelity"]["edges_f1"] <= 1
    assert "scene" in record["timings"] and "preserve" in record["timings"]
    import csv

    [row] = list(csv.DictReader((tmp_path / "out" / "index.csv").open()))
    assert float(row["kept_delta_e_max"]) == 0.0 and float(row["edges_f1"]) == meta["fidelity"]["edges_f1"]
    assert float(row["depth_rmse"]) == meta["fidelity"]["depth_rmse"]


def test_a_manifest_row_may_keep_parts_of_its_room(tiny_bundle, rooms, tmp_path):
    shutil.copy(rooms / PHOTO, tmp_path / "a.jpg")
    shutil.copy(rooms / PHOTO, tmp_path / "b.jpg")
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("input,preserve\na.jpg,architecture\nb.jpg,\n")
    result = transform(
        "--manifest",
        manifest,
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
        "--json",
    )
    assert result.exit_code == 0, result.output
    records = {r["key"]: r for r in json.loads(result.stdout)["images"]}
    kept = json.loads(Path(records["a.jpg"]["outputs"]["metadata"]).read_text())["preserve"]
    assert kept["labels"] == ["door", "fireplace", "stairs", "window"] and kept["kept_area"] > 0
    free = json.loads(Path(records["b.jpg"]["outputs"]["metadata"]).read_text())["preserve"]
    assert free["kept_area"] == 0.0


def bundle_without(tiny_bundle: Path, tmp_path: Path, part: str) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy, ignore=lambda folder, names: [part] if Path(folder) == tiny_bundle else [])
    assert not (copy / part).exists()
    return copy


def test_parts_to_keep_without_the_segmentation_model_is_one_line_before_work(tiny_bundle, rooms, tmp_path):
    bundle = bundle_without(tiny_bundle, tmp_path, "segmentation")
    result = transform(rooms / PHOTO, "--models", bundle, "--out", tmp_path / "out", "--preserve", "sofa,window")
    lines_out = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines_out) == 1, result.output
    assert "window" in lines_out[0] and "segmentation" in lines_out[0] and "modomo models download" in lines_out[0]
    assert not (tmp_path / "out").exists()
    ok = transform(
        rooms / PHOTO,
        "--models",
        bundle,
        "--out",
        tmp_path / "out2",
        "--size",
        "128",
        "--steps",
        "1",
        "--retries",
        "0",
        "--preserve",
        "sofa",
    )
    # Detected objects need no segmentation: the run goes ahead (the tiny SAM2's couch masks cover the photo, so
    # its job then fails for want of anything to restyle: tests/stages/test_keep_share.py).
    assert ok.exit_code == 3 and "nothing left to restyle" in ok.output, ok.output


def test_a_style_with_lines_runs_without_them_and_says_so_when_the_net_is_missing(tiny_bundle, rooms, tmp_path):
    bundle = bundle_without(tiny_bundle, tmp_path, "controlnet-lines")
    result = transform(
        rooms / PHOTO,
        "--models",
        bundle,
        "--out",
        tmp_path / "out",
        "--size",
        "128",
        "--steps",
        "1",
        "--retries",
        "0",
        "--style",
        "modern",
        "--json",
    )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "lines" in warnings[0] and "modern" in warnings[0]
    [record] = json.loads(result.stdout)["images"]
    settings = json.loads(Path(record["outputs"]["metadata"]).read_text())["settings"]
    assert "controls" not in settings and len(settings["controlnet_conditioning_scale"]) == 2


def test_a_style_with_lines_saves_and_uses_the_lines_map(tiny_bundle, rooms, tmp_path):
    result = transform(
        rooms / PHOTO,
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
        "--style",
        "modern",
        "--save-controls",
        "--json",
    )
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)["images"]
    settings = json.loads(Path(record["outputs"]["metadata"]).read_text())["settings"]
    assert settings["controls"] == ["depth", "canny", "lines"] and settings["lines_min_length"] == 0.04
    saved = [p for p in (tmp_path / "out").rglob("*.lines.png")]
    assert len(saved) == 1
    white = np.asarray(Image.open(saved[0]).convert("L")) > 127
    assert 0 < white.mean() < 0.3
