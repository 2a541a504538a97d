"""The optional style-adherence part: CLIP from a bundle's clip/ folder, off when the preset has none."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.models.tiny import build_clip
from tests.conftest import restyle


@pytest.fixture(scope="module")
def bundle_with_clip(tiny_bundle, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip-bundle") / "bundle"
    shutil.copytree(tiny_bundle, folder)
    build_clip(folder / "clip")
    return folder


def run(bundle, rooms, out, *extra):
    return restyle(bundle, rooms / "living-room-02-small.jpg", out, *extra, steps=1)


def test_style_part_when_clip_is_present(bundle_with_clip, rooms, tmp_path):
    summary = run(bundle_with_clip, rooms, tmp_path / "out", "--style", "boho,modern")
    for record in summary["images"]:
        meta = json.loads(open(record["outputs"]["metadata"]).read())
        parts = meta["quality"]
        assert 0.0 <= parts["style"] <= 1.0
        layout = [parts[k] for k in ("structure", "depth", "style")]
        assert parts["score"] == pytest.approx(parts["sanity"] * sum(layout) / 3, abs=1e-3)
    assert summary["models"]["clip"].endswith("clip")


def test_no_style_part_with_the_tiny_models(tiny_bundle, rooms, tmp_path):
    summary = run(tiny_bundle, rooms, tmp_path / "out")
    meta = json.loads(open(summary["images"][0]["outputs"]["metadata"]).read())
    assert "style" not in meta["quality"] and "clip" not in summary["models"]
