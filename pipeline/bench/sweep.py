"""`modomo bench --sweep`: the bench over a grid of batch size, working size, mode and precision, into one file.

One results file per machine answers "which GPU, at which settings, gives the cheapest image": every cell
is `run_bench` on the same synthetic rooms with one setting changed, so files from different GPUs line up
cell by cell (`pipeline.bench.compare`). The model stack is loaded once per (dtype, mode), the expensive
part, and every cell of that pair reuses it.

A branch (one size, mode and dtype) runs its batch sizes from small to large and stops at the first that
runs out of memory: the larger ones are recorded as `oom-skipped` without running. The generator recovers
from an out-of-memory by itself (half the batch, then model offload), so a cell counts as `oom` when that
recovery happened at all: its figures would belong to a smaller batch than the one named.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import torch

from pipeline.bench import bench
from pipeline.bench.machine import driver_version, host_peak_gb, load_average, reset_host_peak
from pipeline.config import RunConfig
from pipeline.errors import UsageError
from pipeline.models.presets import ModelSpec
from pipeline.run.cost import Price
from pipeline.stages.generate import is_out_of_memory
from pipeline.stages.offload import free_memory, restore_placement

SCHEMA = "modomo-sweep/1"
DEFAULT_BATCHES = (1, 2, 4, 8)
DEFAULT_SIZES = ((512, 512), (768, 576))
DEFAULT_MODES = ("standard", "fast")
STATUSES = ("ok", "oom", "oom-skipped", "error")
MAX_SIDE = 2048


@dataclass(frozen=True)
class Grid:
    """The sweep's axes; batches ascend, so the first out-of-memory of a branch stops the larger ones."""

    batches: tuple[int, ...] = DEFAULT_BATCHES
    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES
    modes: tuple[str, ...] = DEFAULT_MODES
    dtypes: tuple[str, ...] = ("fp32",)

    def to_json(self) -> dict:
        return {
            "batches": list(self.batches),
            "sizes": [size_label(s) for s in self.sizes],
            "modes": list(self.modes),
            "dtypes": list(self.dtypes),
        }


def size_label(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _items(text: str, option: str) -> list[str]:
    values = [v.strip().lower() for v in text.split(",") if v.strip()]
    if not values:
        raise UsageError(f"{option} {text!r}: give at least one value, comma-separated")
    if len(set(values)) != len(values):
        raise UsageError(f"{option} {text!r}: a value is given twice")
    return values


def parse_batches(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4), ascending whatever the order typed: the out-of-memory stop needs it."""
    try:
        batches = sorted(int(v) for v in _items(text, "--sweep-batches"))
    except ValueError:
        raise UsageError(f"--sweep-batches {text!r}: expected whole numbers, e.g. 1,2,4,8") from None
    if batches[0] < 1 or batches[-1] > 64:
        raise UsageError(f"--sweep-batches {text!r}: each batch size must be between 1 and 64")
    return tuple(batches)


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """'512x512,768x576' -> ((512, 512), (768, 576)): the synthetic rooms' size; its long side is --size."""
    sizes = []
    for value in _items(text, "--sweep-sizes"):
        try:
            width, height = (int(v) for v in value.split("x"))
        except ValueError:
            raise UsageError(f"--sweep-sizes {value!r}: expected WxH, e.g. 512x512,768x576") from None
        if not (64 <= width <= MAX_SIDE and 64 <= height <= MAX_SIDE):
            raise UsageError(f"--sweep-sizes {value!r}: each side must be between 64 and {MAX_SIDE}")
        sizes.append((width, height))
    return tuple(sizes)


def parse_modes(text: str) -> tuple[str, ...]:
    """standard, fast (the default few-step recipe), or a recipe's own name (lcm, tcd, hyper)."""
    from pipeline.models.recipes import RECIPES

    modes = tuple(_items(text, "--sweep-modes"))
    for mode in modes:
        if mode not in ("standard", "fast", *RECIPES):
            raise UsageError(f"--sweep-modes {mode!r}: choose standard, fast, {', '.join(RECIPES)}")
    return modes


def parse_dtypes(text: str | None, device: torch.device) -> tuple[str, ...]:
    """Default: fp16 and bf16 (where the GPU supports it) on CUDA; fp32 on the CPU, and bf16 where it is fast."""
    from pipeline.models.precision import DTYPES, cpu_supports_bf16, resolve

    if text is None:
        if device.type == "cuda":
            return ("fp16", "bf16") if torch.cuda.is_bf16_supported() else ("fp16",)
        return ("fp32", "bf16") if cpu_supports_bf16() else ("fp32",)
    dtypes = tuple(_items(text, "--sweep-dtypes"))
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise UsageError(f"--sweep-dtypes {dtype!r}: choose fp16, bf16, fp32")
        try:
            resolve(dtype, device)
        except UsageError as exc:
            raise UsageError(str(exc).replace("--dtype", "--sweep-dtypes", 1)) from None
    return dtypes


def check_sweep_options(sweep: bool, inputs: list | None, *axes: str | None) -> None:
    """The sweep's options make sense only with --sweep, and it times its own synthetic rooms."""
    if sweep and inputs:
        raise UsageError("--sweep times synthetic rooms of --sweep-sizes: give no INPUTS")
    if any(axes) and not sweep:
        raise UsageError("--sweep-batches, --sweep-sizes, --sweep-modes and --sweep-dtypes need --sweep")


def parse_grid(
    device: torch.device,
    batches: str | None = None,
    sizes: str | None = None,
    modes: str | None = None,
    dtypes: str | None = None,
) -> Grid:
    """The grid from the command's comma-separated options; each axis left out keeps its default."""
    return Grid(
        parse_batches(batches) if batches else DEFAULT_BATCHES,
        parse_sizes(sizes) if sizes else DEFAULT_SIZES,
        parse_modes(modes) if modes else DEFAULT_MODES,
        parse_dtypes(dtypes, device),
    )


def recipe_of(mode: str, fast_recipe: str | None = None) -> str | None:
    """None for standard; for `fast` the recipe asked for (default lcm); else the mode is a recipe's name."""
    if mode == "standard":
        return None
    from pipeline.models.recipes import DEFAULT_RECIPE

    return (fast_recipe or DEFAULT_RECIPE) if mode == "fast" else mode


def cell_images(images: int, batch: int) -> int:
    """Images timed in a cell: --images rounded up to whole batches, so every model call has the batch named."""
    return math.ceil(images / batch) * batch


def _plan(size: tuple[int, int], batch: int, mode: str, recipe: str | None, dtype: str, images: int) -> dict:
    """A cell before it runs: what it is, and every figure empty until a run fills them."""
    return {
        "size": size_label(size),
        "batch": batch,
        "mode": mode,
        "recipe": recipe,
        "dtype": dtype,
        "status": None,
        "error": None,
        "images": cell_images(images, batch),
        "steps": None,
        "working_size": None,
        "images_per_second": None,
        "seconds_per_image": None,
        "generate_seconds_per_image": None,
        "peak_gpu_gb": None,
        "peak_host_gb": None,
        "generate_tflops_achieved": None,
        "share_of_peak": None,
        "cost_per_1000": None,
        "mean_batch": None,
        "sanity": None,
        "oom_events": [],
    }


def summary_status(summary: dict) -> tuple[str, str | None]:
    """ok, or oom when the run had to shrink the batch or offload (or an image failed for memory), or error."""
    if summary.get("oom"):
        first = summary["oom"][0]
        return "oom", f"out of memory at batch {first['batch']}: the run continued with {first['action']}"
    errors = [image.get("error") or "failed" for image in summary.get("images", []) if image.get("status") == "failed"]
    if any("out of memory" in error.lower() for error in errors):
        return "oom", next(e for e in errors if "out of memory" in e.lower())
    if errors:
        return "error", errors[0]
    if not summary["counts"]["ok"]:
        return "error", "no image was made"
    return "ok", None


def fill_cell(cell: dict, summary: dict, price: Price, host_gb: float | None) -> dict:
    """The cell's figures from run_bench's summary; only an ok cell gets speed and cost (an oom cell's
    speed would be that of the smaller batch the run fell back to)."""
    cell["status"], cell["error"] = summary_status(summary)
    cell["oom_events"] = summary.get("oom", [])
    cell["steps"] = summary.get("settings", {}).get("steps")
    if cell["status"] != "ok":
        return cell
    seconds = summary["throughput"]["seconds_per_image"]
    cell.update(
        working_size=summary["flops"]["image_size"],
        images_per_second=summary["throughput"]["images_per_second"],
        seconds_per_image=seconds,
        generate_seconds_per_image=summary["stages"].get("generate", {}).get("mean"),
        peak_gpu_gb=summary["memory"]["peak_gpu_gb"],
        peak_host_gb=host_gb if host_gb is not None else summary["memory"]["peak_host_gb"],
        generate_tflops_achieved=summary["flops"]["generate_tflops_achieved"],
        share_of_peak=summary["flops"]["share_of_peak"],
        cost_per_1000=price.cost(seconds) * 1000,
        mean_batch=summary.get("batching", {}).get("mean_batch"),
        sanity=summary.get("quality", {}).get("sanity"),
    )
    return cell


@dataclass
class Sweep:
    """What every cell shares: the run's settings, the price, the bench options, how models load."""

    spec: ModelSpec
    device: torch.device
    config: RunConfig
    price: Price
    options: bench.BenchOptions
    load_options: object  # pipeline.models.placement.LoadOptions; its dtype (and fast recipe) set per stack
    grid: Grid
    compiled: bool = False
    on_model: Callable | None = None
    on_event: Callable | None = None
    on_cell: Callable[[dict], None] | None = None
    fast_recipe: str | None = None  # the recipe of the `fast` mode (None: pipeline.models.recipes.DEFAULT_RECIPE)

    def cell_config(self, size: tuple[int, int], batch: int, recipe: str | None) -> RunConfig:
        """The run's config for one cell; a fast cell takes its recipe's steps and guidance."""
        config = self.config.with_options(size=max(size), batch_size=batch)
        if recipe:
            return replace(config.with_options(steps=None, guidance_scale=None), recipe=recipe)
        return replace(config, recipe=None)

    def cell_options(self, size: tuple[int, int], batch: int) -> bench.BenchOptions:
        """Whole batches timed, one full batch as warm-up (so its shapes are warm); no extra paths."""
        return replace(
            self.options,
            images=cell_images(self.options.images, batch),
            synthetic_size=size,
            warmup=batch if self.options.warmup else 0,
            compare_diffusers=False,
            ablate=False,
        )

    def run_cell(self, stack, cell: dict, size: tuple[int, int]) -> dict:
        """One bench run; an out-of-memory (raised or recovered from) makes the cell `oom`. However the cell
        ends, it leaves the models as it found them: every one on the device (a run that switched to offload
        left them on the CPU), so the next cell starts where the first did."""
        reset_host_peak()
        try:
            summary = bench.run_bench(
                self.cell_config(size, cell["batch"], cell["recipe"]),
                stack,
                self.price,
                self.cell_options(size, cell["batch"]),
                on_event=self.on_event,
            )
        except Exception as exc:  # noqa: BLE001 - one cell's failure is its result, the sweep goes on
            cell["status"] = "oom" if is_out_of_memory(exc) else "error"
            cell["error"] = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        else:
            fill_cell(cell, summary, self.price, host_peak_gb())
        finally:
            restore_placement(stack.pipe, stack.device)
        return cell

    def load(self, dtype: str, recipe: str | None):
        from pipeline.models.load import load_stack

        options = replace(self.load_options, dtype=dtype, **({"fast": recipe} if recipe else {}))
        stack = load_stack(self.spec, self.device, on_model=self.on_model, options=options)
        if self.compiled and self.device.type == "cuda":  # a CPU's cells compile their packages per shape
            for module in (stack.pipe.unet, *stack.pipe.controlnet.nets):
                module.compile()
        return stack

    def run_group(self, dtype: str, mode: str) -> list[dict]:
        """Every cell of one (dtype, mode) on one loaded stack; each branch stops at its first oom."""
        recipe = recipe_of(mode, self.fast_recipe)
        plans = {
            size: [_plan(size, b, mode, recipe, dtype, self.options.images) for b in self.grid.batches]
            for size in self.grid.sizes
        }
        cells = [cell for branch in plans.values() for cell in branch]
        try:
            stack = self.load(dtype, recipe)
        except Exception as exc:  # noqa: BLE001 - a stack that cannot load fails its cells, not the sweep
            status = "oom" if is_out_of_memory(exc) else "error"
            return self._mark(cells, status, f"loading the models: {(str(exc).splitlines() or [repr(exc)])[0]}")
        try:
            for size, branch in plans.items():
                stopped = None
                for cell in branch:
                    if stopped is None:
                        self.run_cell(stack, cell, size)
                        stopped = cell["batch"] if cell["status"] == "oom" else None
                    else:
                        cell.update(status="oom-skipped", error=f"not run: batch {stopped} ran out of memory")
                    self._report(cell)
        finally:
            del stack
            free_memory(self.device)
        return cells

    def _mark(self, cells: list[dict], status: str, error: str) -> list[dict]:
        for cell in cells:
            cell.update(status=status, error=error)
            self._report(cell)
        return cells

    def _report(self, cell: dict) -> None:
        if self.on_cell:
            self.on_cell(cell)

    def run(self) -> list[dict]:
        """Every (dtype, mode) in turn, each on its own stack, freed before the next loads."""
        return [cell for dtype in self.grid.dtypes for mode in self.grid.modes for cell in self.run_group(dtype, mode)]


def device_slug(device: dict) -> str:
    """'nvidia-h100-80gb-hbm3' for a GPU, 'cpu' for the CPU: the results file's name."""
    if device.get("type") != "cuda":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", device["name"].lower()).strip("-") or "gpu"


def header(sweep: Sweep, command: str, started: datetime) -> dict:
    """Everything a results file says besides its cells: the machine, the software, the price, the run."""
    info = bench.device_info(sweep.device)
    price = sweep.price
    return {
        "schema": SCHEMA,
        "gpu": info["name"] if info["type"] == "cuda" else None,
        "label": info["name"] if info["type"] == "cuda" else f"CPU {info['name']} ({info['cores']} threads)",
        "driver": driver_version(),
        "device": info,
        "versions": bench.versions(),
        "price": {"per_hour": price.per_hour, "currency": price.currency, "source": price.source},
        "models": sweep.spec.name,
        "command": command,
        "date": started.isoformat(timespec="seconds"),
        "settings": {
            "style": sweep.config.style.name,
            "room": sweep.config.options.room,
            "steps": sweep.config.options.steps,
            "images": sweep.options.images,
            "warmup_batches": 1 if sweep.options.warmup else 0,
            "seed": sweep.config.options.seed,
        },
        "grid": sweep.grid.to_json(),
        "load_average": {"start": load_average(), "end": None},
        "seconds": None,
        "cells": [],
    }


def results_paths(out_dir: Path, device: dict, started: datetime) -> tuple[Path, Path]:
    """<out>/<device-slug>-<date>.json and .png; a second sweep the same day gets -2, -3, ..."""
    stem = f"{device_slug(device)}-{started.date().isoformat()}"
    n = 1
    while (out_dir / f"{stem}{'' if n == 1 else f'-{n}'}.json").exists():
        n += 1
    stem = stem if n == 1 else f"{stem}-{n}"
    return out_dir / f"{stem}.json", out_dir / f"{stem}.png"


def run_sweep(sweep: Sweep, command: str, out_dir: Path) -> tuple[dict, Path, Path]:
    """Run the grid, writing the results file after every cell (a stopped sweep keeps what it did), then
    the chart; (results, json path, png path)."""
    import json
    import time

    from pipeline.bench.compare import write_chart

    started = datetime.now(UTC)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = results_paths(out_dir, bench.device_info(sweep.device), started)
    results = header(sweep, command, started)
    clock = time.perf_counter()
    user_report = sweep.on_cell

    def keep(cell: dict) -> None:
        results["cells"].append(cell)
        results["seconds"] = round(time.perf_counter() - clock, 1)
        results["load_average"]["end"] = load_average()
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        if user_report:
            user_report(cell)

    replace(sweep, on_cell=keep).run()
    write_chart([results], png_path)
    return results, json_path, png_path
