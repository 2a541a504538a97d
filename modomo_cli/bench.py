"""`modomo bench`: its options, and the rendering of a bench, a sweep or a comparison."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from modomo_cli.errors import user_errors
from modomo_cli.render import RunProgress, print_bench


def _gpu_name(device) -> str | None:
    if device.type != "cuda":
        return None
    import torch

    return torch.cuda.get_device_name(device)


def bench(
    inputs: Annotated[list[str] | None, typer.Argument(help="Photos to time (default: synthetic rooms).")] = None,
    images: Annotated[int, typer.Option(help="Images to time (synthetic ones when no INPUTS).")] = 4,
    warmup: Annotated[int, typer.Option(help="Images run first and not counted.")] = 1,
    models: Annotated[
        str, typer.Option(help="random-sd15 (default: full size, no download), sd15, tiny, or a bundle folder.")
    ] = "random-sd15",
    style: Annotated[str, typer.Option("--style", "-s", help="A built-in style.")] = "boho",
    room: Annotated[str, typer.Option(help="Room type in the prompt.")] = "living room",
    size: Annotated[int, typer.Option(help="Long side of the working size in pixels.")] = 512,
    synthetic_size: Annotated[str, typer.Option(help="WxH of the synthetic rooms.")] = "1024x768",
    steps: Annotated[int | None, typer.Option(help="Denoising steps (default: the style's).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per model call.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto (fp16 on CUDA, fp32 on CPU), fp16, bf16, fp32.")] = "auto",
    channels_last: Annotated[str, typer.Option(help="auto (CUDA: all models; CPU: the VAE), on, off.")] = "auto",
    compile_models: Annotated[bool, typer.Option("--compile", help="torch.compile the UNet and ControlNets.")] = False,
    compare_diffusers: Annotated[
        bool, typer.Option("--compare-diffusers", help="Also time plain diffusers (one pipe() per image).")
    ] = False,
    ablate: Annotated[bool, typer.Option("--ablate", help="Also time the run with each shortcut off.")] = False,
    retries: Annotated[int, typer.Option(help="Quality retries per image (0: one generation each).")] = 0,
    gpu_price: Annotated[float | None, typer.Option(help="GPU price per hour.", envvar="MODOMO_GPU_PRICE")] = None,
    currency: Annotated[str | None, typer.Option(help="Currency of --gpu-price.")] = None,
    seed: Annotated[int, typer.Option(help="Base seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the bench summary as JSON on stdout.")] = False,
    sweep: Annotated[bool, typer.Option("--sweep", help="Time a grid into one results file and chart.")] = False,
    sweep_out: Annotated[Path, typer.Option(help="Folder of the sweep's results.")] = Path("benchmarks/sweep"),
    sweep_batches: Annotated[str | None, typer.Option(help="Sweep batch sizes (default 1,2,4,8).")] = None,
    sweep_sizes: Annotated[str | None, typer.Option(help="Sweep room sizes WxH (default 512x512,768x576).")] = None,
    sweep_modes: Annotated[str | None, typer.Option(help="Sweep modes: standard, fast, a recipe.")] = None,
    sweep_dtypes: Annotated[str | None, typer.Option(help="Sweep dtypes (CUDA: fp16,bf16; CPU: fp32).")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Compare the sweep results files (INPUTS).")] = False,
    compare_out: Annotated[Path | None, typer.Option(help="Chart of --compare (default: compare.png).")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Time fast mode (LCM-LoRA fused, 6 steps, no guidance); "
                                                      "--compare-diffusers times the style's standard way.")] = False,
    fast_recipe: Annotated[str | None, typer.Option(help="Few-step recipe: lcm, tcd, hyper (implies --fast).")] = None,
    ctx: typer.Context = None,
) -> None:
    """Time the whole pipeline on this machine: stages, throughput, memory, FLOP/s, cost; against diffusers."""
    from modomo_cli.render import print_compare

    with user_errors():
        if compare:  # results files only: no model loads
            from pipeline.bench.compare import compare as compare_files

            return print_compare(*compare_files(inputs or [], compare_out))
        setup = _bench_setup(ctx.params)
        if sweep:
            return _bench_sweep(ctx, *setup)
        _bench_once(ctx.params, *setup)


def _bench_setup(p: dict):
    """The bench's RunConfig, device, price and load options, every option checked before models load."""
    from pipeline.bench.sweep import check_sweep_options
    from pipeline.config import RunConfig
    from pipeline.errors import UsageError
    from pipeline.models.load import LoadOptions, pick_device
    from pipeline.run.cost import resolve_price
    from styles import load_style

    if p["images"] < 1 or p["warmup"] < 0:
        raise UsageError("--images must be >= 1 and --warmup >= 0")
    check_sweep_options(p["sweep"], p["inputs"], p["sweep_batches"], p["sweep_sizes"], p["sweep_modes"],
                        p["sweep_dtypes"])
    recipe = p["fast_recipe"] or ("lcm" if p["fast"] else None)
    config = RunConfig(inputs=list(p["inputs"] or []), out="", style=load_style(p["style"]), room=p["room"],
                       models=p["models"], size=p["size"], seed=p["seed"], steps=p["steps"],
                       batch_size=p["batch_size"], device=p["device"], gpu_price=p["gpu_price"],
                       currency=p["currency"], workers=4, retries=p["retries"], fast=recipe)
    (config if p["inputs"] else RunConfig(**{**config.__dict__, "inputs": ["synthetic"]})).check()
    torch_device = pick_device(p["device"])
    price = resolve_price(_gpu_name(torch_device), p["gpu_price"], p["currency"])
    # Fused at load, unless the standard model must be timed beside it (the bench then switches in place).
    fused = recipe if recipe and not p["compare_diffusers"] else None
    return config, torch_device, price, LoadOptions(dtype=p["dtype"], channels_last=p["channels_last"], fast=fused)


def _bench_sweep(ctx: typer.Context, config, torch_device, price, options) -> None:
    """--sweep: the grid into one results file and chart."""
    from modomo_cli.render import command_line, print_compare, print_sweep_cell
    from pipeline.bench.bench import BenchOptions
    from pipeline.bench.sweep import Sweep, parse_grid, run_sweep
    from pipeline.models.catalog import resolve

    p = ctx.params
    axes = (p["sweep_batches"], p["sweep_sizes"], p["sweep_modes"],
            p["sweep_dtypes"] or (None if p["dtype"] == "auto" else p["dtype"]))
    with RunProgress(None) as bar:
        plan = Sweep(resolve(p["models"]), torch_device, replace(config, fast=None), price,
                     BenchOptions(p["images"], p["warmup"]), replace(options, fast=None),
                     parse_grid(torch_device, *axes), p["compile_models"], bar.loading, bar, print_sweep_cell,
                     fast_recipe=config.fast or "lcm")
        results, json_path, png_path = run_sweep(plan, command_line(ctx), p["sweep_out"])
    print_compare([results], png_path, "bench sweep", json_path)
    if p["as_json"]:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")


def _bench_once(p: dict, config, torch_device, price, options) -> None:
    """One configuration: the stage table, throughput, FLOP/s, cost; optionally against plain diffusers."""
    from pipeline.bench.bench import BenchOptions, run_bench
    from pipeline.errors import UsageError
    from pipeline.models.catalog import resolve
    from pipeline.models.load import load_stack

    try:
        width, height = (int(v) for v in p["synthetic_size"].lower().split("x"))
    except ValueError:
        raise UsageError(f"--synthetic-size {p['synthetic_size']!r}: expected WxH, e.g. 768x512") from None
    with RunProgress(None) as bar:
        stack = load_stack(resolve(p["models"]), torch_device, on_model=bar.loading, options=options)
        if p["compile_models"]:
            for module in (stack.pipe.unet, *stack.pipe.controlnet.nets):
                module.compile()
        bench_options = BenchOptions(p["images"], p["warmup"], (width, height), p["compare_diffusers"], p["ablate"])
        summary = run_bench(config, stack, price, bench_options, on_event=bar, compiled=p["compile_models"])
    print_bench(summary)
    if p["as_json"]:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")




def command_line(ctx) -> str:
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
        value = ctx.params[param.name]
        if param.param_type_name == "argument":
            words += [str(v) for v in value or []]
        elif getattr(param, "is_flag", False):
            words.append(param.opts[0] if value else (param.secondary_opts or param.opts)[0])
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)
