"""The style-adherence part: CLIP from a bundle's clip/ folder (the tiny bundle has one), off without it."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import restyle


@pytest.fixture(scope="module")
def bundle_without_clip(tiny_bundle, tmp_path_factory):
    folder = tmp_path_factory.mktemp("no-clip") / "bundle"
    shutil.copytree(tiny_bundle, folder, ignore=shutil.ignore_patterns("clip"))
    return folder


def run(bundle, rooms, out, *extra):
    return restyle(bundle, rooms / "living-room-02-small.jpg", out, *extra, steps=1)


def test_style_part_when_clip_is_present(tiny_bundle, rooms, tmp_path):
    summary = run(tiny_bundle, rooms, tmp_path / "out", "--style", "boho,modern")
    for record in summary["images"]:
        meta = json.loads(open(record["outputs"]["metadata"]).read())
        parts = meta["quality"]
        assert 0.0 <= parts["style"] <= 1.0
        layout = [parts[k] for k in ("structure", "depth", "style")]
        assert parts["score"] == pytest.approx(parts["sanity"] * sum(layout) / 3, abs=1e-3)
    assert summary["models"]["clip"].endswith("clip")


def test_no_style_part_without_clip(bundle_without_clip, rooms, tmp_path):
    summary = run(bundle_without_clip, rooms, tmp_path / "out")
    meta = json.loads(open(summary["images"][0]["outputs"]["metadata"]).read())
    assert "style" not in meta["quality"] and "clip" not in summary["models"]
    assert meta["room"] == "living room" and summary["settings"]["room"] == "living room"
