"""`modomo bench`: its options, and the rendering of a bench, a sweep or a comparison."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import typer

from modomo_cli.errors import user_errors
from modomo_cli.params import command_from, flag, option
from modomo_cli.render import RunProgress, print_bench
from pipeline.options import BenchCommandOptions

WHAT, DEVICE, AGAINST, SWEEP, COST = (
    "What to time",
    "Device and speed",
    "Against plain diffusers",
    "Sweep and compare",
    "Cost and display",
)

BENCH = {
    "inputs": (
        list[str] | None,
        typer.Argument(
            help="Photos to time (default: synthetic rooms); with --compare, sweep results files.", show_default=False
        ),
    ),
    "images": (int, option(WHAT, help="Images to time (synthetic ones when no INPUTS).")),
    "warmup": (int, option(WHAT, help="Images run first and not counted.")),
    "models": (
        str,
        option(WHAT, help="random-sd15 (default: full size, no download), sd15, tiny, or a bundle folder."),
    ),
    "style": (
        str | None,
        option(WHAT, "--style", "-s", help="A built-in style (default: boho; a declutter takes none)."),
    ),
    "mode": (
        str | None,
        option(
            WHAT,
            "--mode",
            help="restyle (default), declutter (time emptying the room: removal mask, LaMa's fill, the inpaint "
            "pass, compose) or stage (time furnishing it: a furnished photo emptied first, the region, both "
            "passes); --compare-diffusers then times diffusers' StableDiffusionControlNetInpaintPipeline for "
            "every pass, on the same masks and seeds.",
        ),
    ),
    "remove": (
        str | None,
        option(WHAT, "--remove", help="Declutter only these (implies --mode declutter), as for transform."),
    ),
    "mask_dir": (
        Path | None,
        option(
            WHAT,
            "--mask-dir",
            help="Keep masks by photo name (white keeps the photo), as for transform; the synthetic rooms are "
            "synthetic-000.jpg, synthetic-001.jpg...",
        ),
    ),
    "room": (
        str | None,
        option(
            WHAT,
            help="Room type in the prompt, or auto (default as for transform: auto when "
            "the preset has CLIP, else living room).",
        ),
    ),
    "size": (int, option(WHAT, help="Long side of the working size in pixels (as for transform).")),
    "synthetic_size": (str, option(WHAT, help="WxH of the synthetic rooms.")),
    "steps": (int | None, option(WHAT, help="Denoising steps (default: the style's).")),
    "batch_size": (int, option(DEVICE, help="Images per model call.")),
    "device": (str, option(DEVICE, help="auto, cpu, cuda, cuda:N.")),
    "dtype": (
        str,
        option(
            DEVICE, help="auto (fp16 on CUDA; bf16 on a CPU with AMX or AVX-512 BF16, else fp32), fp16, bf16, fp32."
        ),
    ),
    "channels_last": (
        str,
        option(DEVICE, help="auto (CUDA and bf16 on the CPU: all models; fp32 on the CPU: the VAE), on, off."),
    ),
    "compile": (
        str,
        option(
            DEVICE,
            help="auto (compile when the timed images repay it, decided before they run), on, off: as transform's.",
        ),
    ),
    "compare_diffusers": (
        bool,
        flag(
            AGAINST, "--compare-diffusers", help="Also time plain diffusers (one pipe() per image), before and after."
        ),
    ),
    "ablate": (bool, flag(AGAINST, "--ablate", help="Also time the run with each shortcut off.")),
    "second_pass": (
        bool,
        flag(
            WHAT,
            "--second-pass/--no-second-pass",
            help="--mode stage: the recipe's second pass (default), or the first pass alone.",
        ),
    ),
    "retries": (int, option(WHAT, help="Quality retries per image (0: one generation each).")),
    "style_ref": (
        str | None,
        option(
            WHAT,
            "--style-ref",
            help="A reference photo for the look (IP-Adapter): the run "
            "follows it, and the same run without it is timed "
            "beside, for its cost per image.",
        ),
    ),
    "style_ref_scale": (
        float | None,
        option(WHAT, "--style-ref-scale", help="How strongly --style-ref steers (default: the style's, else 0.6)."),
    ),
    "gpu_price": (float | None, option(COST, help="GPU price per hour.", envvar="MODOMO_GPU_PRICE")),
    "currency": (str | None, option(COST, help="Currency of --gpu-price.")),
    "seed": (int, option(WHAT, help="Base seed.")),
    "as_json": (bool, flag(COST, "--json", help="Print the bench summary as JSON on stdout.")),
    "sweep": (bool, flag(SWEEP, "--sweep", help="Time a grid into one results file and chart.")),
    "sweep_out": (Path, option(SWEEP, help="Folder of the sweep's results.")),
    "sweep_batches": (str | None, option(SWEEP, help="Sweep batch sizes (default 1,2,4,8).")),
    "sweep_sizes": (str | None, option(SWEEP, help="Sweep room sizes WxH (default 512x512,768x576).")),
    "sweep_modes": (str | None, option(SWEEP, help="Sweep modes: standard, fast, a recipe.")),
    "sweep_dtypes": (
        str | None,
        option(SWEEP, help="Sweep dtypes (CUDA: fp16,bf16; CPU: fp32, and bf16 where it is fast)."),
    ),
    "compare": (bool, flag(SWEEP, "--compare", help="Compare the sweep results files (INPUTS); loads no model.")),
    "compare_out": (Path | None, option(SWEEP, help="Chart of --compare (default: compare.png).")),
    "fast": (
        bool,
        flag(
            DEVICE,
            "--fast",
            help="Time fast mode (LCM-LoRA fused, 6 steps, no guidance); "
            "--compare-diffusers times the style's standard way.",
        ),
    ),
    "fast_recipe": (str | None, option(DEVICE, help="Few-step recipe: lcm, tcd, hyper (implies --fast).")),
}


@command_from(BenchCommandOptions, BENCH)
def bench(options: BenchCommandOptions, ctx: typer.Context) -> None:
    """Time the whole pipeline on this machine: stages, throughput, memory, FLOP/s, cost; against diffusers."""
    from modomo_cli.render import print_compare
    from pipeline.bench.setup import bench_mode, bench_setup

    with user_errors():
        bench_mode(options)  # what a declutter cannot time, refused before anything else
        if options.compare:  # results files only: no model loads
            from pipeline.bench.compare import compare as compare_files

            return print_compare(*compare_files(options.inputs or [], options.compare_out))
        setup = bench_setup(options)
        if options.sweep:
            return _bench_sweep(options, ctx, setup)
        _bench_once(options, setup)


def _bench_sweep(o: BenchCommandOptions, ctx: typer.Context, setup) -> None:
    """--sweep: the grid into one results file and chart."""
    from modomo_cli.render import print_compare, print_sweep_cell
    from pipeline.bench.bench import BenchOptions
    from pipeline.bench.sweep import Sweep, parse_grid, run_sweep

    axes = (o.sweep_batches, o.sweep_sizes, o.sweep_modes, o.sweep_dtypes or (None if o.dtype == "auto" else o.dtype))
    with RunProgress(None) as bar:
        plan = Sweep(
            setup.spec,
            setup.device,
            # a sweep times each cell as asked: compiled with --compile on, else eager (its cells are too few for auto)
            replace(setup.config, recipe=None).with_options(compile="on" if o.compile == "on" else "off"),
            setup.price,
            BenchOptions(o.images, o.warmup),
            replace(setup.load, fast=None),
            parse_grid(setup.device, *axes),
            o.compile == "on",
            bar.loading,
            bar,
            print_sweep_cell,
            fast_recipe=setup.config.recipe or "lcm",
        )
        results, json_path, png_path = run_sweep(plan, command_line(o, ctx), o.sweep_out)
    print_compare([results], png_path, "bench sweep", json_path)
    if o.as_json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")


def _bench_once(o: BenchCommandOptions, setup) -> None:
    """One configuration: the stage table, throughput, FLOP/s, cost; optionally against plain diffusers. Without
    a terminal (no progress bar) each phase gets a line on stderr; the plan and its estimate always do."""
    from modomo_cli.bench_modes import print_mode
    from pipeline.bench.bench import BenchOptions, estimate, run_bench
    from pipeline.bench.compile_choice import bench_compile
    from pipeline.bench.setup import load_stacks

    bench_options = BenchOptions(o.images, o.warmup, setup.synthetic_size, o.compare_diffusers, o.ablate)
    with RunProgress(None) as bar:
        phases = PhaseLog(not bar.enabled)
        say(plan_line(o, setup))
        with phases(f"loading models ({o.models})"):
            stack, baseline = load_stacks(setup, o.compare_diffusers, bar.loading)
        choice = bench_compile(setup.config, stack, estimate(setup.config, stack, bench_options), o.images)
        config = setup.config.with_options(compile=choice["resolved"])
        guess = estimate(config, stack, bench_options, baseline)
        say(estimate_line(guess))
        say(compile_line(choice))
        bench_options = replace(bench_options, compile=choice)
        summary = run_bench(
            config, stack, setup.price, bench_options, on_event=phases.around(bar), baseline=baseline, phase=phases
        )
    summary["estimate"] = guess
    nothing_timed(summary)
    print_bench(summary)
    print_mode(summary)
    if o.as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")


# What a declutter's or a staging's bench times, and what its baseline is given, as the plan line says them.
MODE_WORK = {
    "declutter": "removal mask, LaMa's fill, the inpaint pass, compose",
    "stage": "a furnished photo emptied first, the region, the first pass, compose, the second pass",
    "first pass alone": "a furnished photo emptied first, the region, the first pass alone (--no-second-pass), compose",
}
MODE_BASELINE = {
    "declutter": "on the same masks, LaMa fills and seeds",
    "stage": "for every pass, on the same photos and seeds",
}


def nothing_timed(summary: dict) -> None:
    """A bench whose timed images all failed timed nothing: one line with the first reason, exit 1."""
    from pipeline.errors import ModomoError

    if summary["counts"]["ok"] == 0:
        errors = [i.get("error") for i in summary.get("images", []) if i.get("error")]
        why = f" (the first: {errors[0]})" if errors else ""
        failed = summary["counts"]["failed"]
        raise ModomoError(f"bench: none of the {failed} timed images finished{why}; nothing was timed")


def say(line: str) -> None:
    """A line on stderr, as it happens (a log file sees it when it is written)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def plan_line(o: BenchCommandOptions, setup) -> str:
    """'bench: plan: modomo on 4 synthetic images after 1 warm-up; plain diffusers before and after; ...'."""
    what = f"{o.images} {'of the photos' if o.inputs else 'synthetic images'}"
    kind = setup.config.style.mode
    work = MODE_WORK.get(kind, "") if o.second_pass else MODE_WORK["first pass alone"]
    mode = f" ({kind}: {work})" if work else ""
    parts = [f"modomo{mode} on {what} after {o.warmup} warm-up, {setup.config.long_side} px, {o.models}"]
    if o.compare_diffusers and kind in MODE_BASELINE:
        parts.append(
            f"plain diffusers (StableDiffusionControlNetInpaintPipeline, one pipe() per image, {MODE_BASELINE[kind]}) "
            "before and after it"
        )
    elif o.compare_diffusers:
        parts.append("plain diffusers on the same images before and after it")
    if o.ablate:
        parts.append("modomo again with each shortcut off and with each optional part")
    if setup.config.options.style_ref:
        parts.append("modomo again without the style reference")
    return "bench: plan: " + "; ".join(parts)


def compile_line(choice: dict) -> str:
    """'bench: compile: auto -> off: 4 timed images at ~7.1 s each eager would save ~6 s ...'."""
    how = f"{choice['choice']} -> {choice['resolved']}" if choice["choice"] == "auto" else choice["choice"]
    return f"bench: compile: {how}: {choice['why']}"


def estimate_line(guess: dict) -> str:
    """The estimate, said to be one: the generate stage's FLOPs over the device's matmul peak."""
    work = f"{guess['tflop']:.3g} TFLOP of generate work over {sum(r['images'] for r in guess['runs'])} images"
    if guess["seconds"] is None:
        return f"bench: estimate: {work}; no time estimate (no known matmul peak for this device)"
    peaks = ", ".join(f"{tflops:.3g} TFLOP/s {fmt}" for fmt, tflops in guess["peak_tflops"].items())
    seconds = f"about {guess['seconds']:.0f} s" if guess["seconds"] >= 1 else "under 1 s"
    return (
        f"bench: estimate: {seconds} for {work} at {guess['assumed_share']:.0%} of the matmul peak ({peaks}); "
        "an estimate from FLOPs alone: the other stages are not in it"
    )


class PhaseLog:
    """`with phases("modomo, 4 images"):` writes 'bench: modomo, 4 images… ' as the phase starts and its seconds
    as it ends, on one stderr line; a warning printed meanwhile ends the line first, and the time then gets a
    line of its own. Off (a progress bar shows the run), it writes nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.open = False

    @contextmanager
    def __call__(self, label: str):
        if not self.enabled:
            yield
            return
        sys.stderr.write(f"bench: {label}\u2026 ")
        sys.stderr.flush()
        self.open, start = True, time.perf_counter()
        ended = "stopped after"
        try:
            yield
            ended = ""
        finally:
            took = f"{ended} {time.perf_counter() - start:.1f} s".strip()
            say(took if self.open else f"bench: {label}: {took}")
            self.open = False

    def interrupt(self) -> None:
        """Something else is about to print: end the open phase line."""
        if self.open:
            say("")
            self.open = False

    def around(self, on_event):
        """The run's events, each that prints (a warning, a failure) ending the open phase line first."""

        def forward(event: str, **data) -> None:
            failed = event == "done" and data["record"].status == "failed"
            if event not in ("start", "stage", "done") or failed:
                self.interrupt()
            on_event(event, **data)

        return forward


def command_line(options, ctx) -> str:
    """The command as typed (`modomo ...` from sys.argv), for a results file to say how it was made; when the
    process is not the modomo command (a test's runner), the command rebuilt from the options given."""
    import shlex
    import sys
    from pathlib import Path

    if Path(sys.argv[0]).name in ("modomo", "__main__.py") and ctx.info_name in sys.argv[1:]:
        return shlex.join(["modomo", *sys.argv[1:]])
    words = ["modomo", ctx.info_name]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name != "COMMANDLINE":
            continue
        value = getattr(options, param.name)
        if param.param_type_name == "argument":
            words += [str(v) for v in value or []]
        elif getattr(param, "is_flag", False):
            words.append(param.opts[0] if value else (param.secondary_opts or param.opts)[0])
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)
