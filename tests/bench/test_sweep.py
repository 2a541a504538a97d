"""`modomo bench --sweep` and `--compare`: the grid on the tiny models, the out-of-memory branch stop, the
results file and its chart, and files from two GPUs side by side."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.bench import compare as bench_compare
from pipeline.bench import sweep
from pipeline.bench.bench import BenchOptions
from pipeline.config import config_for
from pipeline.errors import UsageError
from pipeline.models.placement import LoadOptions
from pipeline.options import TransformOptions
from pipeline.run.cost import Price

# Fast cells can run once the fast-mode LoRA for random-weight presets is part of the build.
SMALL = ["--models", "tiny", "--sweep-sizes", "128x96", "--images", "2", "--warmup", "0", "--steps", "2",
         "--gpu-price", "3.6"]  # fmt: skip


def invoke(*args: str):
    return CliRunner().invoke(app, ["bench", *map(str, args)])


BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two bar colours (tab10)


def assert_real_image(path: Path, width: int, bars: tuple = (BLUE,)) -> None:
    """A chart that opens, has the size asked for, and has bars drawn in each series' colour (text and axes
    alone would pass a blank-page test)."""
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] == width and image.size[1] >= 300
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # not a flat fill
    for colour in bars:
        assert (np.abs(pixels - colour).sum(axis=2) < 8).sum() > 500, f"no bars of colour {colour} in {path}"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One small sweep through the CLI: (wall seconds, results, json path, png path, stderr)."""
    out = tmp_path_factory.mktemp("sweep")
    start = time.perf_counter()
    result = invoke(
        "--sweep",
        "--sweep-out",
        out,
        "--sweep-batches",
        "2,1",
        "--sweep-modes",
        "standard,fast",
        "--sweep-dtypes",
        "fp32",
        *SMALL,
        "--json",
    )
    seconds = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    (json_path,) = out.glob("cpu-*.json")
    (png_path,) = out.glob("cpu-*.png")
    return seconds, json.loads(result.stdout), json_path, png_path, result.stderr


def test_sweep_is_quick_and_writes_every_cell(swept):
    seconds, results, json_path, _, stderr = swept
    assert seconds < 120, f"the small sweep took {seconds:.0f} s"
    assert json.loads(json_path.read_text()) == results
    assert [bench_compare.label(c) for c in results["cells"]] == [
        "128x96 b1 standard fp32",
        "128x96 b2 standard fp32",
        "128x96 b1 fast fp32",
        "128x96 b2 fast fp32",
    ]
    assert results["grid"] == {
        "batches": [1, 2],
        "sizes": ["128x96"],
        "modes": ["standard", "fast"],
        "dtypes": ["fp32"],
    }
    assert "bench sweep" in stderr and "128x96 b2 standard fp32" in stderr


def test_sweep_header_names_machine_software_price_command(swept):
    _, results, json_path, _, _ = swept
    assert json_path.name.startswith("cpu-") and results["schema"] == sweep.SCHEMA
    assert results["gpu"] is None and results["driver"] is None and results["label"].startswith("CPU ")
    assert results["device"]["type"] == "cpu" and results["versions"]["torch"] == torch.__version__
    assert results["price"] == {"per_hour": 3.6, "currency": "USD", "source": "--gpu-price"}
    command = results["command"]  # rebuilt from the options given: the test runner is not the modomo command
    assert command.startswith("modomo bench ") and " --sweep " in command and "--sweep-batches 2,1" in command
    assert results["models"] == "tiny" and results["date"][:4].isdigit() and results["seconds"] > 0


def test_standard_cells_measure_speed_memory_and_cost(swept):
    _, results, _, _, _ = swept
    for cell in results["cells"][:2]:
        assert cell["status"] == "ok" and cell["error"] is None, cell
        assert cell["steps"] == 2 and cell["working_size"] == [128, 96] and cell["images"] == 2
        assert cell["images_per_second"] == pytest.approx(1 / cell["seconds_per_image"])
        assert 0 < cell["generate_seconds_per_image"] < cell["seconds_per_image"]
        assert cell["peak_gpu_gb"] is None and cell["peak_host_gb"] > 0
        assert cell["share_of_peak"] is None  # a CPU has no peak in the price table
        assert cell["cost_per_1000"] == pytest.approx(3.6 * cell["seconds_per_image"] / 3600 * 1000)
        assert cell["mean_batch"] == cell["batch"] and cell["sanity"] > 0


def test_fast_cells_follow_the_recipe_or_say_why_not(swept):
    _, results, _, _, _ = swept
    fast = results["cells"][2:]
    assert all(c["mode"] == "fast" and c["recipe"] == "lcm" for c in fast)
    from pipeline.models.recipes import RECIPES

    assert all(c["status"] == "ok" and c["steps"] == RECIPES["lcm"].steps for c in fast), fast


def test_sweep_chart_is_a_real_image(swept):
    _, _, _, png_path, _ = swept
    assert_real_image(png_path, 1540, (BLUE, ORANGE))  # standard, fast


@pytest.fixture
def oom_from_batch_two(monkeypatch):
    """Every sampler call of two images or more runs out of memory, as a too-large batch does on a GPU."""
    from pipeline.stages.generate import Generator

    real = Generator.render

    def render(self, group):
        if len(group) >= 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return real(self, group)

    monkeypatch.setattr(Generator, "render", render)


def test_out_of_memory_stops_the_branch(oom_from_batch_two, tmp_path):
    """The generator recovers (half the batch) by itself; the sweep still calls the cell oom, runs no larger
    batch of that branch, and goes on with the next branch."""
    result = invoke(
        "--sweep",
        "--sweep-out",
        tmp_path,
        "--sweep-batches",
        "1,2,4",
        "--sweep-sizes",
        "128x96,96x128",
        "--sweep-modes",
        "standard",
        "--models",
        "tiny",
        "--images",
        "2",
        "--warmup",
        "0",
        "--steps",
        "2",
        "--json",
    )
    assert result.exit_code == 0, result.output
    cells = {bench_compare.label(c): c for c in json.loads(result.stdout)["cells"]}
    for size in ("128x96", "96x128"):
        assert cells[f"{size} b1 standard fp32"]["status"] == "ok"
        oom = cells[f"{size} b2 standard fp32"]
        assert oom["status"] == "oom" and "batch 2" in oom["error"] and oom["images_per_second"] is None
        assert oom["oom_events"][0]["action"] == "batch 1"
        skipped = cells[f"{size} b4 standard fp32"]
        assert skipped["status"] == "oom-skipped" and skipped["oom_events"] == [] and "not run" in skipped["error"]
    assert "oom (not run)" in result.stderr


def test_a_raised_out_of_memory_is_an_oom_cell(monkeypatch, tiny_stack):
    """An out-of-memory that escapes run_bench (a stage other than generate) is caught per cell too."""
    import pipeline.bench.bench

    real, ran = pipeline.bench.bench.run_bench, []

    def run_bench(config, *args, **kwargs):
        ran.append(config.options.batch_size)
        if config.options.batch_size >= 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(pipeline.bench.bench, "run_bench", run_bench)
    monkeypatch.setattr(sweep.Sweep, "load", lambda self, dtype, recipe: tiny_stack)
    config = config_for(TransformOptions(style="boho", models="tiny", steps=2, retries=0, device="cpu"))
    plan = sweep.Sweep(
        tiny_stack.spec,
        torch.device("cpu"),
        config,
        Price(0.0, "USD", "test"),
        BenchOptions(images=1, warmup=0),
        LoadOptions(),
        sweep.Grid((1, 2, 4, 8), ((96, 96),), ("standard",), ("fp32",)),
    )
    cells = plan.run()
    assert [c["status"] for c in cells] == ["ok", "oom", "oom-skipped", "oom-skipped"]
    assert ran == [1, 2] and cells[1]["error"] == "CUDA out of memory (injected)"
    assert cells[1]["images"] == 2 and cells[3]["images"] == 8  # --images rounded up to whole batches


def tiny_sweep(tiny_stack, monkeypatch, placements: list, warmup: int = 1, sizes=((96, 96), (128, 96))):
    """A sweep at batches 1 and 2 on the tiny models; after each cell, where the models are."""
    from pipeline.stages.offload import placement

    monkeypatch.setattr(sweep.Sweep, "load", lambda self, dtype, recipe: tiny_stack)
    config = config_for(TransformOptions(style="boho", models="tiny", steps=2, retries=0, device="cpu"))
    return sweep.Sweep(
        tiny_stack.spec,
        torch.device("cpu"),
        config,
        Price(0.0, "USD", "test"),
        BenchOptions(images=1, warmup=warmup),
        LoadOptions(),
        sweep.Grid((1, 2), sizes, ("standard",), ("fp32",)),
        on_cell=lambda cell: placements.append(dict(placement(tiny_stack.pipe))),
    )


@pytest.fixture
def watched(tiny_stack):
    """Every module the sampler calls checked at each call: told to be on the execution device, and there."""
    from pipeline.stages.offload import restore_placement
    from tests.stages.test_offload import PlacementWatch

    watch = PlacementWatch(tiny_stack.pipe, tiny_stack.device)
    yield watch
    watch.close()
    restore_placement(tiny_stack.pipe, tiny_stack.device)


def test_an_offload_at_batch_one_leaves_later_cells_normal(tiny_stack, monkeypatch, watched):
    """The first sampler call of the sweep (the first cell's warm-up, batch 1) runs out of memory: that run switches
    to offload and finishes. Offload belongs to that run: the cell's timed run, its batch 2 and the other size find
    every model on the device and report their figures (on a GPU they failed: CUDA inputs, CPU weights)."""
    from pipeline.stages.generate import Generator
    from pipeline.stages.offload import DEVICE, MODELS, MemoryState

    real, refused, offloads = Generator.render, [], []
    real_offload = MemoryState.offload

    def render(self, group):
        if not refused and not self.offloaded:
            refused.append(len(group))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return real(self, group)

    monkeypatch.setattr(Generator, "render", render)
    monkeypatch.setattr(MemoryState, "offload", lambda self: (offloads.append(1), real_offload(self))[1])
    placements: list[dict] = []
    cells = tiny_sweep(tiny_stack, monkeypatch, placements).run()
    assert refused == [1] and offloads == [1]
    assert [(c["size"], c["batch"], c["status"]) for c in cells] == [
        ("96x96", 1, "ok"),
        ("96x96", 2, "ok"),
        ("128x96", 1, "ok"),
        ("128x96", 2, "ok"),
    ], cells
    assert all(c["oom_events"] == [] and c["mean_batch"] == c["batch"] and c["images_per_second"] for c in cells)
    assert placements == [dict.fromkeys(MODELS, DEVICE)] * 4
    assert watched.violations == [] and "unet" in watched.calls


def test_a_cell_that_fails_after_offload_leaves_the_models_as_it_found_them(tiny_stack, monkeypatch, watched):
    """A cell whose run switched to offload and then failed for another reason is `error`; the next cell starts
    with every model on the device."""
    import pipeline.bench.bench
    from pipeline.stages.offload import DEVICE, MODELS, ModelPlacer

    real, ran = pipeline.bench.bench.run_bench, []

    def run_bench(config, stack, *args, **kwargs):
        ran.append(config.options.batch_size)
        if len(ran) == 1:
            ModelPlacer(stack.pipe, stack.device).enable()
            raise RuntimeError("the run broke after switching to offload (injected)")
        return real(config, stack, *args, **kwargs)

    monkeypatch.setattr(pipeline.bench.bench, "run_bench", run_bench)
    placements: list[dict] = []
    cells = tiny_sweep(tiny_stack, monkeypatch, placements, warmup=0, sizes=((96, 96),)).run()
    assert [c["status"] for c in cells] == ["error", "ok"], cells
    assert cells[0]["error"] == "the run broke after switching to offload (injected)" and ran == [1, 2]
    assert placements == [dict.fromkeys(MODELS, DEVICE)] * 2
    assert watched.violations == []


@pytest.mark.parametrize(
    "summary, expected",
    [
        ({"oom": [{"batch": 8, "action": "batch 4"}], "images": [], "counts": {"ok": 4}}, "oom"),
        (
            {
                "oom": [],
                "images": [{"status": "failed", "error": "generate failed: CUDA out of memory"}],
                "counts": {"ok": 0},
            },
            "oom",
        ),
        ({"oom": [], "images": [{"status": "failed", "error": "generate failed: NaN"}], "counts": {"ok": 1}}, "error"),
        ({"oom": [], "images": [{"status": "ok"}], "counts": {"ok": 1}}, "ok"),
    ],
)
def test_summary_status(summary, expected):
    assert sweep.summary_status(summary)[0] == expected


def results_file(
    path: Path, gpu: str, price: float, speeds: dict[str, float | str], steps: dict | None = None, **header
) -> Path:
    """A results file as a GPU machine would write it: per configuration, images/s or a status; `steps` per
    mode gives the cells their steps, `header` adds or replaces header fields (models, settings, grid)."""
    cells = []
    for config, value in speeds.items():
        size, batch, mode, dtype = config.split()
        ok = not isinstance(value, str)
        cells.append(
            {
                "size": size,
                "batch": int(batch[1:]),
                "mode": mode,
                "dtype": dtype,
                "recipe": "lcm" if mode == "fast" else None,
                "steps": (steps or {}).get(mode),
                "status": "ok" if ok else value,
                "error": None if ok else "out of memory",
                "images_per_second": value if ok else None,
                "seconds_per_image": 1 / value if ok else None,
                "cost_per_1000": price / 3600 / value * 1000 if ok else None,
            }
        )
    path.write_text(
        json.dumps(
            {
                "schema": sweep.SCHEMA,
                "gpu": gpu,
                "label": gpu,
                "driver": "550.54.15",
                "price": {"per_hour": price, "currency": "USD", "source": "table"},
                "date": "2026-05-08T10:00:00+00:00",
                "command": "modomo bench --sweep",
                "cells": cells,
                **header,
            }
        )
    )
    return path


@pytest.fixture
def two_gpus(tmp_path):
    l4 = results_file(
        tmp_path / "l4.json",
        "NVIDIA L4",
        0.8,
        {"512x512 b1 standard fp16": 0.5, "512x512 b4 standard fp16": 0.7, "512x512 b8 standard fp16": "oom"},
    )
    h100 = results_file(
        tmp_path / "h100.json",
        "NVIDIA H100 80GB HBM3",
        3.95,
        {
            "512x512 b1 standard fp16": 4.0,
            "512x512 b4 standard fp16": 9.0,
            "512x512 b8 standard fp16": 11.0,
            "768x576 b1 standard bf16": 3.0,
        },
    )
    return l4, h100


def test_compare_rows_line_up_each_gpu(two_gpus):
    results = bench_compare.load_results(two_gpus)
    columns, rows = bench_compare.table_rows(results)
    l4, h100 = "l4.json (NVIDIA L4)", "h100.json (NVIDIA H100 80GB HBM3)"
    assert columns == ["configuration", f"{l4}\nimages/s", f"{l4}\nUSD/1000", f"{h100}\nimages/s", f"{h100}\nUSD/1000"]
    assert rows[0] == ["512x512 b1 standard fp16", "0.500", "0.444", "4.00", "0.274"]  # 0.8 / 3.6 / 0.5 per 1000
    assert rows[2] == ["512x512 b8 standard fp16", "oom", "oom", "11.0", "0.0997"]
    assert rows[3] == ["768x576 b1 standard bf16", "-", "-", "3.00", "0.366"]


def test_compare_prints_both_gpus_and_charts_them(two_gpus, monkeypatch):
    import pipeline.models.load

    def no_models(*args, **kwargs):
        raise AssertionError("--compare loaded a model")

    monkeypatch.setattr(pipeline.models.load, "load_stack", no_models)
    l4, h100 = two_gpus
    result = invoke("--compare", l4, h100)
    assert result.exit_code == 0, result.output
    assert "NVIDIA L4" in result.stderr and "NVIDIA H100 80GB HBM3" in result.stderr and "550.54.15" in result.stderr
    assert "warning" not in result.stderr  # nothing recorded differs
    assert_real_image(l4.parent / "compare.png", 1540, (BLUE, ORANGE))  # L4, H100
    out = l4.parent / "charts" / "gpus.png"
    assert invoke("--compare", l4, h100, "--compare-out", out).exit_code == 0
    assert_real_image(out, 1540)


def sweep_header(models: str = "sd15", steps: int | None = None, dtypes: tuple = ("fp16",)) -> dict:
    """The header fields a sweep records about its settings (pipeline.bench.sweep.header)."""
    return {
        "models": models,
        "settings": {
            "style": "boho",
            "room": "living room",
            "steps": steps,
            "images": 4,
            "warmup_batches": 1,
            "seed": 0,
        },
        "grid": {"batches": [1, 4], "sizes": ["512x512"], "modes": ["standard", "fast"], "dtypes": list(dtypes)},
    }


def test_compare_tells_two_files_of_one_machine_apart(tmp_path):
    """Two sweeps on one machine on one day (before and after a change): each series is named by its file."""
    speeds = {"512x512 b1 standard fp16": 0.5, "512x512 b4 standard fp16": 0.7}
    before = results_file(tmp_path / "before.json", "NVIDIA L4", 0.8, speeds, **sweep_header())
    after = results_file(
        tmp_path / "after.json", "NVIDIA L4", 0.8, {**speeds, "512x512 b1 standard fp16": 0.6}, **sweep_header()
    )
    results = bench_compare.load_results([before, after])
    assert bench_compare.file_labels(results) == ["before.json (NVIDIA L4)", "after.json (NVIDIA L4)"]
    columns, rows = bench_compare.table_rows(results)
    assert len(set(columns)) == len(columns)
    assert rows[0][1] == "0.500" and rows[0][3] == "0.600"
    other = tmp_path / "other"
    other.mkdir()
    again = results_file(other / "before.json", "NVIDIA L4", 0.8, speeds)  # same name, another folder
    names = bench_compare.file_labels(bench_compare.load_results([before, again]))
    assert names[0] != names[1] and all("before.json" in name for name in names)
    result = invoke("--compare", before, after)
    assert result.exit_code == 0, result.output
    assert "before.json (NVIDIA L4)" in result.stderr and "after.json (NVIDIA L4)" in result.stderr


def test_compare_warns_once_per_setting_that_differs(tmp_path):
    speeds = {"512x512 b1 standard fp16": 0.5, "512x512 b1 fast fp16": 2.0}
    l4 = results_file(
        tmp_path / "l4.json",
        "NVIDIA L4",
        0.8,
        speeds,
        {"standard": 20, "fast": 6},
        **sweep_header("sd15", None, ("fp16",)),
    )
    h100 = results_file(
        tmp_path / "h100.json",
        "NVIDIA H100 80GB HBM3",
        3.95,
        speeds,
        {"standard": 30, "fast": 6},
        **sweep_header("random-sd15", 30, ("fp16", "bf16")),
    )
    lines = bench_compare.setting_differences(bench_compare.load_results([l4, h100]))
    assert lines == [
        "different models preset: l4.json (NVIDIA L4) sd15; h100.json (NVIDIA H100 80GB HBM3) random-sd15",
        "different steps: l4.json (NVIDIA L4) standard 20, fast 6; h100.json (NVIDIA H100 80GB HBM3) standard 30, "
        "fast 6",
        "different precisions: l4.json (NVIDIA L4) fp16; h100.json (NVIDIA H100 80GB HBM3) fp16,bf16",
    ]
    result = invoke("--compare", l4, h100)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning ")]
    assert [w.removeprefix("warning ") for w in warnings] == lines
    same = results_file(
        tmp_path / "again.json",
        "NVIDIA L4",
        0.8,
        speeds,
        {"standard": 20, "fast": 6},
        **sweep_header("sd15", None, ("fp16",)),
    )
    assert bench_compare.setting_differences(bench_compare.load_results([l4, same])) == []


def test_compare_warns_when_a_setting_is_recorded_differently_in_the_header(tmp_path):
    """Settings without cells to show them (no cell ran): the sweep's own --steps, batch sizes and sizes."""
    speeds = {"512x512 b1 standard fp16": "oom"}
    a = results_file(tmp_path / "a.json", "NVIDIA L4", 0.8, speeds, **sweep_header(steps=20))
    header = sweep_header(steps=None)
    header["grid"].update(batches=[1, 2, 4], sizes=["768x576"])
    b = results_file(tmp_path / "b.json", "NVIDIA L4", 0.8, speeds, **header)
    lines = bench_compare.setting_differences(bench_compare.load_results([a, b]))
    assert [line.split(":")[0] for line in lines] == ["different steps", "different batch sizes", "different sizes"]
    assert lines[0].endswith("b.json (NVIDIA L4) default")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sweep", "--sweep-batches", "0,2"], "between 1 and 64"),
        (["--sweep", "--sweep-batches", "1,x"], "whole numbers"),
        (["--sweep", "--sweep-batches", "1,1"], "given twice"),
        (["--sweep", "--sweep-sizes", "512"], "expected WxH"),
        (["--sweep", "--sweep-sizes", "32x32"], "between 64 and"),
        (["--sweep", "--sweep-modes", "turbo"], "choose standard, fast"),
        (["--sweep", "--sweep-dtypes", "fp16"], "not supported on the CPU"),
        (["--sweep", "--sweep-dtypes", "int8"], "choose fp16, bf16, fp32"),
        (["--sweep-batches", "1,2"], "need --sweep"),
        (["--sweep", "photo.jpg"], "give no INPUTS"),
        (["--compare"], "needs one or more results files"),
        (["--compare", "missing.json"], "missing.json"),
    ],
)
def test_bad_grid_values_are_one_line_usage_errors(args, message, monkeypatch):
    monkeypatch.setattr(sweep, "Sweep", None)  # nothing may run
    result = invoke(*args, "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_not_a_results_file(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"throughput": {}}))
    with pytest.raises(UsageError, match="not a sweep results file"):
        bench_compare.load_results([path])


@pytest.mark.parametrize(("bf16", "expected"), [(True, ("fp32", "bf16")), (False, ("fp32",))])
def test_the_cpu_sweeps_bf16_where_it_is_fast(monkeypatch, bf16, expected):
    import torch

    from pipeline.models import precision

    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: bf16)
    assert sweep.parse_dtypes(None, torch.device("cpu")) == expected
