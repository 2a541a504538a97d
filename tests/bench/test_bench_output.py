"""What `modomo bench` prints: its own title, and no cost or FLOP figure that is only a zero (a CPU run, no price)."""

from __future__ import annotations

import copy
import json

from typer.testing import CliRunner

from modomo_cli import render
from modomo_cli.app import app


def cpu_summary() -> dict:
    """A bench summary as `modomo bench --models tiny --size 128 --json` gives it on a CPU with no --gpu-price
    (recorded, the per-image list left out)."""
    stage = {"mean": 0.5, "p50": 0.5, "p95": 0.5, "share": 0.5}
    return {
        "images": [],
        "stages": {"read": stage, "generate": stage},
        "stopped": None,
        "oom": [],
        "quality": {"threshold": 0.2, "mean": 0.11, "success_rate": 0.0, "retries": 0, "sanity": 1.0},
        "settings": {"size": 128, "steps": 2, "batch_size": 1, "style": "boho", "fast": None},
        "counts": {"ok": 1, "failed": 0, "skipped": 0, "results": 1},
        "batching": {"batch_size": 1, "generate_calls": 1, "rendered": 1, "mean_batch": 1.0},
        "styles": {"names": ["boho"], "shared_seconds_saved": 0.0},
        "seconds": 12.79,
        "load_seconds": 0.94,
        "images_per_minute": 4.69,
        "cost": {
            "currency": "USD",
            "price_per_hour": 0.0,
            "price_source": "CPU: no GPU price",
            "seconds": 12.79,
            "per_image": 0.0,
            "per_result": 0.0,
            "total": 0.0,
        },
        "device": {"type": "cpu", "name": "x86_64", "cores": 2},
        "throughput": {"seconds_per_image": 12.79, "images_per_second": 0.0782},
        "flops": {
            "image_size": [128, 96],
            "per_image_tflop": {"diffusers": 0.000670611456, "modomo": 0.000521240576},
            "generate_tflops_achieved": 5.590932582270251e-05,
            "share_of_peak": None,
            "share_of_measured_peak": None,
        },
        "cost_projection": {
            "currency": "USD",
            "price_per_hour": 0.0,
            "per_image": 0.0,
            "monthly": {"100": 0.0, "1000": 0.0, "5000": 0.0, "10000": 0.0},
        },
        "speed": {"dtype": "float32", "batch_size": 1},
        "warmup": {"images": 0, "runs": 0, "seconds": 0.0, "compile_seconds": None},
        "memory": {"peak_gpu_gb": None, "peak_host_gb": 1.24},
    }


def gpu_summary() -> dict:
    """The same on a priced GPU with a datasheet peak: every figure is real."""
    summary = copy.deepcopy(cpu_summary())
    per_image = 3.95 * 0.4 / 3600
    summary["cost"].update(price_per_hour=3.95, price_source="H100: table", per_image=per_image, total=per_image)
    summary["device"] = {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "memory_gb": 79.1, "peak_tflops": 989.0}
    summary["throughput"] = {"seconds_per_image": 0.4, "images_per_second": 2.5}
    summary["flops"].update(
        image_size=[512, 512],
        per_image_tflop={"diffusers": 57.3, "modomo": 21.5},
        generate_tflops_achieved=306.0,
        share_of_peak=306.0 / 989.0,
    )
    summary["cost_projection"] = {
        "currency": "USD",
        "price_per_hour": 3.95,
        "per_image": per_image,
        "monthly": {str(n): per_image * n for n in (100, 1000, 5000, 10000)},
    }
    summary["memory"]["peak_gpu_gb"] = 5.2
    return summary


def printed(function, *args) -> str:
    with render.console.capture() as capture:
        function(*args)
    return capture.get()


def test_bench_table_is_titled_bench():
    text = printed(render.print_bench, cpu_summary())
    assert text.splitlines()[0].strip() == "modomo bench"
    assert "modomo run" not in text
    run = printed(render.print_summary, cpu_summary())  # `modomo transform` keeps its own title
    assert run.splitlines()[0].strip() == "modomo run"


def test_cpu_bench_prints_no_zero_cost_projection():
    text = printed(render.print_bench, cpu_summary())
    assert "0.00 TFLOP" not in text and "0.000 TFLOP/s" not in text
    assert "monthly cost" not in text and "GPU cost" not in text
    assert not any(line.startswith("cost ") for line in text.splitlines())  # no 0.00000 USD/image either
    assert "521 MFLOP/image at 128x96 (plain diffusers: 671 MFLOP), 55.9 MFLOP/s achieved" in text
    assert "of the" not in text  # no share of a datasheet peak the CPU does not have
    (why,) = [line for line in text.splitlines() if line.startswith("projection")]
    assert "needs a GPU price" in why and "--gpu-price" in why


def test_priced_gpu_bench_prints_its_projection():
    text = printed(render.print_bench, gpu_summary())
    assert (
        "21.5 TFLOP/image at 512x512 (plain diffusers: 57.3 TFLOP), 306 TFLOP/s achieved, 30.9% of the 989.0 "
        "TFLOP/s peak" in text
    )
    assert "monthly cost" in text and "10,000" in text and "4.39" in text  # 3.95 USD/hour at 0.4 s/image
    assert any(line.startswith("cost ") for line in text.splitlines())
    assert not any(line.startswith("projection") for line in text.splitlines())


def test_a_cpu_price_given_is_projected():
    """--gpu-price on a CPU: the projection then carries real figures and is printed."""
    summary = cpu_summary()
    summary["cost_projection"].update(
        price_per_hour=3.6, per_image=0.0128, monthly={"100": 1.28, "1000": 12.8, "5000": 64.0, "10000": 128.0}
    )
    summary["cost"].update(price_per_hour=3.6, price_source="--gpu-price", per_image=0.0128, total=0.0128)
    text = printed(render.print_bench, summary)
    assert "monthly cost" in text and "128.00" in text
    assert not any(line.startswith("projection") for line in text.splitlines())


def test_flop_text_keeps_three_figures():
    assert render.flop_text(57.3) == "57.3 TFLOP"
    assert render.flop_text(0.000521240576) == "521 MFLOP"
    assert render.flop_text(5.59e-05, "FLOP/s") == "55.9 MFLOP/s"
    assert render.flop_text(0.0) is None and render.flop_text(float("nan")) is None and render.flop_text(None) is None


def test_unpriced_sweep_cell_has_no_cost():
    cell = {
        "size": "128x96",
        "batch": 1,
        "mode": "standard",
        "dtype": "fp32",
        "status": "ok",
        "error": None,
        "images_per_second": 0.5,
        "seconds_per_image": 2.0,
        "peak_gpu_gb": None,
        "cost_per_1000": 0.0,
    }
    assert "per 1,000 images" not in printed(render.print_sweep_cell, cell)
    assert "0.556 per 1,000 images" in printed(render.print_sweep_cell, {**cell, "cost_per_1000": 0.556})


def test_real_cpu_bench(tiny_bundle):
    """One real bench on the tiny models, no price: its title, no zero projection, and the summary it prints
    as JSON is the shape the tests above feed the render functions."""
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--models",
            str(tiny_bundle),
            "--size",
            "128",
            "--images",
            "1",
            "--warmup",
            "0",
            "--steps",
            "2",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["cost_projection"]["price_per_hour"] == 0 and summary["device"]["type"] == "cpu"
    assert set(cpu_summary()) <= set(summary)
    assert "modomo bench" in result.stderr and "modomo run" not in result.stderr
    assert "monthly cost" not in result.stderr and "0.00 TFLOP" not in result.stderr
    assert "projection  left out: needs a GPU price" in result.stderr


def test_the_memory_line_names_the_models_whose_weights_are_packed():
    summary = cpu_summary()
    assert "packed" not in printed(render.print_bench, summary)
    summary["precision"] = {"dtype": "bf16", "packed": ["unet", "controlnets", "vae"]}
    line = next(line for line in printed(render.print_bench, summary).splitlines() if line.startswith("memory"))
    assert line.endswith("weights packed once: unet, controlnets, vae")
