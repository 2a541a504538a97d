"""The `modomo` command line: parses options, renders Rich output, calls pipeline/. No model code here."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

# Before ultralytics is imported anywhere: no banner on stdout, no settings file in $HOME for a JSON run.
os.environ.setdefault("YOLO_VERBOSE", "False")

import typer  # noqa: E402
from rich.markup import escape  # noqa: E402

from modomo_cli.render import RunProgress, console, print_bench, print_summary  # noqa: E402
from pipeline.errors import ModomoError  # noqa: E402

app = typer.Typer(
    name="modomo",
    help="Restyle photos of rooms in bulk: SD1.5 + depth/canny ControlNets, YOLO + SAM2, per-stage timing and cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@contextmanager
def user_errors():
    """Turn a ModomoError into one red line on stderr and its exit code; no traceback."""
    try:
        yield
    except ModomoError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


@app.command()
def transform(
    ctx: typer.Context,
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders (searched recursively) and/or r2://bucket/prefix.")],
    style: Annotated[
        str, typer.Option("--style", "-s", help="Built-in style(s), comma-separated (see `modomo styles`).")
    ] = "modern",
    style_file: Annotated[
        Path | None, typer.Option("--style-file", help="A style TOML file of your own (overrides --style).")
    ] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder or r2://bucket/prefix.")] = "modomo-out",
    room: Annotated[str, typer.Option(help="Room type in the prompt.")] = "living room",
    models: Annotated[
        str, typer.Option(help="sd15 (default), tiny, or a bundle folder.", envvar="MODOMO_MODELS")
    ] = "sd15",
    size: Annotated[int, typer.Option(help="Long side of the working size in pixels (multiple of 8).")] = 768,
    seed: Annotated[int, typer.Option(help="Base seed; each image's seed derives from it and its path.")] = 0,
    steps: Annotated[int | None, typer.Option(help="Denoising steps (default: the style's).")] = None,
    guidance_scale: Annotated[float | None, typer.Option(help="CFG scale (default: the style's).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per model call.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    gpu_price: Annotated[
        float | None, typer.Option(help="GPU price per hour (default: table by GPU).", envvar="MODOMO_GPU_PRICE")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="Currency of --gpu-price.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Result format: png, jpeg, webp.")] = "png",
    workers: Annotated[int, typer.Option(help="Threads reading ahead and writing behind.")] = 4,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Skip inputs already done with these settings.")
    ] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo inputs even when already done.")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first image that fails.")] = False,
    min_quality: Annotated[
        float | None, typer.Option(help="Retry results scoring below this (default: the style's).")
    ] = None,
    retries: Annotated[int, typer.Option(help="New seeds to try for a result below --min-quality.")] = 2,
    lora: Annotated[
        list[str] | None, typer.Option("--lora", help="LoRA weights FILE[:SCALE] for every style (repeatable).")
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="A single-file SD1.5 fine-tune (.safetensors) in place of the base model.")
    ] = None,
    preserve: Annotated[
        str | None, typer.Option(help="Keep these detected objects as they are: couch,bed (sofa, plant... too).")
    ] = None,
    mask_dir: Annotated[
        Path | None, typer.Option(help="Your own keep masks (white keeps), matched by relative path and stem.")
    ] = None,
    shard: Annotated[
        str | None, typer.Option(help="Do shard i of N (i/N); default: from a K8s Indexed Job or SLURM array.")
    ] = None,
    devices: Annotated[
        str | None, typer.Option(help="One worker process per device: all, 0,1,2,3 (or cpu,cpu).")
    ] = None,
    engine: Annotated[
        str, typer.Option(help="modomo (this process) or ray (an actor per GPU; a cluster via RAY_ADDRESS).")
    ] = "modomo",
    actors: Annotated[int | None, typer.Option(help="Ray actors (default: one per GPU, else one).")] = None,
    report: Annotated[bool, typer.Option("--report", help="Write report.html into the output.")] = False,
    save_controls: Annotated[
        bool, typer.Option("--save-controls", help="Save each image's depth, edges and object masks.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON on stdout.")] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: when a terminal).")
    ] = None,
) -> None:
    """Restyle every photo in INPUTS and write result, thumbnail and metadata under --out."""
    with user_errors():
        from pipeline.config import RunConfig
        from pipeline.cost import resolve_price
        from pipeline.journal import Journal
        from pipeline.models.load import load_stack, pick_device
        from pipeline.models.lora import parse as parse_lora
        from pipeline.models.presets import resolve
        from pipeline.r2 import Remote
        from pipeline.runner import Runner
        from pipeline.shards import from_environment as shard_from_environment
        from pipeline.shards import parse as parse_shard
        from pipeline.sinks import open_sink
        from pipeline.sources import collect_inputs
        from pipeline.stages.preserve import resolve_labels
        from styles import load_style

        chosen = [load_style(path=style_file)] if style_file else [load_style(n.strip()) for n in style.split(",")]
        config = RunConfig(
            inputs=list(inputs), out=out, style=chosen[0], more_styles=chosen[1:], room=room, models=models,
            size=size, seed=seed, steps=steps, guidance_scale=guidance_scale, batch_size=batch_size,
            device=device, gpu_price=gpu_price, currency=currency, format=fmt, workers=workers,
            resume=resume, overwrite=overwrite, fail_fast=fail_fast, min_quality=min_quality, retries=retries,
            save_controls=save_controls or report, loras=[parse_lora(text) for text in lora or []],
            preserve=resolve_labels(preserve) if preserve else set(), mask_dir=str(mask_dir) if mask_dir else None,
        ).check()
        # Everything that can be wrong with the inputs or the output is found before models load.
        remote = Remote(pool_size=config.workers * 2 + 2)
        sink = open_sink(config.out, remote)
        sink.prepare()
        everything = collect_inputs(config.inputs, remote)
        if not everything:
            raise ModomoError(f"no images found in {', '.join(config.inputs)}", EXIT_USAGE)
        part = parse_shard(shard) if shard else shard_from_environment()
        items = [item for item in everything if part is None or part.owns(item.key)]
        if part is not None:
            console.print(f"shard       {part}: {len(items)} of {len(everything)} inputs", soft_wrap=True)
        if devices:
            code = run_on_devices(ctx, devices, everything, sink, config, as_json)
            raise typer.Exit(code)
        if engine not in ("modomo", "ray"):
            raise ModomoError(f"--engine {engine!r}: choose modomo or ray", EXIT_USAGE)
        if engine == "ray":
            from pipeline import ray_engine

            result = ray_engine.run(config, models, items, actors)
            result.price = resolve_price(None, config.gpu_price, config.currency)
            summary = result.to_json()
            summary["engine"] = "ray"
            print_summary(summary)
            if as_json:
                sys.stdout.write(json.dumps(summary, indent=2) + "\n")
            raise typer.Exit(EXIT_SOME_FAILED if result.counts["failed"] else EXIT_OK)
        torch_device = pick_device(config.device)
        gpu_name = _gpu_name(torch_device)
        price = resolve_price(gpu_name, config.gpu_price, config.currency)
        spec = with_checkpoint(resolve(config.models), checkpoint, config.styles)

        with RunProgress(progress) as bar:
            start = time.perf_counter()
            stack = load_stack(spec, torch_device, on_model=bar.loading)
            load_seconds = time.perf_counter() - start
            runner = Runner(config, stack, sink, on_event=bar, journal=Journal(sink))
            with stop_on_signals(runner):
                result = runner.run(items, everything)
        result.load_seconds = load_seconds
        result.price = price
        summary = result.to_json()
        summary["device"] = {"type": torch_device.type, "name": gpu_name or "cpu"}
        summary["models"] = spec.ids()
        summary["load"] = stack.load_seconds
        print_summary(summary)
        if report and not result.fatal:
            from pipeline.report import write_report

            console.print(f"report      {write_report(summary, sink)}", soft_wrap=True)
        if as_json:
            sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        if result.fatal:
            raise ModomoError(result.fatal, EXIT_FATAL)
        if result.interrupted:
            console.print("interrupted: rerun the same command to finish (done inputs are skipped)")
            raise typer.Exit(EXIT_INTERRUPTED)
        if result.counts["failed"]:
            raise typer.Exit(EXIT_SOME_FAILED)


WORKER_OWN = {"devices", "shard", "device", "as_json", "progress", "ctx", "engine", "actors"}


def worker_argv(ctx: typer.Context) -> list[str]:
    """This command line again, minus what each worker gets on its own (device, shard, output format)."""
    argv: list[str] = []
    for param in ctx.command.params:
        if param.name in WORKER_OWN or param.name not in ctx.params:
            continue
        value = ctx.params[param.name]
        if isinstance(param, typer.core.TyperArgument):
            argv += [str(v) for v in value]
        elif value is None or value == param.default:
            continue
        elif param.is_flag:
            argv.append(param.opts[0] if value else param.secondary_opts[0])
        elif isinstance(value, list | tuple):
            for v in value:
                argv += [param.opts[0], str(v)]
        else:
            argv += [param.opts[0], str(value)]
    return argv


def run_on_devices(ctx: typer.Context, devices: str, everything, sink, config, as_json: bool) -> int:
    """One worker per device, each doing one shard; their summaries merged into one."""
    from pipeline.batching import merge_reports
    from pipeline.cost import Price, resolve_price
    from pipeline.journal import Journal
    from pipeline.result import RunResult
    from pipeline.workers import merge_records, parse_devices
    from pipeline.workers import run as run_workers

    chosen = parse_devices(devices)
    console.print(f"devices     {len(chosen)} workers: {', '.join(chosen)}", soft_wrap=True)
    start = time.perf_counter()
    workers = run_workers(worker_argv(ctx), chosen)
    seconds = time.perf_counter() - start
    records = merge_records(workers, everything, [s.name for s in config.styles], Journal(sink))
    for worker in workers:
        if worker.died:
            console.print(f"[red]failed[/red] {escape(worker.died)}", soft_wrap=True)
    load = max((w.summary.get("load_seconds", 0.0) for w in workers if w.summary), default=0.0)
    gpu = next((d for d in chosen if d.startswith("cuda")), None)
    price = resolve_price(_gpu_name(torch_device(gpu)) if gpu else None, config.gpu_price, config.currency)
    device_price = Price(price.per_hour * len(chosen), price.currency, f"{price.source} x {len(chosen)} devices")
    result = RunResult(records=records, seconds=seconds, load_seconds=load, price=device_price,
                       settings=config.summary_settings(),
                       batching=merge_reports(config.batch_size, [w.summary.get("batching", {})
                                                                  for w in workers if w.summary]))
    summary = result.to_json()
    summary["devices"] = [{"device": w.device, "shard": w.shard, "returncode": w.returncode,
                           "error": w.died} for w in workers]
    print_summary(summary)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return EXIT_SOME_FAILED if result.counts["failed"] else EXIT_OK


def with_checkpoint(spec, option: Path | None, chosen_styles):
    """The preset with --checkpoint, or the styles' own `checkpoint` when they agree on one."""
    from dataclasses import replace

    from pipeline.errors import UsageError
    from pipeline.models.checkpoint import check

    wanted = {s.checkpoint for s in chosen_styles if s.checkpoint}
    if option is None and len(wanted) > 1:
        raise UsageError("the styles name different checkpoints; run them separately or pass --checkpoint")
    file = option or (wanted.pop() if wanted else None)
    if file is None:
        return spec
    if spec.random_weights and not spec.local:
        raise UsageError(f"--checkpoint needs a preset with configs on disk or in the cache, not {spec.name}")
    return replace(spec, checkpoint=str(check(file)))


@contextmanager
def stop_on_signals(runner):
    """First SIGINT/SIGTERM: finish the batch in hand and stop cleanly. Second: stop at once."""
    import signal

    def handler(signum, frame):
        if runner.stop.is_set():
            raise KeyboardInterrupt
        runner.request_stop()
        console.print(f"\n{signal.Signals(signum).name}: finishing the current image, then stopping "
                      "(again to stop at once)", soft_wrap=True)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def torch_device(name: str):
    import torch

    return torch.device(name)


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
) -> None:
    """Time the whole pipeline on this machine: stages, throughput, memory, FLOP/s, cost; against diffusers."""
    with user_errors():
        from pipeline.bench import BenchOptions, run_bench
        from pipeline.config import RunConfig
        from pipeline.cost import resolve_price
        from pipeline.errors import UsageError
        from pipeline.models.load import LoadOptions, load_stack, pick_device
        from pipeline.models.presets import resolve
        from styles import load_style

        try:
            width, height = (int(v) for v in synthetic_size.lower().split("x"))
        except ValueError:
            raise UsageError(f"--synthetic-size {synthetic_size!r}: expected WxH, e.g. 768x512") from None
        if images < 1 or warmup < 0:
            raise UsageError("--images must be >= 1 and --warmup >= 0")
        config = RunConfig(inputs=list(inputs or []), out="", style=load_style(style), room=room, models=models,
                           size=size, seed=seed, steps=steps, batch_size=batch_size, device=device,
                           gpu_price=gpu_price, currency=currency, workers=4, retries=retries)
        config.check() if inputs else RunConfig(**{**config.__dict__, "inputs": ["synthetic"]}).check()
        torch_device = pick_device(device)
        price = resolve_price(_gpu_name(torch_device), gpu_price, currency)
        options = LoadOptions(dtype=dtype, channels_last=channels_last)
        with RunProgress(None) as bar:
            stack = load_stack(resolve(models), torch_device, on_model=bar.loading, options=options)
            if compile_models:
                for module in (stack.pipe.unet, *stack.pipe.controlnet.nets):
                    module.compile()
            summary = run_bench(config, stack, price, BenchOptions(images, warmup, (width, height), compare_diffusers,
                                                                   ablate), on_event=bar, compiled=compile_models)
        print_bench(summary)
        if as_json:
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

        from pipeline import imaging
        from pipeline.errors import ImageError
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

            from pipeline.models.load import load_depth, pick_device
            from pipeline.models.presets import resolve
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
def models_download(preset: Annotated[str, typer.Argument(help="Preset to fetch.")] = "sd15") -> None:
    """Fetch a preset's weights into the standard caches (HF_HOME, ultralytics weights_dir)."""
    with user_errors():
        from pipeline.models.download import download
        from pipeline.models.presets import resolve

        spec = resolve(preset)
        if spec.local:
            console.print(f"{preset}: built locally, nothing to download")
            return
        for path in download(spec, report=lambda msg: console.print(msg)):
            console.print(f"  [green]ok[/green] {path}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
