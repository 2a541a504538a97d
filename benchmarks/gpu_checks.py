"""What only a GPU shows, in one process with the models loaded once (run by benchmarks/gpu.sh).

1. Out-of-memory at batch 1 finishes through offload: every UNet forward is refused with CUDA's own
   error until the run has switched to offload; the run must finish with the same images as a run
   without the refusal. Then a real one: the process is capped just above what the models take.
2. fp16 output is not black: the sanity part of the quality score of every timed cell.
3. images/s of modomo against plain diffusers (one pipe() per image) per size and batch, 20 steps,
   without and then with torch.compile, with peak memory and the share of the GPU's peak FLOP/s.

Every result is written as soon as it exists, so a run stopped by its time budget keeps what it did.

    python benchmarks/gpu_checks.py --out DIR                   # the GPU defaults (random-sd15, cuda)
    python benchmarks/gpu_checks.py --out DIR --models tiny --device cpu --sizes 128x96 --batches 1,2 \\
        --steps 2 --images 2 --compile-cells ''                 # the same code path on a CPU, in a minute
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.bench.bench import BenchOptions, device_info, run_bench, synthetic_rooms, versions  # noqa: E402
from pipeline.bench.setup import bench_setup, load_stacks  # noqa: E402
from pipeline.config import RunConfig  # noqa: E402
from pipeline.inputs.sources import collect_inputs  # noqa: E402
from pipeline.options import BenchCommandOptions  # noqa: E402
from pipeline.outputs.sinks import LocalSink  # noqa: E402
from pipeline.run.runner import Runner  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", default="random-sd15")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sizes", default="512x512,768x576")
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument(
        "--compile-cells",
        default="512x512:1,512x512:8",
        help="SIZE:BATCH cells timed again with torch.compile ('' for none)",
    )
    parser.add_argument("--budget", type=float, default=480.0, help="seconds; no new cell starts after this")
    return parser.parse_args(argv)


def write(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}", flush=True)


def bench_config(args):
    """The run as `modomo bench --models M --device D --style boho --steps N` plans it: the same options object,
    the same model plan and load options (so this script follows the bench, not a copy of it)."""
    options = BenchCommandOptions(models=args.models, device=args.device, style="boho", steps=args.steps)
    return bench_setup(options)


def config_for(base: RunConfig, inputs: list[str], size: tuple[int, int], batch: int, compiled: bool) -> RunConfig:
    """The planned run at one working size and batch; compiled with torch.compile (on a GPU) or eager."""
    return base.with_options(
        inputs=inputs,
        size=max(size),
        batch_size=batch,
        compile="on" if compiled else "off",
        resume=False,
        overwrite=True,
    )


def refuse_until_offloaded(unet, runner: Runner):
    """Wrap the UNet's forward: CUDA's out-of-memory error until the run has switched to offload."""
    forward, refused = unet.forward, []

    def guarded(*args, **kwargs):
        if not runner.memory.offloaded:
            refused.append(1)
            raise torch.OutOfMemoryError("CUDA out of memory (refused by gpu_checks.py)")
        return forward(*args, **kwargs)

    unet.forward = guarded
    return lambda: (setattr(unet, "forward", forward), len(refused))[1]


def oom_check(base: RunConfig, stack, scratch: Path, size: tuple[int, int], steps: int) -> dict:
    """Batch 2: refused at 2 and at 1, offload, finished; the images equal an unrefused run's at batch 1."""
    inputs = [str(synthetic_rooms(scratch / "oom-in", 2, size))]
    config = config_for(base, inputs, size, 2, False).with_options(steps=steps)
    items = collect_inputs(inputs)
    plain = Runner(config.with_options(batch_size=1), stack, LocalSink(scratch / "oom-plain")).run(items)
    runner = Runner(config, stack, LocalSink(scratch / "oom-offload"))
    restore = refuse_until_offloaded(stack.pipe.unet, runner)
    start = time.perf_counter()
    try:
        result = runner.run(items)
    finally:
        refused = restore()
    seconds = time.perf_counter() - start
    placed = {name: str(next(m.parameters()).device) for name, m in runner.memory.placer.modules().items()}
    stack.pipe.to(stack.device)  # back on the device for what follows
    worst = max((_pixel_difference(a, b) for a, b in zip(plain.records, result.records, strict=True)), default=None)
    ok = result.counts["ok"] == 2 and [e["action"] for e in result.oom] == ["batch 1", "model cpu offload"]
    return {
        "passed": bool(ok and worst is not None and worst <= 2),
        "refused_forwards": refused,
        "events": result.oom,
        "records": [{"key": r.key, "status": r.status, "error": r.error} for r in result.records],
        "max_pixel_difference_vs_plain": worst,
        "seconds_offloaded": seconds,
        "seconds_plain": plain.seconds,
        "sanity": [r.quality_parts.get("sanity") for r in result.records],
        "placement_after_run": placed,
        "module_moves": runner.memory.placer.moves,
    }


def real_oom_check(base: RunConfig, stack, scratch: Path, size: tuple[int, int], steps: int, headroom_gb=1.5) -> dict:
    """Cap the process just above what the models take and run batch 8: what happened (no assertion)."""
    if stack.device.type != "cuda":
        return {"skipped": "not a CUDA device"}
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(stack.device).total_memory
    budget = torch.cuda.memory_allocated(stack.device) + headroom_gb * 2**30
    torch.cuda.set_per_process_memory_fraction(min(1.0, budget / total), stack.device)
    try:
        inputs = [str(synthetic_rooms(scratch / "real-oom-in", 8, (1024, 768)))]
        config = config_for(base, inputs, size, 8, False).with_options(steps=steps)
        result = Runner(config, stack, LocalSink(scratch / "real-oom")).run(collect_inputs(inputs))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, stack.device)
        stack.pipe.to(stack.device)
    return {
        "cap_gb": round(budget / 2**30, 2),
        "headroom_gb": headroom_gb,
        "counts": result.counts,
        "events": result.oom,
        "errors": sorted({r.error for r in result.records if r.error}),
    }


def _pixel_difference(a, b) -> int | None:
    if not a.ok or not b.ok:
        return None
    x = np.asarray(Image.open(a.outputs["result"]).convert("RGB"), dtype=np.int16)
    y = np.asarray(Image.open(b.outputs["result"]).convert("RGB"), dtype=np.int16)
    return int(np.abs(x - y).max())


def cell(base: RunConfig, stack, price, size: tuple[int, int], batch: int, args, compiled: bool) -> dict:
    """One bench cell: modomo and plain diffusers in the run's format, same images, same working size."""
    images = max(args.images, batch)
    options = BenchOptions(images=images, warmup=1, synthetic_size=size, compare_diffusers=True)
    summary = run_bench(config_for(base, [], size, batch, compiled), stack, price, options)
    base = summary["diffusers"]
    return {
        "size": f"{size[0]}x{size[1]}",
        "batch": batch,
        "compiled": compiled,
        "images": images,
        "steps": args.steps,
        "dtype": summary["speed"]["dtype"],
        "images_per_second": summary["throughput"]["images_per_second"],
        "diffusers_images_per_second": 1.0 / base["seconds_per_image"],
        "generate_ratio": base["generate_ratio"],
        "speedup": base["speedup_images_per_second"],
        "generate_seconds_per_image": summary["stages"]["generate"]["mean"],
        "diffusers_generate_seconds_per_image": base["generate_seconds_per_image"],
        "share_of_peak": summary["flops"]["share_of_peak"],
        "tflops_achieved": summary["flops"]["generate_tflops_achieved"],
        "peak_gpu_gb": summary["memory"]["peak_gpu_gb"],
        "max_pixel_difference": base["max_pixel_difference"],
        "sanity": summary["quality"]["sanity"],
        "diffusers_sanity": base["sanity"],
        "batching": summary["batching"],
        "warmup": summary["warmup"],
    }


def sizes_of(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in part.split("x")) for part in text.split(",") if part]


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    setup = bench_config(args)
    base, device, price = setup.config, setup.device, setup.price
    stack, _ = load_stacks(setup, compare_diffusers=False)  # plain diffusers on the same stack, in its format
    header = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": device_info(device),
        "versions": versions(),
        "models": args.models,
        "dtype": str(stack.dtype).removeprefix("torch."),
        "command": " ".join(["python", "benchmarks/gpu_checks.py", *(argv or sys.argv[1:])]),
    }
    sizes = sizes_of(args.sizes)
    with tempfile.TemporaryDirectory(prefix="modomo-gpu-") as scratch:
        checks = {**header, "oom_offload": oom_check(base, stack, Path(scratch), sizes[0], min(args.steps, 4))}
        write(args.out / "checks.json", checks)
        checks["real_oom"] = real_oom_check(base, stack, Path(scratch), sizes[-1], min(args.steps, 4))
        write(args.out / "checks.json", checks)
    grid = {**header, "cells": [], "skipped": []}
    plan = [(size, batch, False) for size in sizes for batch in map(int, args.batches.split(","))]
    compile_cells = [c.split(":") for c in args.compile_cells.split(",") if c]
    plan += [(sizes_of(s)[0], int(b), True) for s, b in compile_cells]
    for size, batch, compiled in plan:
        if time.perf_counter() - started > args.budget:
            grid["skipped"].append({"size": f"{size[0]}x{size[1]}", "batch": batch, "compiled": compiled})
            continue
        if compiled and not getattr(stack, "_compiled", False):
            from pipeline.models.compiling import compile_generator

            compile_generator(stack.pipe, stack.device)
            stack._compiled = True
        grid["cells"].append(cell(base, stack, price, size, batch, args, compiled))
        write(args.out / "grid.json", grid)
    sanity = [c["sanity"] for c in grid["cells"]] + [c["diffusers_sanity"] for c in grid["cells"]]
    passed = checks["oom_offload"]["passed"] and all(s is not None and s > 0.5 for s in sanity)
    print(
        f"checks {'passed' if passed else 'FAILED'}: offload {checks['oom_offload']['passed']}, "
        f"sanity min {min(sanity) if sanity else None}",
        flush=True,
    )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
