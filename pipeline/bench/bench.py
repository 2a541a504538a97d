"""`modomo bench`: the real transform pipeline on photos or synthetic rooms, timed after a warm-up.

Reports the stage table, seconds per image and images per second, peak GPU and host memory, the
generate stage's achieved TFLOP/s against the device's peak, cost per image with a monthly
projection, and, with `compare_diffusers`, the same images made the plain diffusers way. A declutter
(`--mode declutter`) adds its own section (declutter.py): its stages against the baseline's (diffusers'
inpaint pipeline on the same masks, LaMa fills and seeds, checked), and how much of each photo it takes out; a
staging (`--mode stage`) its own (stage.py): its stages and both passes against diffusers' inpaint pipeline for
every pass, and how far the baseline's regions and added masks agree with modomo's.
"""

from __future__ import annotations

import platform
import resource
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pipeline.bench.baselines import (
    Phase,
    baselines_for,
    generate_mean,
    quiet,
    sanity_mean,
    warm_then_time,
    warmup_sets,
)
from pipeline.bench.compile_choice import compiled_totals, eager_check, since
from pipeline.bench.declutter import MODOMO, FrameLog, declutter_summary
from pipeline.bench.flops import forward_flops, per_image
from pipeline.bench.stage import StageLog, stage_summary
from pipeline.config import RunConfig
from pipeline.frames import Item
from pipeline.inputs.sources import collect_inputs
from pipeline.models.load import ModelStack
from pipeline.models.precision import name_of
from pipeline.models.precision import report as precision_report
from pipeline.run.cost import Price, lookup
from pipeline.run.result import RunResult
from pipeline.stages.settings import SpeedOptions

MONTHLY_VOLUMES = (100, 1_000, 5_000, 10_000)
# The deployed system (DEPLOYMENT.md): 15.2 s and GBP 0.02 per 512x512 image on a Modal T4, 20 UniPC steps,
# guidance 7.5, two ControlNets; the T4's list price and fp16 tensor peak from pipeline/data/gpu_prices.toml.
SEED_SECONDS = 15.2
SEED_COST_GBP = 0.02
T4_PRICE_PER_HOUR = 0.5904
T4_PEAK_TFLOPS = 65.0
ABLATIONS = ("skip_idle_controlnets", "cache_control_embeddings")


@dataclass(frozen=True)
class BenchOptions:
    images: int = 4
    warmup: int = 1
    synthetic_size: tuple[int, int] = (1024, 768)
    compare_diffusers: bool = False
    ablate: bool = False
    compile: dict | None = None  # the compile decision (compile_choice.bench_compile), made before the runs


def synthetic_rooms(folder: Path, count: int, size: tuple[int, int]) -> Path:
    """Room-like pictures (floor, walls, window, furniture blocks), different per index, as JPEG files."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    for i in range(count):
        rng = np.random.default_rng(i)
        image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(150, 230, 3)))
        draw = ImageDraw.Draw(image)
        horizon = int(height * rng.uniform(0.55, 0.7))
        draw.rectangle([0, horizon, width, height], fill=tuple(int(v) for v in rng.integers(60, 140, 3)))
        wx = int(width * rng.uniform(0.1, 0.6))
        draw.rectangle([wx, int(height * 0.15), wx + width // 5, int(height * 0.45)], fill=(225, 235, 245))
        for _ in range(3):
            x0 = int(rng.uniform(0, width * 0.8))
            y0 = int(rng.uniform(horizon - height * 0.25, horizon))
            draw.rectangle(
                [x0, y0, x0 + int(width * rng.uniform(0.1, 0.3)), y0 + int(height * 0.2)],
                fill=tuple(int(v) for v in rng.integers(20, 200, 3)),
            )
        noise = rng.normal(0, 6, (height, width, 3))
        pixels = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"synthetic-{i:03d}.jpg", quality=92)
    return folder


def device_info(device: torch.device) -> dict:
    """The device's name, memory and peak TFLOP/s (from the price table), or the CPU's description."""
    if device.type != "cuda":
        from pipeline.bench.peak import cpu_model
        from pipeline.models.host_memory import host_memory

        return {"type": "cpu", "name": cpu_model(), "cores": torch.get_num_threads(), "host_memory": host_memory()}
    props = torch.cuda.get_device_properties(device)
    row = lookup(props.name)
    info = {
        "type": "cuda",
        "name": props.name,
        "memory_gb": round(props.total_memory / 2**30, 1),
        "capability": f"{props.major}.{props.minor}",
    }
    if row:
        info["peak_tflops"] = row[1].get("peak_tflops")
        if "measured_tflops" in row[1]:
            info["measured_tflops"] = row[1]["measured_tflops"]
    return info


def versions() -> dict:
    import diffusers
    import transformers
    import ultralytics

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "ultralytics": ultralytics.__version__,
    }


def run_bench(
    config: RunConfig,
    stack: ModelStack,
    price: Price,
    options: BenchOptions,
    on_event=None,
    baseline: ModelStack | None = None,
    phase: Phase = quiet,
) -> dict:
    """Warm up, time the run, optionally time plain diffusers (in the run's format, and in fp32 on `baseline`)
    and each shortcut switched off; one summary. Every timed path has its own warm-up, so with --compile none of
    them times a compilation; each warm-up and timed run is a `phase`."""
    config = config.with_options(resume=False, overwrite=True)
    compiled = config.options.compile == "on"  # the bench's `auto` is decided before (compile_choice)
    with tempfile.TemporaryDirectory(prefix="modomo-bench-") as scratch:
        scratch = Path(scratch)
        inputs = config.options.inputs or [
            str(synthetic_rooms(scratch / "inputs", options.images, options.synthetic_size))
        ]
        items = collect_inputs(inputs)
        if config.options.inputs and options.images:
            items = items[: options.images]
        warm = warmup_sets(items, options.warmup, config.options.batch_size, compiled)
        switch = fast_switch(config, stack)
        log = mode_log(config)  # what each timed declutter's or staging's passes were given
        watch = log.watch if log else None
        plain = (
            baselines_for(config, stack, baseline, items, options.warmup, compiled, scratch, switch, phase, watch)
            if options.compare_diffusers
            else None
        )
        if plain:  # timed before and after modomo: machines drift, the fastest counts
            plain.time("before")
        if switch:
            switch.to_fast()
        told = log.watch(MODOMO, on_event) if log else on_event
        before = compiled_totals(stack)
        result, warmup_seconds = warm_then_time(config, stack, items, warm, scratch / "modomo", told, phase)
        summary = summarise_bench(config, stack, price, result)
        summary.update(run_sections(config, stack, summary, (warm, warmup_seconds), options.compile, before))
        if plain:
            plain.time("after")
            summary.update(plain.summary(result))
        if log:
            summary[config.style.mode] = mode_summary(config, summary, log)
        if config.recipe:
            summary["projection"] = seed_projection(config, stack, price)
        summary.update(extra_runs(config, stack, Timed(items, warm, scratch, phase), options.ablate, result))
        if compiled and stack.device.type == "cpu":  # the same images eager, in the same run
            summary["compile"]["eager"] = eager_check(config, stack, Timed(items, warm, scratch, phase), result)
    return summary


def run_sections(config: RunConfig, stack: ModelStack, summary: dict, warmed: tuple, choice, before: dict) -> dict:
    """The timed run's `warmup`, `memory` and `compile` sections: `warmed` is (the warm-up runs, their seconds),
    `choice` the compile decision, `before` the stack's compile totals before the path ran."""
    compiled = config.options.compile == "on"
    warm, warmup_seconds = warmed
    peak_gpu = torch.cuda.max_memory_allocated(stack.device) if stack.device.type == "cuda" else None
    made = {**(choice or {"choice": config.options.compile}), **since(before, compiled_totals(stack))}
    made["shapes"] = summary.get("compile", {}).get("shapes", {})
    # torch.compile (a GPU's) works during the first calls: what the warm-up took beyond steady-state speed; the
    # CPU's packages say what they took.
    images = sum(len(subset) for subset in warm)
    steady = summary["throughput"]["seconds_per_image"] * images
    compile_seconds = max(0.0, warmup_seconds - steady) if compiled and warm else None
    if stack.compiled is not None:
        compile_seconds = made["compile_seconds"] if compiled else None
        made["shapes_held_at_most"] = stack.compiled.held.bound
    return {
        "warmup": {"images": images, "runs": len(warm), "seconds": warmup_seconds, "compile_seconds": compile_seconds},
        "memory": {
            "peak_gpu_gb": round(peak_gpu / 2**30, 3) if peak_gpu is not None else None,
            "peak_host_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        },
        "compile": made,
    }


def mode_log(config: RunConfig):
    """What notes each timed run's frames: a declutter's FrameLog, a staging's StageLog; none for a restyle."""
    if config.style.mode == "stage":
        return StageLog()
    return FrameLog() if config.declutters else None


def mode_summary(config: RunConfig, summary: dict, log) -> dict:
    """The bench's `declutter` or `stage` section."""
    if isinstance(log, StageLog):
        return stage_summary(config, summary, log)
    return declutter_summary(config, summary, log)


@dataclass(frozen=True)
class Timed:
    """What every extra timed path shares: the images, their warm-up, a scratch folder, how a phase is told."""

    items: list[Item]
    warm: list
    scratch: Path
    phase: Phase = quiet

    def run(self, config: RunConfig, stack: ModelStack, name: str, label: str):
        out = self.scratch / name
        return warm_then_time(config, stack, self.items, self.warm, out, phase=self.phase, label=label)[0]


def extra_runs(config: RunConfig, stack: ModelStack, timed: Timed, ablate: bool, result) -> dict:
    """--ablate's runs (each shortcut off; the optional parts) and a style reference's cost, as summary fields."""
    found = {}
    if ablate:
        found["ablation"] = ablation(config, stack, timed, generate_mean(result))
        found["parts"] = parts_cost(config, stack, timed, result)
    if config.options.style_ref:
        found.setdefault("parts", {})["style_ref"] = reference_cost(config, stack, timed, result)
    return found


def reference_cost(config: RunConfig, stack: ModelStack, timed: Timed, result) -> dict:
    """What following a reference costs per image: generate with it (its image encoding, once per run, included)
    against the same run, same models, without it."""
    without = timed.run(
        config.with_options(style_ref=None), stack, "no-reference", "modomo without the style reference"
    )
    on, off = stage_mean(result, ("generate",)), stage_mean(without, ("generate",))
    return {"with": on, "without": off, "seconds_per_image": on - off, "ratio": on / off if off else None}


def parts_cost(config: RunConfig, stack: ModelStack, timed: Timed, result) -> dict:
    """What the optional parts cost per image: the lines control (edges + generate, against the same run without
    it) and the scene segmentation stage (its own time, in a run that keeps the architecture)."""
    from pipeline.stages.parts import ARCHITECTURE_SET

    found = {}
    if "lines" in config.generate_settings().controls:
        without = timed.run(replace(config, lines_off="ablated"), stack, "no-lines", "modomo without the lines control")
        on, off = stage_mean(result, ("edges", "generate")), stage_mean(without, ("edges", "generate"))
        found["lines"] = {"with": on, "without": off, "seconds_per_image": on - off}
    if stack.segmenter is not None and not config.declutters:  # a declutter's every run has the scene stage
        kept = timed.run(
            replace(config, keep_labels=config.keep_labels | set(ARCHITECTURE_SET)),
            stack,
            "architecture",
            "modomo keeping the architecture",
        )
        found["scene"] = {
            "seconds_per_image": stage_mean(kept, ("scene",)),
            "preserve": stage_mean(kept, ("preserve", "compose")),
        }
    return found


def stage_mean(result, stages: tuple[str, ...]) -> float:
    """The mean seconds per finished image of some stages together."""
    done = [sum(r.timings.get(name, 0.0) for name in stages) for r in result.records if r.ok]
    return float(np.mean(done)) if done else float("nan")


def ablation(config: RunConfig, stack: ModelStack, timed: Timed, all_on: float):
    """The generate stage with each shortcut switched off in turn."""
    found = {"all": all_on}
    for name in ABLATIONS:
        ablated = replace(config, speed=replace(config.speed, **{name: False}))
        found[f"without {name}"] = generate_mean(timed.run(ablated, stack, f"no-{name}", f"modomo without {name}"))
    return found


def fast_switch(config: RunConfig, stack: ModelStack):
    """A switch between the standard and the fused model when fast mode is asked of a standard stack."""
    if not config.recipe or stack.fast == config.recipe:
        return None
    from pipeline.models.fast_mode import FastSwitch

    return FastSwitch(stack.pipe, stack.spec, config.recipe)


def seed_projection(config: RunConfig, stack: ModelStack, price: Price) -> dict:
    """What this run's settings would cost on the deployed system's T4 at 512x512, from FLOPs: the seed's own
    throughput (its standard image took SEED_SECONDS on a T4) gives the FLOP/s a T4 achieved there."""
    standard = replace(config, recipe=None).generate_settings()
    forward = forward_flops(stack.pipe, 512, 512)
    seed_flops = per_image(forward, standard, SpeedOptions(False, False, False))["diffusers"]
    ours_flops = per_image(forward, config.generate_settings(), config.speed)["modomo"]
    achieved = seed_flops / SEED_SECONDS
    seconds = ours_flops / achieved
    return {
        "size": [512, 512],
        "seed_seconds": SEED_SECONDS,
        "seed_cost_gbp": SEED_COST_GBP,
        "seed_tflop": seed_flops / 1e12,
        "tflop": ours_flops / 1e12,
        "flop_ratio": ours_flops / seed_flops,
        "t4_tflops_achieved": achieved / 1e12,
        "t4_share_of_peak": achieved / 1e12 / T4_PEAK_TFLOPS,
        "t4_seconds": seconds,
        "cost_gbp_at_seed_rate": SEED_COST_GBP * seconds / SEED_SECONDS,
        "cost_usd_at_t4_list_price": T4_PRICE_PER_HOUR * seconds / 3600,
    }


def summarise_bench(config: RunConfig, stack: ModelStack, price: Price, result: RunResult) -> dict:
    """The run's summary plus throughput, FLOP/s against peak and cost projections."""
    result.price = price
    summary = result.to_json()
    done = [r for r in result.records if r.ok]
    count = max(1, len(done))
    seconds_per_image = result.seconds / count
    settings = config.generate_settings()
    sizes = {tuple(Image.open(r.outputs["result"]).size) for r in done}
    width, height = sizes.pop() if len(sizes) == 1 else (config.long_side, config.long_side)
    flops = per_image(forward_flops(stack.pipe, height, width), settings, config.speed)
    generate = summary["stages"].get("generate", {}).get("mean", float("nan"))
    achieved = flops["modomo" if config.backend == "modomo" else "diffusers"] / generate / 1e12
    device = device_info(stack.device)
    if stack.device.type == "cpu":  # no datasheet: this CPU's own matmul peak in the run's format, measured
        from pipeline.bench.peak import cpu_peak_tflops

        device["measured_peak"] = cpu_peak_tflops(stack.dtype, fresh=True)
        device["measured_tflops"] = device["measured_peak"]["tflops"]
    per_image_cost = price.cost(seconds_per_image)
    summary["quality"]["sanity"] = sanity_mean(result)
    summary.update(
        device=device,
        versions=versions(),
        models=stack.spec.ids(),
        load_seconds=sum(stack.load_seconds.values()),
        throughput={"seconds_per_image": seconds_per_image, "images_per_second": 1.0 / seconds_per_image},
        flops={
            "image_size": [width, height],
            "per_image_tflop": {k: v / 1e12 for k, v in flops.items()},
            "generate_tflops_achieved": achieved,
            "share_of_peak": achieved / device["peak_tflops"] if device.get("peak_tflops") else None,
            "share_of_measured_peak": achieved / device["measured_tflops"] if device.get("measured_tflops") else None,
        },
        cost_projection={
            "currency": price.currency,
            "price_per_hour": price.per_hour,
            "per_image": per_image_cost,
            "monthly": {str(n): per_image_cost * n for n in MONTHLY_VOLUMES},
        },
        precision=precision_report(stack),
        speed={
            "dtype": str(stack.dtype).removeprefix("torch."),
            "batch_size": config.options.batch_size,
            **{k: getattr(config.speed, k) for k in SpeedOptions.__dataclass_fields__},
        },
    )
    return summary


# The share of the matmul peak the generate stage reaches, for the estimate before a run: the recorded CPU runs
# reached 50-59 % of the measured peak (docs/benchmarking.md); a GPU's datasheet peak is further out of reach.
ASSUMED_SHARE = {"cpu": 0.5, "cuda": 0.25}


def estimate(
    config: RunConfig,
    stack: ModelStack,
    options: BenchOptions,
    baseline: ModelStack | None = None,
) -> dict:
    """What the bench will time, and an estimate of how long its generate work takes: each path's images (its
    warm-up included) times the FLOPs per image (flops.py) over the matmul peak (peak.py on a CPU, the price
    table's on a GPU) at ASSUMED_SHARE; the other stages and the model load are not in it. `seconds` is None
    where the device has no known peak."""
    compiled = config.options.compile == "on"
    width, height = options.synthetic_size
    if config.options.inputs:  # photos' sizes are read later: the square is the largest they can be
        width = height = config.long_side
    from pipeline.inputs.imaging import fit_size

    width, height = fit_size(width, height, config.long_side)
    forward = forward_flops(stack.pipe, height, width)
    ours = passes_flops(forward, config, config.speed, "modomo")
    count = options.images
    warmed = count + sum(map(len, warmup_sets(list(range(count)), options.warmup, config.options.batch_size, compiled)))
    runs = [("modomo", warmed, ours, stack)]
    if options.compare_diffusers:
        theirs = passes_flops(forward, replace(config, recipe=None), config.speed, "diffusers")
        plain = 2 * count + sum(map(len, warmup_sets(list(range(count)), options.warmup, 1, compiled)))
        runs += [(f"plain diffusers in {name_of(s.dtype)}", plain, theirs, s) for s in (stack, baseline) if s]
    if options.ablate:
        for name in ABLATIONS:
            off = per_image(forward, config.generate_settings(), replace(config.speed, **{name: False}))["modomo"]
            runs.append((f"modomo without {name}", warmed, off, stack))
        runs.append(("modomo's optional parts", warmed * 2, ours, stack))
    if config.options.style_ref:
        runs.append(("modomo without the style reference", warmed, ours, stack))
    share = ASSUMED_SHARE.get(stack.device.type, ASSUMED_SHARE["cuda"])
    peaks = {name_of(s.dtype): peak_tflops(s) for *_, s in runs}
    known = all(peaks.values())
    seconds = sum(n * flops / (peaks[name_of(s.dtype)] * 1e12 * share) for _, n, flops, s in runs) if known else None
    return {
        "runs": [{"what": what, "images": n, "tflop": n * flops / 1e12} for what, n, flops, _ in runs],
        "image_size": [width, height],
        "tflop": sum(n * flops for _, n, flops, _ in runs) / 1e12,
        "peak_tflops": peaks,
        "assumed_share": share,
        "seconds": seconds,
    }


def passes_flops(forward: dict, config: RunConfig, speed: SpeedOptions, who: str) -> float:
    """FLOPs per image of the style's passes: its generate stage, and a staging's second pass (a declutter's pass
    before a staging depends on the photo: it is not counted)."""
    from pipeline.run.style_run import pass_settings

    passes = pass_settings(config, config.style)
    return sum(per_image(forward, passes[name], speed)[who] for name in ("generate", "second pass") if name in passes)


def peak_tflops(stack: ModelStack) -> float | None:
    """The matmul peak the estimate divides by: this CPU's measured one in the stack's format, a GPU's from
    the price table (measured where recorded, else its datasheet's)."""
    if stack.device.type == "cpu":
        from pipeline.bench.peak import cpu_peak_tflops

        return cpu_peak_tflops(stack.dtype)["tflops"]
    info = device_info(stack.device)
    return info.get("measured_tflops") or info.get("peak_tflops")
