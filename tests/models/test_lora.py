"""LoRA weights from local files: on the command line and in a style file, switched per style."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.errors import UsageError
from pipeline.models import lora
from tests.conftest import restyle


@pytest.fixture(scope="module")
def lora_file(tiny_bundle, tmp_path_factory) -> Path:
    return make_lora(tiny_bundle, tmp_path_factory.mktemp("lora"))


def make_lora(tiny_bundle: Path, folder: Path) -> Path:
    """A LoRA for the tiny UNet's attention, with non-zero weights, saved the way diffusers saves LoRAs."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(3)
    unet = UNet2DConditionModel.from_pretrained(tiny_bundle / "stable-diffusion" / "unet")
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    StableDiffusionPipeline.save_lora_weights(
        folder,
        unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
        safe_serialization=True,
    )
    return folder / "pytorch_lora_weights.safetensors"


def test_parse_file_and_scale(lora_file, tmp_path):
    assert lora.parse(str(lora_file)) == lora.Lora(lora_file, 1.0)
    assert lora.parse(f"{lora_file}:0.5").scale == 0.5
    shutil.copy(lora_file, tmp_path / "near.safetensors")
    assert lora.parse("near.safetensors:2", base=tmp_path).path == tmp_path / "near.safetensors"
    with pytest.raises(UsageError, match="not found"):
        lora.parse(str(tmp_path / "missing.safetensors"))


def run(bundle, rooms, out, *extra):
    return restyle(bundle, rooms / "living-room-02-small.jpg", out, *extra, steps=2)


def pixels(summary, index=0) -> np.ndarray:
    return np.asarray(Image.open(summary["images"][index]["outputs"]["result"]), dtype=np.int16)


def test_lora_changes_the_result_and_scale_zero_does_not(tiny_bundle, rooms, tmp_path, lora_file):
    plain = run(tiny_bundle, rooms, tmp_path / "plain")
    full = run(tiny_bundle, rooms, tmp_path / "full", "--lora", f"{lora_file}:1.0")
    zero = run(tiny_bundle, rooms, tmp_path / "zero", "--lora", f"{lora_file}:0")
    assert np.abs(pixels(plain) - pixels(full)).max() > 10
    assert np.abs(pixels(plain) - pixels(zero)).max() <= 2
    meta = json.loads(Path(full["images"][0]["outputs"]["metadata"]).read_text())
    assert meta["settings"]["loras"] == [{"file": str(lora_file), "scale": 1.0}]


def test_style_file_lora_applies_to_its_style_only(tiny_bundle, rooms, tmp_path, lora_file):
    from styles import STYLE_DIR

    folder = tmp_path / "styles"
    folder.mkdir()
    shutil.copy(lora_file, folder / "rattan.safetensors")
    text = (STYLE_DIR / "boho.toml").read_text().replace('name = "boho"', 'name = "rattan"')
    (folder / "rattan.toml").write_text('loras = ["rattan.safetensors:1.0"]\n' + text)
    with_lora = run(tiny_bundle, rooms, tmp_path / "a", "--style-file", folder / "rattan.toml")
    plain = run(tiny_bundle, rooms, tmp_path / "b", "--style", "boho")
    assert with_lora["images"][0]["style"] == "rattan"
    assert np.abs(pixels(with_lora) - pixels(plain)).max() > 10  # same settings, the LoRA is the difference


def test_a_broken_lora_file_is_one_line(tiny_bundle, rooms, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(rooms / "living-room-02-small.jpg"),
            "--models",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "out"),
            "--lora",
            str(bad),
        ],
    )
    assert result.exit_code == 1 and "bad.safetensors" in result.stderr and "Traceback" not in result.output


@pytest.mark.fresh_models  # the run leaves packages on its stack
def test_a_unet_with_lora_adapters_stays_eager_under_compile(tiny_bundle, rooms, lora_file, tmp_path, monkeypatch):
    """The adapters' scales change per style and a package would freeze them: with --lora the UNet runs eager
    while the ControlNets run compiled (the stand-in backend: plain torch.export, no kernels built)."""
    from pipeline.models.compiled import backends

    monkeypatch.setenv("MODOMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("pipeline.models.compiled.denoisers.AOTInductor", backends.ExportOnly)
    packages = tmp_path / "cache" / "compiled"
    plain = run(tiny_bundle, rooms, tmp_path / "plain", "--compile", "on")
    assert plain["compile"]["backend"] == "export" and len(list(packages.glob("unet-*.pt2"))) == 1
    adapted = run(tiny_bundle, rooms, tmp_path / "lora", "--compile", "on", "--lora", lora_file)
    assert adapted["compile"]["packages"]["loaded"] >= 1  # the ControlNets, from the first run's packages
    assert len(list(packages.glob("unet-*.pt2"))) == 1  # no package of the adapted UNet
    assert adapted["compile"]["failed"] == []
