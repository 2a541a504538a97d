"""A run whose weights are not on this machine names every missing part in one line, before any model loads,
with the command that fetches them and the preset that needs no download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.errors import ModomoError
from pipeline.models import inventory, load
from pipeline.models.presets import sd15
from tests.cli.test_doctor import cache_repo

REQUIRED = {  # role: how the message names where it comes from
    "stable diffusion": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "controlnet depth": "lllyasviel/control_v11f1p_sd15_depth",
    "controlnet canny": "lllyasviel/control_v11p_sd15_canny",
    "depth": "Intel/dpt-large",
    "sam2": "facebook/sam2.1-hiera-tiny/sam2.1_hiera_tiny.pt",
    "yolo": "yolo11m.pt",
}


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """An empty Hugging Face cache and a working folder without a YOLO weight; the cache's root."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # The hub library reads HF_HOME when it is imported; point its cache at the empty folder too.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "hf"


def test_every_missing_part_in_one_line(empty_caches):
    with pytest.raises(ModomoError) as caught:
        load.load_stack(sd15(), torch.device("cpu"))
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and caught.value.exit_code == 1
    for role, where in REQUIRED.items():
        assert f"{role} ({where})" in message, role
    assert "`modomo models download sd15`" in message and "without any download: --models tiny" in message
    for optional in ("clip", "upscaler", "IP-Adapter", "ip-adapter", "lama", "inpaint"):  # a run goes on without them
        assert optional not in message, optional


def test_only_what_is_missing_is_named(empty_caches):
    spec = sd15()
    cache_repo(empty_caches, spec.sd, [(c,) for c in inventory.SD_CONFIGS] + list(inventory.SD_WEIGHTS))
    cache_repo(empty_caches, spec.controlnet_depth, [("config.json",), inventory.WEIGHTS])
    Path(spec.yolo).write_bytes(b"weights")  # the working folder, where ultralytics looks first
    message = str(pytest.raises(ModomoError, load.load_stack, spec, torch.device("cpu")).value)
    named = [role for role in REQUIRED if f"{role} (" in message]
    assert named == ["controlnet canny", "depth", "sam2"], message


def test_the_run_says_it_once(empty_caches, rooms):
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(rooms / "living-room-02-small.jpg"),
            "--models",
            "sd15",
            "--out",
            "out",
            "--room",
            "living room",
            "--json",
        ],
    )
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if "weights not found" in line]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert all(f"{role} ({where})" in errors[0] for role, where in REQUIRED.items()), errors[0]
    assert json.loads(result.stdout or "{}").get("counts", {}).get("ok", 0) == 0


def test_online_the_hub_parts_are_left_to_the_loaders(empty_caches, monkeypatch):
    """With network, loading fetches hub weights itself; only what it cannot fetch (the YOLO weight) stops the run,
    and then every part not on disk is named, since the one download command fetches them all."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    spec = sd15()
    message = str(pytest.raises(ModomoError, load.check_weights, spec).value)
    assert all(f"{role} ({where})" in message for role, where in REQUIRED.items()), message
    Path(spec.yolo).write_bytes(b"weights")
    load.check_weights(spec)  # nothing it cannot fetch is missing: the loaders go ahead


def test_declutter_parts_are_named_apart_from_the_required_ones(empty_caches):
    """--mode declutter's parts never stop a plain run; what it lacks is one line of its own, with its command."""
    spec = sd15()
    stock = inventory.inventory(spec)
    assert [p.role for p in stock.missing()] == list(REQUIRED)  # neither the inpaint ControlNet nor LaMa
    message = inventory.declutter_missing(spec, stock)
    assert len(message.splitlines()) == 1 and message.endswith("`modomo models download sd15 --declutter`")
    assert f"controlnet inpaint ({spec.controlnet_inpaint})" in message
    assert f"lama ({spec.lama.removeprefix('hub:')})" in message
