"""`--dtype`: what `auto` picks on each kind of device, and the quality guard: on the same seed, a bf16 result
against the fp32 one (PSNR at least 30 dB on the tiny models, sane output), with every model that should run
in bf16 doing so."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.errors import UsageError
from pipeline.models import precision
from pipeline.models.prepacked import available as bf16_kernels

PHOTO = "living-room-02-small.jpg"
PSNR_BOUND_DB = 30.0


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"),
    [(True, False, "bf16"), (False, True, "bf16"), (True, True, "bf16"), (False, False, "fp32")],
)
def test_auto_follows_the_cpus_bf16_support(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert precision.resolve("auto", torch.device("cpu")) == expected
    assert precision.resolve("fp32", torch.device("cpu")) == "fp32"


def test_auto_is_fp16_on_cuda_and_fp16_is_refused_on_the_cpu():
    assert precision.resolve("auto", torch.device("cuda")) == "fp16"
    with pytest.raises(UsageError, match="not supported on the CPU"):
        precision.resolve("fp16", torch.device("cpu"))
    with pytest.raises(UsageError, match="choose auto, fp16, bf16, fp32"):
        precision.resolve("int8", torch.device("cpu"))


def test_the_cpu_flags_decide_when_torch_has_no_probe(monkeypatch, tmp_path):
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision, "Path", lambda _: cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f\n")
    assert not precision.cpu_supports_bf16()
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile\n")
    assert precision.cpu_supports_bf16()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def two_formats(tiny_bundle, rooms, tmp_path_factory) -> dict:
    """The same photo, style and seed restyled in fp32 and in bf16: (result pixels, summary, metadata)."""
    folder = tmp_path_factory.mktemp("precision")
    shutil.copy(rooms / PHOTO, folder / "room.jpg")
    made = {}
    for dtype in ("fp32", "bf16"):
        result = CliRunner().invoke(
            app,
            [
                "transform",
                str(folder / "room.jpg"),
                "--models",
                str(tiny_bundle),
                "--out",
                str(folder / dtype),
                "--size",
                "128",
                "--steps",
                "4",
                "--retries",
                "0",
                "--style",
                "boho",
                "--dtype",
                dtype,
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        metadata = json.loads((folder / dtype / "room.boho.json").read_text())
        made[dtype] = (np.asarray(Image.open(folder / dtype / "room.boho.png").convert("RGB")), summary, metadata)
    return made


def test_bf16_result_is_within_the_bound_of_fp32(two_formats):
    (fp32, _, meta32), (bf16, summary, meta16) = two_formats["fp32"], two_formats["bf16"]
    assert meta32["seed"] == meta16["seed"]
    assert psnr(fp32, bf16) >= PSNR_BOUND_DB
    assert not np.array_equal(fp32, bf16)  # the bf16 path really ran in bf16
    assert summary["images"][0]["quality_parts"]["sanity"] == 1.0


def test_every_model_that_should_runs_in_bf16(two_formats):
    _, summary, metadata = two_formats["bf16"]
    models = summary["precision"]["models"]
    assert {name: models[name] for name in ("text_encoder", "unet", "controlnets", "vae", "depth")} == dict.fromkeys(
        ("text_encoder", "unet", "controlnets", "vae", "depth"), "bf16"
    )
    assert models["yolo"] == models["sam2"] == "fp32" and set(summary["precision"]["kept_fp32"]) == {"yolo", "sam2"}
    assert metadata["settings"]["dtype"] == "bf16"
    assert two_formats["fp32"][2]["settings"]["dtype"] == "fp32"
    # the layout read off the models: in bf16 on the CPU every convolution net is channels-last, in fp32 the VAE
    assert summary["precision"]["channels_last"] == ["unet", "controlnets", "vae"]
    assert two_formats["fp32"][1]["precision"]["channels_last"] == ["vae"]
    # bf16 on a CPU whose oneDNN runs bf16: the convolution nets' layers pack their weights once; fp32 runs plain
    assert summary["precision"]["packed"] == (["unet", "controlnets", "vae"] if bf16_kernels() else [])
    assert two_formats["fp32"][1]["precision"]["packed"] == []


def test_the_format_is_in_the_settings_hash():
    from pipeline.config import config_for
    from pipeline.options import TransformOptions
    from styles import load_style

    hashes = {
        dtype: config_for(TransformOptions(inputs=["x.jpg"], style="boho"), precision=dtype).result_hash(
            load_style("boho"), {}
        )
        for dtype in ("fp32", "bf16")
    }
    assert hashes["fp32"] != hashes["bf16"]


def test_fp16_on_the_cpu_is_one_line_before_models_load(tiny_bundle, rooms, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(rooms / PHOTO),
            "--models",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--dtype",
            "fp16",
        ],
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "fp16 is not supported on the CPU" in lines[0]
    assert not (tmp_path / "out").exists()
