"""--compile on through `modomo transform`, compiled for real by AOTInductor on the tiny models: the packages are
built once and loaded by the next run, the pictures stay within the quality guard of the eager run's (PSNR >= 30
dB), the settings hash does not change, and the stage times leave the compile out."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import restyle
from tests.models.test_precision import psnr

# Depth alone, for the first half of the steps: the second half runs the UNet with no ControlNet (its compiled
# package then adds zero residuals); one ControlNet keeps the compile short.
STYLE = 'prompt = "a calm {room}"\n[controls.depth]\nscale = 0.9\nend = 0.5\n'


@pytest.mark.fresh_models  # its stack holds compiled packages: no other test may be handed it
def test_compile_on_builds_packages_once_and_keeps_the_picture(tiny_bundle, rooms, tmp_path, monkeypatch):
    monkeypatch.setenv("MODOMO_CACHE", str(tmp_path / "cache"))  # its own packages and compile times
    (tmp_path / "calm.toml").write_text(STYLE)
    photo = rooms / "living-room-01.jpg"

    def run(name: str, choice: str) -> dict:
        summary = restyle(
            tiny_bundle, photo, tmp_path / name, "--style-file", tmp_path / "calm.toml", "--compile", choice
        )
        image = summary["images"][0]
        return {**summary, "pixels": np.asarray(Image.open(image["outputs"]["result"]).convert("RGB"))}

    eager = run("eager", "off")
    first = run("first", "on")
    second = run("second", "on")
    made = first["compile"]
    assert made["backend"] == "aotinductor" and made["failed"] == []
    assert made["packages"] == {"compiled": 2, "loaded": 0}  # the UNet and the depth ControlNet, one shape
    assert second["compile"]["packages"] == {"compiled": 0, "loaded": 2}
    assert second["compile"]["load_seconds"] < made["compile_seconds"] / 4
    assert psnr(first["pixels"], eager["pixels"]) >= 30
    assert np.array_equal(second["pixels"], first["pixels"])  # the same package, the same picture
    hashes = {run["images"][0]["settings"] for run in (eager, first, second)}
    assert len(hashes) == 1  # a speed option, not a result option
    # the compile is reported apart: the generate stage took a fraction of it
    assert first["stages"]["generate"]["mean"] < made["compile_seconds"] / 4
    assert (tmp_path / "cache" / "compiled" / "compile-times.json").is_file()
