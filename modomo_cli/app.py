"""The `modomo` command line: parses options, renders Rich output, calls pipeline/. No model code here."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

# Before ultralytics is imported anywhere: no banner on stdout, no settings file in $HOME for a JSON run.
os.environ.setdefault("YOLO_VERBOSE", "False")

import typer  # noqa: E402
from rich.markup import escape  # noqa: E402

from modomo_cli.errors import EXIT_FATAL, EXIT_USAGE, user_errors  # noqa: E402
from modomo_cli.render import RunProgress, console, print_bench  # noqa: E402
from modomo_cli.transform import transform  # noqa: E402
from pipeline.errors import ModomoError  # noqa: E402

app = typer.Typer(
    name="modomo",
    help="Restyle photos of rooms in bulk: SD1.5 + depth/canny ControlNets, YOLO + SAM2, per-stage timing and cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command()(transform)


def _gpu_name(device) -> str | None:
    if device.type != "cuda":
        return None
    import torch

    return torch.cuda.get_device_name(device)


@app.command("styles")
def styles_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the styles as JSON on stdout.")] = False,
) -> None:
    """List the built-in styles."""
    from rich.table import Table

    from styles import list_styles, load_style

    with user_errors():
        loaded = [load_style(name) for name in list_styles()]
    if as_json:
        sys.stdout.write(json.dumps([{"name": s.name, "description": s.description, "prompt": s.prompt,
                                      "steps": s.steps, "guidance_scale": s.guidance_scale} for s in loaded],
                                    indent=2) + "\n")
        return
    table = Table(title="styles", title_justify="left")
    for column in ("name", "description", "steps", "guidance", "depth scale", "canny scale / end"):
        table.add_column(column)
    for s in loaded:
        table.add_row(s.name, s.description, str(s.steps), f"{s.guidance_scale:g}", f"{s.depth.scale:g}",
                      f"{s.canny.scale:g} / {s.canny.end:g}")
    console.print(table)


@app.command()
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


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON on stdout.")] = False,
) -> None:
    """What this machine has and lacks: Python, torch, GPU, cached weights, ultralytics, R2 (never downloads)."""
    from dataclasses import asdict

    from rich.table import Table

    from pipeline.doctor import MISSING, OK, WARN, run_checks

    checks = run_checks()
    if as_json:
        sys.stdout.write(json.dumps([asdict(c) for c in checks], indent=2) + "\n")
    else:
        table = Table(title="modomo doctor", title_justify="left")
        for column in ("area", "check", "status", "detail"):
            table.add_column(column)
        colours = {OK: "green", MISSING: "red", WARN: "yellow"}
        for c in checks:
            colour = colours.get(c.status, "dim")
            table.add_row(c.area, c.name, f"[{colour}]{c.status}[/{colour}]", escape(c.detail))
        console.print(table)
    problems = [c for c in checks if c.required and c.status != OK]
    if problems:
        console.print(f"[red]{len(problems)} problem(s)[/red] for the default preset (sd15): "
                      + "; ".join(f"{c.area} {c.name}" for c in problems), soft_wrap=True)
        raise typer.Exit(EXIT_FATAL)


@app.command()
def score(
    before: Annotated[Path, typer.Argument(help="The original photo.")],
    after: Annotated[Path, typer.Argument(help="The restyled photo.")],
    models: Annotated[
        str | None, typer.Option(help="Also compare depth, with this preset's depth model (e.g. sd15, tiny).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the score as JSON on stdout.")] = False,
) -> None:
    """Score a before/after pair: does AFTER keep BEFORE's room (layout, depth) and look like a photo?"""
    with user_errors():
        import numpy as np

        from pipeline.errors import ImageError
        from pipeline.inputs import imaging
        from pipeline.stages.validate import quality

        images = []
        for path in (before, after):
            try:
                images.append(imaging.decode(path.read_bytes(), str(path)))
            except (OSError, ImageError) as exc:
                raise ModomoError(f"{path}: {getattr(exc, 'strerror', None) or exc}", EXIT_USAGE) from None
        depths = (None, None)
        if models:
            import torch

            from pipeline.models.catalog import resolve
            from pipeline.models.load import load_depth, pick_device
            from pipeline.stages.depth import DepthEstimator

            device = pick_device("auto")
            dtype = torch.float16 if device.type == "cuda" else torch.float32
            model, processor = load_depth(resolve(models), device, dtype)
            depths = tuple(np.asarray(d) for d in DepthEstimator(model, processor, device, dtype).estimate(images))
        value, parts = quality(images[0], images[1], *depths)
    if as_json:
        sys.stdout.write(json.dumps({"score": value, "parts": parts, "before": str(before), "after": str(after)},
                                    indent=2) + "\n")
        return
    from rich.table import Table

    console.print(f"{before} -> {after}", soft_wrap=True)
    table = Table()
    table.add_column("part")
    table.add_column("value", justify="right")
    for name, part in parts.items():
        table.add_row(name, f"{part:.3f}")
    table.add_row("[bold]score[/bold]", f"[bold]{value:.3f}[/bold]")
    console.print(table)


@app.command("index")
def index_cmd(
    out: Annotated[str, typer.Argument(help="An output folder or r2://bucket/prefix that modomo wrote into.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON on stdout.")] = False,
) -> None:
    """Rebuild OUT/index.csv and OUT/index.jsonl from OUT's journal (all runs, all shards)."""
    with user_errors():
        from pipeline.outputs.index import write_index
        from pipeline.outputs.sinks import open_sink

        sink = open_sink(out)
        sink.prepare()
        written = write_index(sink)
    if as_json:
        sys.stdout.write(json.dumps(written, indent=2) + "\n")
    console.print(f"index       {written['csv']} ({written['jobs']} jobs: {written['ok']} ok, "
                  f"{written['failed']} failed)", soft_wrap=True)


models_app = typer.Typer(help="List and fetch model presets.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the presets as JSON on stdout.")] = False,
) -> None:
    """The presets, the models each one loads, and whether they are in the local caches."""
    from rich.table import Table

    from pipeline.doctor import model_files
    from pipeline.models.presets import sd15

    rows = [{"preset": "sd15", "model": role, "id": model_id, "cached": path is not None}
            for role, model_id, path in model_files(sd15())]
    rows.append({"preset": "tiny", "model": "all", "id": "random tiny models built from configs", "cached": True})
    rows.append({"preset": "random-sd15", "model": "all", "id": "real architectures, random weights, for timing",
                 "cached": True})
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="model presets", title_justify="left")
    for column in ("preset", "model", "id", "cached"):
        table.add_column(column)
    for row in rows:
        cached = "[green]yes[/green]" if row["cached"] else "[red]no[/red]"
        table.add_row(row["preset"], row["model"], row["id"], cached)
    console.print(table)
    console.print("or --models DIR for a bundle folder (see the README); fetch sd15 with `modomo models download`")


@models_app.command("export-tiny")
def models_export_tiny(folder: Annotated[Path, typer.Argument(help="Where to write the bundle.")]) -> None:
    """Write the tiny random bundle to FOLDER (the bundle layout; load it with --models FOLDER)."""
    with user_errors():
        from pipeline.models.tiny import build_tiny_bundle

        if folder.exists() and any(folder.iterdir()):
            raise ModomoError(f"{folder}: folder is not empty", EXIT_USAGE)
        console.print(f"tiny bundle written to {build_tiny_bundle(folder)}", soft_wrap=True)


@models_app.command("download")
def models_download(
    preset: Annotated[str, typer.Argument(help="Preset to fetch.")] = "sd15",
    fast: Annotated[bool, typer.Option("--fast", help="Also fetch the default few-step recipe's LoRA.")] = False,
    fast_recipe: Annotated[str | None, typer.Option(help="The recipe whose LoRA --fast fetches: lcm, tcd, hyper, "
                                                         "or all (implies --fast).")] = None,
) -> None:
    """Fetch a preset's weights into the standard caches (HF_HOME, ultralytics weights_dir); with --fast, the
    few-step LoRA as well."""
    with user_errors():
        from pipeline.models.catalog import resolve
        from pipeline.models.download import download, download_fast, fast_recipes

        recipes = fast_recipes(fast_recipe) if fast or fast_recipe else []
        spec = resolve(preset)
        if spec.local:
            console.print(f"{preset}: built locally, nothing to download")
            return
        for path in download(spec, report=console.print) + download_fast(spec, recipes, report=console.print):
            console.print(f"  [green]ok[/green] {path}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
