"""Several styles in one run: preprocessing once per photo, one record per input and style."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.stages.depth import DepthEstimator
from pipeline.stages.detect import Detector
from pipeline.stages.segment import Segmenter


def transform(*args):
    return CliRunner().invoke(app, ["transform", *map(str, args)])


@pytest.fixture
def inputs(rooms, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(rooms / "living-room-02-small.jpg", folder / name)
    return folder


def count_calls(monkeypatch, cls) -> list[int]:
    """Frames handed to each call of a stage class."""
    calls: list[int] = []
    real = cls.__call__

    def spy(self, frames):
        calls.append(len(frames))
        return real(self, frames)

    monkeypatch.setattr(cls, "__call__", spy)
    return calls


def test_three_styles_share_preprocessing(tiny_bundle, inputs, tmp_path, monkeypatch):
    calls = {cls.__name__: count_calls(monkeypatch, cls) for cls in (Detector, Segmenter, DepthEstimator)}
    out = tmp_path / "out"
    result = transform(
        inputs,
        "--style",
        "boho,modern,scandinavian",
        "--models",
        tiny_bundle,
        "--out",
        out,
        "--size",
        "128",
        "--steps",
        "1",
        "--retries",
        "0",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert sum(calls["Detector"]) == 2 and sum(calls["DepthEstimator"]) == 2  # once per photo, not per style
    summary = json.loads(result.stdout)
    pairs = [(r["key"], r["style"]) for r in summary["images"]]
    assert pairs == [(k, s) for k in ("a.jpg", "b.jpg") for s in ("boho", "modern", "scandinavian")]
    for key, style in pairs:
        stem = key.removesuffix(".jpg")
        assert (out / f"{stem}.{style}.png").is_file() and (out / f"{stem}.{style}.json").is_file()
        meta = json.loads((out / f"{stem}.{style}.json").read_text())
        assert meta["style"] == style and meta["settings"]["style"] == style
    assert summary["styles"]["names"] == ["boho", "modern", "scandinavian"]
    assert summary["styles"]["shared_seconds_saved"] > 0
    assert set(summary["settings"]["by_style"]) == {"boho", "modern", "scandinavian"}
    assert sum(s["share"] for s in summary["stages"].values()) == pytest.approx(1.0)
    assert "saved against separate runs" in result.stderr

    again = transform(
        inputs,
        "--style",
        "boho,minimalist",
        "--models",
        tiny_bundle,
        "--out",
        out,
        "--size",
        "128",
        "--steps",
        "1",
        "--retries",
        "0",
        "--json",
    )
    statuses = {(r["key"], r["style"]): r["status"] for r in json.loads(again.stdout)["images"]}
    assert statuses == {
        ("a.jpg", "boho"): "skipped",
        ("a.jpg", "minimalist"): "ok",
        ("b.jpg", "boho"): "skipped",
        ("b.jpg", "minimalist"): "ok",
    }


def test_a_bad_photo_fails_once_per_style(tiny_bundle, inputs, tmp_path):
    (inputs / "bad.jpg").write_bytes(b"")
    result = transform(
        inputs,
        "--style",
        "boho,modern",
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
    assert result.exit_code == 3
    bad = [r for r in json.loads(result.stdout)["images"] if r["key"] == "bad.jpg"]
    assert [(r["style"], r["status"]) for r in bad] == [("boho", "failed"), ("modern", "failed")]


def test_a_style_named_twice_is_a_usage_error(tiny_bundle, inputs, tmp_path):
    result = transform(inputs, "--style", "boho,boho", "--models", tiny_bundle, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "twice" in result.stderr


@pytest.mark.fresh_models  # what it checks is which models load
def test_a_control_no_style_uses_is_not_loaded(tiny_bundle, inputs, tmp_path, monkeypatch):
    """A style file that leaves canny out steers with depth alone: its run loads only the depth ControlNet and
    runs it, and its results are its own (not those of depth and canny)."""
    from diffusers import ControlNetModel

    loaded: list[str] = []
    real = ControlNetModel.from_pretrained.__func__

    def spy(cls, source, *args, **kwargs):
        loaded.append(str(source).rsplit("/", 1)[-1])
        return real(cls, source, *args, **kwargs)

    monkeypatch.setattr(ControlNetModel, "from_pretrained", classmethod(spy))
    (tmp_path / "deep.toml").write_text('prompt = "a calm {room}"\n[controls.depth]\nscale = 0.9\n')
    args = ["--models", tiny_bundle, "--size", "128", "--steps", "1", "--retries", "0", "--format", "png"]
    deep = transform(inputs / "a.jpg", "--style-file", tmp_path / "deep.toml", "--out", tmp_path / "o1", *args)
    assert deep.exit_code == 0, deep.output
    assert loaded == ["controlnet-depth"]
    record = json.loads((tmp_path / "o1" / "a.deep.json").read_text())
    assert record["settings"]["controls"] == ["depth"] and record["settings"]["controlnet_conditioning_scale"] == [0.9]
    loaded.clear()
    (tmp_path / "both.toml").write_text((tmp_path / "deep.toml").read_text() + "[controls.canny]\nscale = 0.9\n")
    both = transform(inputs / "a.jpg", "--style-file", tmp_path / "both.toml", "--out", tmp_path / "o2", *args)
    assert both.exit_code == 0, both.output
    assert loaded == ["controlnet-depth", "controlnet-canny"]
    assert (tmp_path / "o1" / "a.deep.png").read_bytes() != (tmp_path / "o2" / "a.both.png").read_bytes()
