"""Timing a path of the bench, and the plain diffusers baselines modomo is measured against.

Each baseline is the same images, seeds and models through one plain `pipe()` call per image, timed before
and after modomo's run (machines drift: the faster run counts). It runs in the run's own format, and, when that
is not fp32, in fp32 as well, on a generator with the same weights (`load_baseline`): the ratio a user moving
from fp32 sees, and the one that isolates modomo's own work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.config import RunConfig
from pipeline.frames import Item
from pipeline.models.load import ModelStack
from pipeline.models.precision import name_of
from pipeline.models.prepacked import plain_layers
from pipeline.models.runtime import synchronize
from pipeline.outputs.sinks import LocalSink
from pipeline.run.result import RunResult
from pipeline.run.runner import Runner
from pipeline.stages.offload import restore_placement
from pipeline.stages.timing import summarise

# A timed phase's announcement: `with phase("modomo, 4 images"):` around it. The bench's own default tells no one.
Phase = Callable[[str], AbstractContextManager]


def quiet(label: str) -> AbstractContextManager:
    return nullcontext()


def images(count: int) -> str:
    return f"{count} image{'' if count == 1 else 's'}"


def timed_run(config: RunConfig, stack: ModelStack, items: list[Item], out: Path, on_event=None) -> RunResult:
    """One Runner over the items, its result saying what its generate stage called (`extra["generator"]`). A run
    that switched to offload leaves the models on the CPU: each run ends with them back on the device, so the
    next path (warm-up, timed, ablation, baseline) starts as loaded."""
    synchronize(stack.device)
    if stack.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(stack.device)
    try:
        runner = Runner(config, stack, LocalSink(out), on_event=on_event)
        result = runner.run(items)
        result.extra["generator"] = sorted({generator_name(run.generator) for run in runner.styles})
        return result
    finally:
        restore_placement(stack.pipe, stack.device)


def generator_name(generator) -> str:
    """What a style's generate stage calls, by its class: modomo's sampler, or the plain diffusers pipeline the
    baseline calls once per image (its inpaint pipeline for a pass that starts from a picture)."""
    called = getattr(generator, "sampler", None)
    called = getattr(generator, "pipe", None) if called is None else called
    kind = type(called)
    return f"{kind.__module__.split('.')[0]} {kind.__qualname__}"


def warmup_sets(items: list[Item], warmup: int, batch_size: int, compiled: bool) -> list[list[Item]]:
    """The runs that warm a path up before it is timed. Compiled, every batch shape the timed run will
    use is run once (a full batch, and the last partial one), so no timed run contains a compile."""
    if warmup <= 0:
        return []
    if not compiled:
        return [items[:warmup]]
    sets = [items[: max(warmup, min(batch_size, len(items)))]]
    if len(items) % batch_size:
        sets.append(items[: len(items) % batch_size])
    return sets


def warm_then_time(
    config: RunConfig,
    stack: ModelStack,
    items: list[Item],
    warm: list[list[Item]],
    out: Path,
    on_event=None,
    phase: Phase = quiet,
    label: str = "modomo",
) -> tuple[RunResult, float]:
    """Warm the path up (untimed), then time it; (result, warm-up seconds). Each part is a `phase` named by
    `label` ('modomo warm-up, 1 image', then 'modomo, 4 images')."""
    start = time.perf_counter()
    if warm:
        with phase(f"{label} warm-up, {images(sum(map(len, warm)))}"):
            for k, subset in enumerate(warm):
                timed_run(config, stack, subset, out / f"warmup-{k}")
    warmup_seconds = time.perf_counter() - start
    with phase(f"{label}, {images(len(items))}"):
        return timed_run(config, stack, items, out / "timed", on_event), warmup_seconds


def generate_mean(result: RunResult) -> float:
    done = [r.timings["generate"] for r in result.records if r.ok]
    return float(np.mean(done)) if done else float("nan")


def sanity_mean(result: RunResult) -> float | None:
    """Mean sanity of the results: 0 for black, NaN or blank frames, so broken output cannot pass as speed."""
    values = [r.quality_parts["sanity"] for r in result.records if r.ok and "sanity" in r.quality_parts]
    return float(np.mean(values)) if values else None


def pixel_differences(ours: RunResult, theirs: RunResult) -> tuple[int, float | None]:
    """The largest pixel difference between paired results, and their PSNR in dB (None when identical)."""
    worst, squared, count = 0, 0.0, 0
    paired = {r.id: r for r in theirs.records if r.ok}
    for record in ours.records:
        other = paired.get(record.id)
        if not record.ok or other is None:
            continue
        a = np.asarray(Image.open(record.outputs["result"]).convert("RGB"), dtype=np.float64)
        b = np.asarray(Image.open(other.outputs["result"]).convert("RGB"), dtype=np.float64)
        worst = max(worst, int(np.abs(a - b).max()))
        squared, count = squared + float(((a - b) ** 2).sum()), count + a.size
    mse = squared / count if count else 0.0
    return worst, (10 * np.log10(255.0**2 / mse) if mse > 0 else None)


def compare(ours: RunResult, baselines: list[RunResult], count: int) -> dict:
    """A plain diffusers baseline beside modomo's run (timed before and after it; the faster one counts): time
    per image, generate ratio, pixel difference and PSNR, sanity."""
    baseline = min(baselines, key=generate_mean)
    ours_gen, theirs_gen = generate_mean(ours), generate_mean(baseline)
    worst, psnr = pixel_differences(ours, baseline)
    return {
        "runs_generate_seconds_per_image": [generate_mean(b) for b in baselines],
        "seconds_per_image": baseline.seconds / max(1, count),
        "generate_seconds_per_image": theirs_gen,
        "generate_ratio": ours_gen / theirs_gen,
        "speedup_images_per_second": (baseline.seconds / ours.seconds) if ours.seconds else None,
        "max_pixel_difference": worst,
        "psnr_db": psnr,
        "sanity": sanity_mean(baseline),
        "stages": summarise([r.timings for r in baseline.records if r.ok]),
        "generator": baseline.extra.get("generator"),
    }


@dataclass
class Baselines:
    """Plain diffusers in the run's format (`diffusers`) and, with a baseline stack, in fp32
    (`diffusers_fp32`): each timed before and after modomo's run."""

    config: RunConfig  # the plain config (engine diffusers)
    stacks: dict[str, ModelStack]
    items: list[Item]
    warmup: int
    compiled: bool
    scratch: Path
    switch: object = None  # a FastSwitch: fast mode is compared with the standard model and settings
    phase: Phase = quiet
    watch: Callable[[str], Callable] | None = None  # a timed run's name -> its on_event (what its frames were given)

    def __post_init__(self):
        self.runs: dict[str, list[RunResult]] = {name: [] for name in self.stacks}

    def time(self, phase: str) -> None:
        """Time every baseline once: `before` with its own warm-up, `after` warm already."""
        if self.switch:
            self.switch.to_standard()
        for name, stack in self.stacks.items():
            out = self.scratch / f"{name}-{phase}"
            label = f"plain diffusers in {name_of(stack.dtype)} ({phase} modomo)"
            on_event = self.watch(f"{name} {phase}") if self.watch else None
            with plain_layers(stack.pipe):  # the run's own models, as diffusers has them: no packed weights
                if phase == "before":
                    warm = warmup_sets(self.items, self.warmup, 1, self.compiled)
                    timed = warm_then_time(
                        self.config, stack, self.items, warm, out, on_event, phase=self.phase, label=label
                    )
                    self.runs[name].append(timed[0])
                else:
                    with self.phase(f"{label}, {images(len(self.items))}"):
                        self.runs[name].append(timed_run(self.config, stack, self.items, out, on_event))
        if self.switch:
            self.switch.to_fast()

    def summary(self, ours: RunResult) -> dict:
        return {
            name: {**compare(ours, runs, len(self.items)), "dtype": name_of(self.stacks[name].dtype)}
            for name, runs in self.runs.items()
        }


def baselines_for(
    config: RunConfig,
    stack: ModelStack,
    baseline: ModelStack | None,
    items: list[Item],
    warmup: int,
    compiled: bool,
    scratch: Path,
    switch=None,
    phase: Phase = quiet,
    watch: Callable[[str], Callable] | None = None,
) -> Baselines:
    """The baselines of a bench run: fast mode is compared with plain diffusers at the style's standard
    settings (the model unfused). A declutter's baseline runs the same stages before its pass (mask, LaMa's
    fill, edges: the same code on the same photos and models), then diffusers' inpaint pipeline on them;
    `watch` sees what each timed run's frames were given."""
    plain = replace(config, backend="diffusers", recipe=None if switch else config.recipe)
    stacks = {"diffusers": stack, **({"diffusers_fp32": baseline} if baseline is not None else {})}
    return Baselines(plain, stacks, items, warmup, compiled, scratch, switch, phase, watch)
