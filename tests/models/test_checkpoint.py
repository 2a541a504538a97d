"""`--checkpoint`: a single-file SD1.5 fine-tune in the original layout, made here from the tiny models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from modomo_cli.app import app
from tests.conftest import restyle
from tests.ldm_export import to_ldm


def single_file(bundle: Path, target: Path, nudge: float = 0.0) -> Path:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    sd = bundle / "stable-diffusion"
    unet = UNet2DConditionModel.from_pretrained(sd / "unet")
    if nudge:  # a "fine-tune": the same architecture, other weights
        with torch.no_grad():
            torch.manual_seed(5)
            for param in unet.parameters():
                param.add_(torch.randn_like(param) * nudge)
    state = to_ldm(unet, AutoencoderKL.from_pretrained(sd / "vae"), CLIPTextModel.from_pretrained(sd / "text_encoder"))
    save_file(state, target)
    return target


def run(bundle, rooms, out, *extra):
    return restyle(bundle, rooms / "living-room-02-small.jpg", out, *extra, steps=2)


def pixels(summary) -> np.ndarray:
    return np.asarray(Image.open(summary["images"][0]["outputs"]["result"]), dtype=np.int16)


def test_checkpoint_round_trip_and_fine_tune(tiny_bundle, rooms, tmp_path):
    same = single_file(tiny_bundle, tmp_path / "same.safetensors")
    tuned = single_file(tiny_bundle, tmp_path / "tuned.safetensors", nudge=0.05)
    base = run(tiny_bundle, rooms, tmp_path / "base")
    from_same = run(tiny_bundle, rooms, tmp_path / "same", "--checkpoint", same)
    from_tuned = run(tiny_bundle, rooms, tmp_path / "tuned", "--checkpoint", tuned)
    assert np.abs(pixels(base) - pixels(from_same)).max() <= 2  # the file holds exactly the base weights
    assert np.abs(pixels(base) - pixels(from_tuned)).max() > 10
    assert from_tuned["models"]["checkpoint"] == str(tuned)
    meta = json.loads(Path(from_tuned["images"][0]["outputs"]["metadata"]).read_text())
    assert meta["models"]["checkpoint"] == str(tuned)


def test_style_file_names_its_checkpoint(tiny_bundle, rooms, tmp_path):
    from styles import STYLE_DIR

    folder = tmp_path / "styles"
    folder.mkdir()
    single_file(tiny_bundle, folder / "tuned.safetensors", nudge=0.05)
    text = (STYLE_DIR / "boho.toml").read_text().replace('name = "boho"', 'name = "tuned-boho"')
    (folder / "tuned.toml").write_text('checkpoint = "tuned.safetensors"\n' + text)
    summary = run(tiny_bundle, rooms, tmp_path / "out", "--style-file", folder / "tuned.toml")
    assert summary["models"]["checkpoint"] == str(folder / "tuned.safetensors")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_bad_checkpoints_are_one_line(tiny_bundle, rooms, tmp_path, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(rooms / "living-room-02-small.jpg"),
            "--models",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "out"),
            "--checkpoint",
            str(bad),
        ],
    )
    assert result.exit_code == 1 and "bad.safetensors" in result.stderr and "Traceback" not in result.output


def test_missing_checkpoint_is_a_usage_error(tiny_bundle, rooms, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(rooms / "living-room-02-small.jpg"),
            "--models",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "out"),
            "--checkpoint",
            str(tmp_path / "nope.safetensors"),
        ],
    )
    assert result.exit_code == 2 and "nope.safetensors" in result.stderr
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
