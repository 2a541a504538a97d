"""`modomo transform`: its options, the RunConfig and RunPlan they make, and the rendering of the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from modomo_cli.errors import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_SOME_FAILED, user_errors
from modomo_cli.render import RunProgress, console, print_summary
from pipeline.errors import ModomoError, UsageError

Opt = typer.Option
Inputs = Annotated[list[str] | None, typer.Argument(
    help="Image files, folders (searched recursively) and/or r2://bucket/prefix (or --manifest).")]
Manifest = Annotated[Path | None, Opt(help="A .csv (with a header) or .jsonl of jobs, one per row: input, style, "
                                           "room, prompt, negative_prompt, seed, preserve, mask, name.")]
StyleNames = Annotated[str, Opt("--style", "-s", help="Built-in style(s), comma-separated (see `modomo styles`).")]
StyleFile = Annotated[Path | None, Opt("--style-file", help="A style TOML file of your own (overrides --style).")]
Out = Annotated[str, Opt("--out", "-o", help="Output folder or r2://bucket/prefix.")]
Room = Annotated[str | None, Opt(help="Room type in the prompt, or auto: found per photo by CLIP (default when the "
                                     "preset has CLIP, else living room).")]
Models = Annotated[str, Opt(help="sd15 (default), tiny, or a bundle folder.", envvar="MODOMO_MODELS")]
Size = Annotated[int, Opt(help="Long side of the working size in pixels (multiple of 8).")]
Seed = Annotated[int, Opt(help="Base seed; each image's seed derives from it and the input's identity.")]
Steps = Annotated[int | None, Opt(help="Denoising steps (default: the style's).")]
Guidance = Annotated[float | None, Opt(help="CFG scale (default: the style's).")]
BatchSize = Annotated[int, Opt(help="Images per model call.")]
Device = Annotated[str, Opt(help="auto, cpu, cuda, cuda:N.")]
GpuPrice = Annotated[float | None, Opt(help="GPU price per hour (default: table by GPU).", envvar="MODOMO_GPU_PRICE")]
Currency = Annotated[str | None, Opt(help="Currency of --gpu-price.")]
Format = Annotated[str, Opt("--format", help="Result format: png, jpeg, webp.")]
Workers = Annotated[int, Opt(help="Threads reading ahead and writing behind.")]
Resume = Annotated[bool, Opt("--resume/--no-resume", help="Skip inputs already done with these settings.")]
Overwrite = Annotated[bool, Opt("--overwrite", help="Redo inputs even when already done.")]
FailFast = Annotated[bool, Opt("--fail-fast", help="Stop at the first image that fails.")]
MinQuality = Annotated[float | None, Opt(help="Retry results scoring below this (default: the style's).")]
Retries = Annotated[int, Opt(help="New seeds to try for a result below --min-quality.")]
Loras = Annotated[list[str] | None, Opt("--lora", help="LoRA weights FILE[:SCALE] for every style (repeatable).")]
Checkpoint = Annotated[Path | None, Opt(help="A single-file SD1.5 fine-tune (.safetensors) instead of the base model.")]
Preserve = Annotated[str | None, Opt(help="Keep these detected objects as they are: couch,bed (sofa, plant... too).")]
MaskDir = Annotated[Path | None, Opt(help="Your own keep masks (white keeps), matched by relative path and stem.")]
ShardOpt = Annotated[str | None, Opt(help="Do shard i of N (i/N); default: from a K8s Indexed Job or SLURM array.")]
Devices = Annotated[str | None, Opt(help="One worker process per device: all, 0,1,2,3, cuda:0,cuda:1 (or cpu,cpu).")]
Engine = Annotated[str, Opt(help="modomo (this process) or ray (an actor per GPU; a cluster via RAY_ADDRESS).")]
Actors = Annotated[int | None, Opt(help="Ray actors (default: one per GPU, else one).")]
Report = Annotated[bool, Opt("--report", help="Write report.html into the output.")]
NameTemplate = Annotated[str | None, Opt("--name", help="Output names: {stem}, {parent}, {style}, {room}, {seed}, "
                                                         "{n}; e.g. '{parent}/{stem}-{style}'.")]
Events = Annotated[str | None, Opt("--events", help="Write one JSON line per finished job to FILE (or - for "
                                                    "stdout), as it happens.")]
Variations = Annotated[int | None, Opt(help="Results per photo, each with its own seed (default: the style's, "
                                            "else 1); named .v1 ... .vN, or by {n} in --name.")]
OutputSize = Annotated[str, Opt(help="Results at the working size, the photo's original size, or a long side in "
                                     "pixels (upscaled by the preset's super-resolution model).")]
ContactSheet = Annotated[bool, Opt("--contact-sheet", help="Write contact-sheet.jpg into the output: each job's "
                                                           "photo and results, labelled, for sharing.")]
Fast = Annotated[bool, Opt("--fast", help="Few-step sampling: a distillation LoRA fused into the UNet at load "
                                          "(LCM-LoRA, 6 steps, no guidance, unless --fast-recipe).")]
FastRecipe = Annotated[str | None, Opt(help="The few-step recipe for --fast: lcm, tcd or hyper (implies --fast).")]
SaveControls = Annotated[bool, Opt("--save-controls", help="Save each image's depth, edges and object masks.")]
AsJson = Annotated[bool, Opt("--json", help="Print the run summary as JSON on stdout.")]
ShowProgress = Annotated[bool | None, Opt("--progress/--no-progress", help="Progress bar (default: when a terminal).")]


def transform(ctx: typer.Context, inputs: Inputs = None, manifest: Manifest = None, style: StyleNames = "modern",
              style_file: StyleFile = None, out: Out = "modomo-out", room: Room = None, models: Models = "sd15",
              size: Size = 768,
              seed: Seed = 0, steps: Steps = None, guidance_scale: Guidance = None, batch_size: BatchSize = 1,
              device: Device = "auto", gpu_price: GpuPrice = None, currency: Currency = None, fmt: Format = "png",
              workers: Workers = 4, resume: Resume = True, overwrite: Overwrite = False, fail_fast: FailFast = False,
              min_quality: MinQuality = None, retries: Retries = 2, lora: Loras = None,
              checkpoint: Checkpoint = None, preserve: Preserve = None, mask_dir: MaskDir = None,
              shard: ShardOpt = None, devices: Devices = None, engine: Engine = "modomo", actors: Actors = None,
              report: Report = False, save_controls: SaveControls = False, name: NameTemplate = None,
              events: Events = None, variations: Variations = None, output_size: OutputSize = "working",
              contact_sheet: ContactSheet = False, fast: Fast = False, fast_recipe: FastRecipe = None,
              as_json: AsJson = False, progress: ShowProgress = None) -> None:
    """Restyle every photo in INPUTS and write result, thumbnail and metadata under --out."""
    with user_errors():
        if events == "-" and as_json:
            raise UsageError("--events - and --json both write to stdout; send the events to a file")
        plan = make_plan(ctx)
        execute(plan, progress, as_json, events)


def run_config(params: dict):
    """The RunConfig the options describe (checked later, with the plan)."""
    from pipeline.config import RunConfig
    from pipeline.models.lora import parse as parse_lora
    from pipeline.stages.preserve import resolve_labels
    from styles import load_style

    p = params
    chosen = [load_style(path=p["style_file"])] if p["style_file"] else \
        [load_style(name.strip()) for name in p["style"].split(",")]
    return RunConfig(
        inputs=list(p["inputs"] or []), manifest=str(p["manifest"]) if p["manifest"] else None, out=p["out"],
        style=chosen[0], more_styles=chosen[1:], room=p["room"],
        models=p["models"], size=p["size"], seed=p["seed"], steps=p["steps"], guidance_scale=p["guidance_scale"],
        batch_size=p["batch_size"], device=p["device"], gpu_price=p["gpu_price"], currency=p["currency"],
        format=p["fmt"], workers=p["workers"], resume=p["resume"], overwrite=p["overwrite"],
        fail_fast=p["fail_fast"], min_quality=p["min_quality"], retries=p["retries"],
        save_controls=p["save_controls"] or p["report"], loras=[parse_lora(text) for text in p["lora"] or []],
        preserve=resolve_labels(p["preserve"]) if p["preserve"] else set(),
        mask_dir=str(p["mask_dir"]) if p["mask_dir"] else None, name_template=p["name"],
        variations=p["variations"], output_size=p["output_size"],
        fast=p["fast_recipe"] or ("lcm" if p["fast"] else None),
    )


def make_plan(ctx: typer.Context):
    """Everything that can be wrong with the options, the inputs or the output, found before models load."""
    from pipeline.run.plan import build_plan
    from pipeline.run.shards import from_environment, parse

    p = ctx.params
    part = parse(p["shard"]) if p["shard"] else from_environment()
    plan = build_plan(run_config(p), shard=part, devices=p["devices"], engine=p["engine"], actors=p["actors"],
                      report=p["report"], checkpoint=p["checkpoint"], worker_argv=worker_argv(ctx),
                      contact_sheet=p["contact_sheet"])
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
    if part is not None:
        console.print(f"shard       {part}: {len(plan.items)} of {len(plan.everything)} inputs", soft_wrap=True)
    return plan


def execute(plan, progress: bool | None, as_json: bool, events: str | None = None) -> None:
    """Run the plan on its engine, print the summary (and JSON), write the report, exit with the run's code."""
    from pipeline.run import execute
    from pipeline.run.events import EventLog, fan_out

    log = EventLog(events) if events else None
    with RunProgress(progress) as bar:
        hooks = execute.Hooks(on_event=fan_out(bar, log), on_model=bar.loading,
                              notice=lambda text: console.print(escape(text), soft_wrap=True))
        try:
            result = execute.run(plan, hooks)
        finally:
            if log is not None:
                log.close()
    summary = result.to_json()
    print_summary(summary)
    if not result.fatal:
        written = execute.write_report(plan, summary)
        if written:
            console.print(f"report      {written}", soft_wrap=True)
        for page in execute.write_contact_sheet(plan, summary):
            console.print(f"sheet       {page}", soft_wrap=True)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    if result.fatal:
        raise ModomoError(result.fatal, EXIT_FATAL)
    if result.interrupted:
        console.print("interrupted: rerun the same command to finish (done inputs are skipped)")
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.counts["failed"]:
        raise typer.Exit(EXIT_SOME_FAILED)


# What each device worker gets on its own (device, shard, output format) or the parent does (report).
WORKER_OWN = {"devices", "shard", "device", "as_json", "progress", "ctx", "engine", "actors", "report", "events",
              "contact_sheet"}


def worker_argv(ctx: typer.Context) -> list[str]:
    """This command line again, minus what each worker gets on its own."""
    argv: list[str] = []
    for param in ctx.command.params:
        if param.name in WORKER_OWN or param.name not in ctx.params:
            continue
        value = ctx.params[param.name]
        if isinstance(param, typer.core.TyperArgument):
            argv += [str(v) for v in value or []]
        elif value is None or value == param.default:
            continue
        elif param.is_flag:
            argv.append(param.opts[0] if value else param.secondary_opts[0])
        elif isinstance(value, list | tuple):
            for v in value:
                argv += [param.opts[0], str(v)]
        else:
            argv += [param.opts[0], str(value)]
    if ctx.params.get("report"):
        argv.append("--save-controls")  # the report shows each image's control maps
    return argv
