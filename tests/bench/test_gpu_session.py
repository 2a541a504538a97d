"""The GPU session prepared here: the checks script runs on the CPU on the code path it takes on a GPU (so a
change to the run cannot leave it broken until a device is lent), and the bundle carries what the GPU machine
lacks and nothing it has. `make gpu-rehearsal` goes further (a bare venv, the bundle installed offline)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.conftest import REPO


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_gpu_checks_run_on_the_cpu_with_the_tiny_models(tiny_bundle, tmp_path):
    checks = script("gpu_checks")
    argv = ["--out", str(tmp_path), "--models", str(tiny_bundle), "--device", "cpu", "--sizes", "128x96"]
    code = checks.main([*argv, "--batches", "2", "--steps", "2", "--images", "2", "--compile-cells", ""])
    assert code == 0
    found = json.loads((tmp_path / "checks.json").read_text())
    offload = found["oom_offload"]
    assert offload["passed"] and offload["refused_forwards"] >= 2
    assert [e["action"] for e in offload["events"]] == ["batch 1", "model cpu offload"]
    assert offload["max_pixel_difference_vs_plain"] <= 2
    assert found["real_oom"] == {"skipped": "not a CUDA device"}
    (cell,) = json.loads((tmp_path / "grid.json").read_text())["cells"]
    assert cell["size"] == "128x96" and cell["batch"] == 2 and cell["batching"]["mean_batch"] == 2
    assert cell["sanity"] > 0.5 and cell["diffusers_sanity"] > 0.5 and cell["max_pixel_difference"] <= 2
    assert cell["images_per_second"] > 0 and cell["diffusers_images_per_second"] > 0


def test_the_bundle_carries_what_the_gpu_machine_lacks_and_nothing_it_has():
    bundle = script("gpu_bundle")
    machine = bundle.machine_packages()
    assert machine["transformers"] == "5.17.0" and machine["torch"] is None  # read there, or not
    carry, relied = bundle.walk("modomo", machine, "3.12")
    lacking = {"diffusers", "ultralytics", "sam2", "boto3", "c2pa-python", "spandrel", "pillow-heif", "hydra-core"}
    assert lacking <= set(carry)
    assert {"botocore", "s3transfer", "omegaconf", "iopath", "segno", "cryptography"} <= set(carry)  # their needs
    assert not set(carry) & set(machine)  # nothing the machine has: torch stays its own
    assert not set(carry) & set(bundle.LEFT_OUT)
    assert {"torch", "torchvision", "transformers", "accelerate", "opencv-python-headless"} <= set(relied)
    assert set(relied) <= set(machine)
    from importlib.metadata import version

    assert carry["diffusers"] == version("diffusers")  # the versions installed here


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_a_requirement_for_another_python_is_followed_only_where_it_applies(python):
    from packaging.requirements import Requirement

    bundle = script("gpu_bundle")
    req = Requirement('tomli>=1; python_version < "3.12"')
    assert bundle.requirement_applies(req, python) == (python == "3.11")
