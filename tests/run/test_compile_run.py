"""--compile on through `modomo transform`, compiled for real by AOTInductor on the tiny models: the packages are
built once and loaded by the next run, the pictures stay within the quality guard of the eager run's (PSNR >= 30
dB), the settings hash does not change, and the stage times leave the compile out."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.conftest import restyle
from tests.models.test_precision import psnr

# Depth in a window no step reaches: the UNet is the one package compiled for real, fed zero residuals at every
# step (a ControlNet's build doubled the test's time; the ControlNets' packages go through the same store and
# calls in tests/stages/test_sampling_compiled.py, exported without kernels). Unguided (as fast mode runs), so the
# prompt's embedding reaches the UNet expanded over the batch of two: a view the package must not misread.
STYLE = 'prompt = "a calm {room}"\nguidance_scale = 1.0\n[controls.depth]\nscale = 0.9\nstart = 0.99\n'


@pytest.mark.fresh_models  # its stack holds compiled packages: no other test may be handed it
def test_compile_on_builds_packages_once_and_keeps_the_picture(tiny_bundle, rooms, tmp_path, monkeypatch):
    monkeypatch.setenv("MODOMO_CACHE", str(tmp_path / "cache"))  # its own packages and compile times
    (tmp_path / "calm.toml").write_text(STYLE)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg"):  # one batch of two, each with its own seed
        shutil.copy(rooms / "living-room-01.jpg", photos / name)

    def run(name: str, choice: str) -> dict:
        summary = restyle(
            tiny_bundle,
            photos,
            tmp_path / name,
            "--style-file",
            tmp_path / "calm.toml",
            "--compile",
            choice,
            "--batch-size",
            "2",
        )
        images = sorted(summary["images"], key=lambda image: image["input"])
        pixels = [np.asarray(Image.open(image["outputs"]["result"]).convert("RGB")) for image in images]
        return {**summary, "pixels": pixels}

    eager = run("eager", "off")
    first = run("first", "on")
    second = run("second", "on")
    made = first["compile"]
    assert made["backend"] == "aotinductor" and made["failed"] == []
    assert made["packages"] == {"compiled": 1, "loaded": 0}  # the UNet, one shape
    assert second["compile"]["packages"] == {"compiled": 0, "loaded": 1}
    assert second["compile"]["load_seconds"] < made["compile_seconds"] / 4
    for compiled, eagerly in zip(first["pixels"], eager["pixels"], strict=True):  # the second image too
        assert psnr(compiled, eagerly) >= 30
    assert not np.array_equal(*eager["pixels"])  # two seeds, two pictures
    assert all(map(np.array_equal, second["pixels"], first["pixels"]))  # the same package, the same picture
    hashes = {image["settings"] for run in (eager, first, second) for image in run["images"]}
    assert len(hashes) == 1  # a speed option, not a result option
    # the compile is reported apart: the generate stage took a fraction of it
    assert first["stages"]["generate"]["mean"] < made["compile_seconds"] / 4
    assert (tmp_path / "cache" / "compiled" / "compile-times.json").is_file()
    # the frozen weights beside the library, not inside it: loaded into the process's own memory, not file-backed
    (package,) = (tmp_path / "cache" / "compiled").glob("unet-*.pt2")
    assert any(name.endswith("_weights.blob") for name in zipfile.ZipFile(package).namelist())
