"""Quality: the depth part, `modomo score`, and retries below the threshold in transform."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.stages.validate import depth_agreement, quality, structure


def ramp(width: int = 96, height: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return y / height + 0.3 * np.sin(x / 9.0)


def test_depth_agreement_orders_geometry():
    depth = ramp()
    assert depth_agreement(depth, depth) == pytest.approx(1.0)
    assert depth_agreement(depth, depth * 3 + 5) == pytest.approx(1.0)  # relative depth: scale-free
    assert depth_agreement(depth, depth[::-1]) == 0.0  # the floor where the ceiling was
    assert depth_agreement(depth, np.full_like(depth, 2.0)) == 0.0
    assert 0.0 <= depth_agreement(depth, np.fliplr(depth)) < 0.9


def recoloured(image: Image.Image) -> Image.Image:
    """The same room in other colours: the layout kept, every pixel changed."""
    return ImageOps.colorize(image.convert("L"), black=(40, 20, 70), white=(255, 235, 190))


def test_depth_part_joins_the_score(rooms):
    before = Image.open(rooms / "living-room-02-small.jpg").convert("RGB")
    after = recoloured(before)
    depth = ramp(*before.size)
    same, parts = quality(before, after, depth, depth)
    assert parts["sanity"] == 1.0 and parts["change"] == 1.0 and parts["depth"] == 1.0
    assert parts["structure"] > 0.9
    assert same == pytest.approx((parts["structure"] + 1.0) / 2, abs=1e-3)
    upside_down, parts = quality(before, after, depth, depth[::-1])
    assert parts["depth"] == 0.0 and upside_down == pytest.approx(parts["structure"] / 2, abs=1e-3)


def test_a_crop_keeps_more_layout_than_a_shift_or_a_mirror(rooms):
    before = Image.open(rooms / "living-room-01.jpg").convert("RGB")
    before.thumbnail((512, 512))
    w, h = before.size
    cropped = before.crop((w // 20, h // 20, w - w // 20, h - h // 20)).resize(before.size)
    shifted = Image.fromarray(np.roll(np.asarray(before), w * 15 // 100, axis=1))
    mirrored = ImageOps.mirror(before)
    assert structure(before, cropped) > structure(before, shifted)
    assert structure(before, cropped) > structure(before, mirrored)


def score_cli(*args) -> dict:
    result = CliRunner().invoke(app, ["score", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_score_command_ranks_the_real_pair(rooms, tmp_path):
    original = rooms / "living-room-01.jpg"
    pair = score_cli(original, rooms / "living-room-01.restyled.png")
    assert set(pair) >= {"score", "parts"} and set(pair["parts"]) == {"sanity", "change", "structure"}
    assert set(pair["fidelity"]) == {"edges_f1"} and 0.2 < pair["fidelity"]["edges_f1"] < 0.5  # no depth model
    assert score_cli(original, original)["fidelity"]["edges_f1"] == 1.0
    with Image.open(original) as image:
        ImageOps.mirror(image).save(tmp_path / "mirrored.jpg")
        Image.new("RGB", image.size, (128, 120, 110)).save(tmp_path / "flat.png")
        rng = np.random.default_rng(1)
        Image.fromarray(rng.integers(0, 255, (image.height // 4, image.width // 4, 3), dtype=np.uint8)).save(
            tmp_path / "noise.png"
        )
    for other in (
        rooms / "living-room-02-small.jpg",
        tmp_path / "mirrored.jpg",
        tmp_path / "flat.png",
        tmp_path / "noise.png",
    ):
        assert pair["score"] > score_cli(original, other)["score"], other.name


def test_score_with_a_depth_model(rooms, tiny_bundle):
    """The tiny depth model is random (its maps carry no geometry), so only the part's presence and range."""
    data = score_cli(rooms / "living-room-02-small.jpg", rooms / "living-room-01.jpg", "--models", tiny_bundle)
    assert set(data["parts"]) == {"sanity", "change", "structure", "depth"} and 0.0 <= data["parts"]["depth"] <= 1.0
    layout = (data["parts"]["structure"] + data["parts"]["depth"]) / 2
    assert data["score"] == pytest.approx(data["parts"]["sanity"] * data["parts"]["change"] * layout, abs=1e-3)


def test_score_without_the_presets_depth_weights_fails_at_once_in_one_line(rooms, monkeypatch, network_guard):
    """Online or not, `score --models sd15` on a machine without the depth model says so from the inventory in
    one line before loading anything: no hub lookup, no retries (a download is `modomo models download`'s job)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    tried = len(network_guard)
    photo = rooms / "living-room-01.jpg"
    result = CliRunner().invoke(app, ["score", str(photo), str(photo), "--models", "sd15"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    said = " ".join(result.stderr.split())  # one message, however the terminal wraps it
    assert said.count("error:") == 1 and "model weights not found for sd15: depth (Intel/dpt-large)" in said
    assert "modomo models download sd15" in said
    assert len(network_guard) == tried  # nothing was looked up on the network


def test_score_of_a_missing_file_is_one_line(rooms, tmp_path):
    result = CliRunner().invoke(app, ["score", str(rooms / "living-room-01.jpg"), str(tmp_path / "nope.png")])
    assert result.exit_code == 2 and "nope.png" in result.stderr and "Traceback" not in result.output


def run(tiny_bundle, rooms, tmp_path, *extra):
    inputs = tmp_path / "in"
    inputs.mkdir(exist_ok=True)
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(rooms / "living-room-02-small.jpg", inputs / name)
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(inputs),
            "--models",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "out"),
            "--size",
            "128",
            "--steps",
            "1",
            "--json",
            "--overwrite",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_results_below_the_threshold_are_retried_and_the_best_kept(tiny_bundle, rooms, tmp_path):
    summary, stderr = run(tiny_bundle, rooms, tmp_path, "--min-quality", "0.99", "--retries", "2")
    for record in summary["images"]:
        assert record["attempts"] == 3 and record["passed"] is False
        meta = json.loads(open(record["outputs"]["metadata"]).read())
        attempts = meta["quality"]["attempts"]
        assert len(attempts) == 3 and len({a["seed"] for a in attempts}) == 3
        best = max(attempts, key=lambda a: a["score"])
        assert meta["quality"]["score"] == best["score"] and meta["seed"] == best["seed"] == record["seed"]
        assert meta["quality"]["threshold"] == 0.99
    assert summary["quality"]["retries"] == 4 and summary["quality"]["success_rate"] == 0.0
    assert "retries" in stderr and "at or above 0.99" in stderr


def test_no_retry_when_the_threshold_is_met(tiny_bundle, rooms, tmp_path):
    summary, _ = run(tiny_bundle, rooms, tmp_path, "--min-quality", "0", "--retries", "2")
    assert [r["attempts"] for r in summary["images"]] == [1, 1]
    assert summary["quality"]["success_rate"] == 1.0 and summary["quality"]["retries"] == 0
    assert summary["quality"]["mean"] == pytest.approx(np.mean([r["quality"] for r in summary["images"]]))


def test_retries_count_in_the_time(tiny_bundle, rooms, tmp_path, monkeypatch):
    """Each attempt's generation is charged to its image. Timed on a clock that moves one second per image the
    generator renders (and stands still otherwise), so the figures are counts, whatever the machine's load."""
    from types import SimpleNamespace

    from pipeline.stages import timing
    from pipeline.stages.generate import Generator

    clock = [0.0]
    real = Generator.__call__

    def rendering(self, frames):
        clock[0] += sum(frame.ok for frame in frames)
        return real(self, frames)

    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(Generator, "__call__", rendering)
    once, _ = run(tiny_bundle, rooms, tmp_path, "--min-quality", "0.99", "--retries", "0")
    thrice, _ = run(tiny_bundle, rooms, tmp_path, "--min-quality", "0.99", "--retries", "2")
    assert [r["attempts"] for r in once["images"]] == [1, 1] and [r["attempts"] for r in thrice["images"]] == [3, 3]
    assert [r["timings"]["generate"] for r in once["images"]] == [1.0, 1.0]
    assert [r["timings"]["generate"] for r in thrice["images"]] == [3.0, 3.0]  # three generations, not one


def test_style_files_set_their_own_threshold(tmp_path):
    from styles import STYLE_DIR, StyleError, load_style

    text = (STYLE_DIR / "boho.toml").read_text()
    (tmp_path / "strict.toml").write_text(text.replace("min_quality = 0.2", "min_quality = 0.6"))
    assert load_style(path=tmp_path / "strict.toml").min_quality == 0.6
    (tmp_path / "bad.toml").write_text(text.replace("min_quality = 0.2", "min_quality = 3"))
    with pytest.raises(StyleError, match="min_quality"):
        load_style(path=tmp_path / "bad.toml")
    assert load_style("boho").min_quality == 0.2
