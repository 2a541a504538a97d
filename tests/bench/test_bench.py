"""`modomo bench` end to end on the tiny models, and the FLOP counts behind its FLOP/s figure."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.bench.flops import forward_flops, per_image
from pipeline.models import random_sd15
from pipeline.stages.generate import GenerateSettings
from pipeline.stages.sampling import SpeedOptions


@pytest.fixture(scope="module")
def bench(tiny_bundle):
    args = [
        "bench",
        "--models",
        str(tiny_bundle),
        "--images",
        "3",
        "--warmup",
        "1",
        "--size",
        "128",
        "--synthetic-size",
        "160x120",
        "--steps",
        "3",
        "--compare-diffusers",
        "--ablate",
        "--gpu-price",
        "3.6",
        "--dtype",
        "bf16",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_bench_summary_shape(bench):
    summary, _ = bench
    for key in (
        "stages",
        "settings",
        "device",
        "versions",
        "throughput",
        "memory",
        "flops",
        "cost_projection",
        "warmup",
        "speed",
        "diffusers",
        "ablation",
    ):
        assert key in summary, key
    assert summary["settings"]["steps"] == 3 and summary["settings"]["size"] == 128
    assert summary["device"]["type"] == "cpu" and summary["versions"]["torch"] == torch.__version__
    assert summary["device"]["host_memory"].startswith("kept (glibc")  # set when the CPU stack loaded
    assert summary["throughput"]["seconds_per_image"] > 0
    assert summary["throughput"]["images_per_second"] == pytest.approx(1 / summary["throughput"]["seconds_per_image"])
    assert summary["memory"]["peak_host_gb"] > 0 and summary["memory"]["peak_gpu_gb"] is None
    assert summary["flops"]["per_image_tflop"]["modomo"] < summary["flops"]["per_image_tflop"]["diffusers"]
    assert summary["flops"]["generate_tflops_achieved"] > 0


def test_warmup_is_not_counted(bench):
    summary, _ = bench
    assert summary["warmup"]["images"] == 1
    assert summary["counts"] == {"ok": 3, "failed": 0, "skipped": 0, "results": 3}
    assert len(summary["images"]) == 3


def test_cost_projection_follows_the_price(bench):
    summary, _ = bench
    cost = summary["cost_projection"]
    per_image = 3.6 * summary["throughput"]["seconds_per_image"] / 3600
    assert cost["per_image"] == pytest.approx(per_image)
    assert cost["monthly"] == {str(n): pytest.approx(per_image * n) for n in (100, 1000, 5000, 10000)}


def test_compare_diffusers_gives_the_same_images(bench):
    summary, stderr = bench
    baseline = summary["diffusers"]
    assert baseline["max_pixel_difference"] <= 2
    assert baseline["generate_seconds_per_image"] > 0 and baseline["generate_ratio"] > 0
    assert len(baseline["runs_generate_seconds_per_image"]) == 2  # before and after modomo
    assert set(summary["ablation"]) == {"all", "without skip_idle_controlnets", "without cache_control_embeddings"}
    assert "vs diffusers" in stderr and "monthly cost" in stderr


def test_a_bf16_bench_times_plain_diffusers_in_bf16_and_in_fp32(bench):
    summary, stderr = bench
    assert summary["diffusers"]["dtype"] == "bf16" and summary["diffusers_fp32"]["dtype"] == "fp32"
    fp32 = summary["diffusers_fp32"]
    assert len(fp32["runs_generate_seconds_per_image"]) == 2 and fp32["generate_ratio"] > 0
    assert fp32["max_pixel_difference"] > 0 and fp32["psnr_db"] >= 30  # the same weights, in another format
    assert 0 < fp32["sanity"] <= 1
    assert "plain diffusers in fp32" in stderr and "plain diffusers in bf16" in stderr
    assert summary["precision"]["models"]["unet"] == "bf16"


def test_a_cpu_bench_reports_its_share_of_the_measured_peak(bench):
    summary, stderr = bench
    peak = summary["device"]["measured_peak"]
    assert peak["dtype"] == "bf16" and peak["tflops"] > 0 and peak["threads"] == torch.get_num_threads()
    assert summary["flops"]["share_of_measured_peak"] == pytest.approx(
        summary["flops"]["generate_tflops_achieved"] / peak["tflops"]
    )
    assert "of this CPU's bf16 matmul peak" in stderr


def test_the_peak_probe_is_cached(tmp_path, monkeypatch):
    from pipeline.bench import peak

    first = peak.cpu_peak_tflops(torch.float32, cache=tmp_path)
    monkeypatch.setattr(peak, "probe", lambda *a, **k: pytest.fail("measured again"))
    assert peak.cpu_peak_tflops(torch.float32, cache=tmp_path) == first and first["tflops"] > 0


def test_a_fresh_probe_keeps_the_best_the_cpu_has_shown(tmp_path, monkeypatch):
    """A probe taken on a busy machine reads low: a later, higher one replaces it, a lower one never does."""
    from pipeline.bench import peak

    readings = iter([0.1, 0.3, 0.2])
    monkeypatch.setattr(peak, "probe", lambda *a, **k: next(readings))
    monkeypatch.setattr(peak, "_PROBED", set())
    assert peak.cpu_peak_tflops(torch.float32, cache=tmp_path)["tflops"] == 0.1  # busy: low
    assert peak.cpu_peak_tflops(torch.float32, cache=tmp_path)["tflops"] == 0.1  # cached: no probe
    assert peak.cpu_peak_tflops(torch.float32, cache=tmp_path, fresh=True)["tflops"] == 0.1  # probed in this process
    peak._PROBED.clear()  # a later process
    assert peak.cpu_peak_tflops(torch.float32, cache=tmp_path, fresh=True)["tflops"] == 0.3
    assert peak.cpu_peak_tflops(torch.float32, cache=tmp_path, fresh=True)["tflops"] == 0.3  # probed: not again
    peak._PROBED.clear()  # a later process
    assert peak.cpu_peak_tflops(torch.float32, cache=tmp_path, fresh=True)["tflops"] == 0.3  # 0.2 is lower
    assert peak.cpu_peak_tflops(torch.float32, cache=tmp_path)["tflops"] == 0.3
    assert next(readings, None) is None  # three probes in all


def test_bench_reports_sanity_and_batching(bench):
    """Black or NaN output would score sanity 0: the figure sits beside the speed it qualifies."""
    summary, _ = bench
    assert 0 < summary["quality"]["sanity"] <= 1 and 0 < summary["diffusers"]["sanity"] <= 1
    assert summary["batching"] == {"batch_size": 1, "generate_calls": 3, "rendered": 3, "mean_batch": 1.0}


def test_compiled_warmup_covers_every_batch_shape():
    from pipeline.bench.bench import warmup_sets

    items = list(range(7))
    assert warmup_sets(items, 1, 4, compiled=False) == [[0]]
    assert warmup_sets(items, 1, 4, compiled=True) == [[0, 1, 2, 3], [0, 1, 2]]  # batches of 4, then of 3
    assert warmup_sets(items[:4], 1, 2, compiled=True) == [[0, 1]]
    assert warmup_sets(items, 0, 4, compiled=True) == []


def test_flops_of_the_real_architectures_match_the_published_counts():
    data = random_sd15.configs()
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    with torch.device("meta"):
        net = ControlNetModel.from_config(data["controlnet"])
        pipe = SimpleNamespace(
            unet=UNet2DConditionModel.from_config(data["unet"]),
            vae=AutoencoderKL.from_config(data["vae"]),
            controlnet=SimpleNamespace(nets=[net, net]),
            vae_scale_factor=8,
            tokenizer=SimpleNamespace(model_max_length=77),
        )
    forward = forward_flops(pipe, 512, 512)
    assert forward["unet"] / 1e9 == pytest.approx(803.3, rel=1e-3)
    assert forward["controlnets"]["depth"] / 1e9 == pytest.approx(283.3, rel=1e-3)
    assert forward["vae_decode"] / 1e9 == pytest.approx(2514.5, rel=1e-3)
    settings = GenerateSettings("p", "n", 20, 7.5, (1.0, 0.5), (0.0, 0.0), (1.0, 0.6))
    flops = per_image(forward, settings, SpeedOptions())
    assert flops["diffusers"] / 1e12 == pytest.approx(57.3, rel=1e-3)
    assert flops["modomo"] < flops["diffusers"]
    plain = per_image(forward, settings, SpeedOptions(False, False, False))
    assert plain["modomo"] == pytest.approx(flops["diffusers"])
    # counted once per configs and size: the same again is read back, another size or model is counted
    from pipeline.bench import flops as counting

    with pytest.MonkeyPatch.context() as patch:
        real, counted = counting.count_forward, []
        patch.setattr(counting, "count_forward", lambda *a: (counted.append(a[1:]), real(*a))[1])
        assert forward_flops(pipe, 512, 512) == forward
        assert forward_flops(pipe, 256, 256)["unet"] < forward["unet"]
        with torch.device("meta"):
            pipe.unet = UNet2DConditionModel.from_config({**data["unet"], "layers_per_block": 1})
        assert forward_flops(pipe, 512, 512)["unet"] < forward["unet"]
    assert counted == [(256, 256), (512, 512)]


def test_a_bench_with_a_style_reference_times_it_and_matches_plain_diffusers(tiny_bundle, rooms):
    """--style-ref: the timed run follows it (plain diffusers gets `ip_adapter_image`, the same images), and the same
    run without it is timed beside for its cost. No figure is asserted: timings are the bench's output."""
    args = [
        "bench",
        "--models",
        str(tiny_bundle),
        "--images",
        "1",
        "--warmup",
        "0",
        "--size",
        "128",
        "--synthetic-size",
        "160x120",
        "--steps",
        "2",
        "--compare-diffusers",
        "--dtype",
        "fp32",
        "--style-ref",
        str(rooms / "living-room-01.jpg"),
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    cost = summary["parts"]["style_ref"]
    assert cost["with"] > 0 and cost["without"] > 0
    assert cost["seconds_per_image"] == pytest.approx(cost["with"] - cost["without"])
    assert summary["diffusers"]["max_pixel_difference"] <= 2
    assert "parts       style reference" in result.stderr
