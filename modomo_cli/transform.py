"""`modomo transform`: its options, the RunConfig and RunPlan they make, and the rendering of the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape

from modomo_cli.errors import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_SOME_FAILED, user_errors
from modomo_cli.params import argv_for, command_from, flag, option
from modomo_cli.render import RunProgress, console, print_summary
from pipeline.errors import ModomoError, UsageError
from pipeline.options import TransformOptions

IO, STYLE, MODELS, QUALITY, DESIGN, CATALOGUE, CREDENTIALS, SCALE, SPEED, COST = (
    "Inputs and outputs",
    "Style and prompt",
    "Models and device",
    "Quality",
    "For designers",
    "Catalogues",
    "Content credentials",
    "Scale-out",
    "Speed",
    "Cost and display",
)

TRANSFORM = {
    "inputs": (
        list[str] | None,
        typer.Argument(
            help="Image files, folders (searched recursively) and/or r2://bucket/prefix (or --manifest).",
            show_default=False,
        ),
    ),
    "manifest": (
        Path | None,
        option(
            CATALOGUE,
            help="A .csv (with a header) or .jsonl of jobs, one per row: "
            "input, style, room, prompt, negative_prompt, seed, preserve, "
            "mask, name, variations, style_ref, set, mode, remove.",
        ),
    ),
    "sets_by": (
        str | None,
        option(
            CATALOGUE,
            "--sets-by",
            help="Room sets from the layout: parent (a folder of "
            "folders, one per room). A set's photos share a seed "
            "and follow its first photo's result.",
        ),
    ),
    "style": (
        str | None,
        option(
            STYLE,
            "--style",
            "-s",
            help="Built-in style(s), comma-separated (see `modomo "
            "styles`); default modern unless --style-file is given.",
        ),
    ),
    "style_file": (
        list[Path] | None,
        option(STYLE, "--style-file", help="A style TOML file of your own, rendered beside --style's (repeatable)."),
    ),
    "out": (str, option(IO, "--out", "-o", help="Output folder or r2://bucket/prefix.")),
    "room": (
        str | None,
        option(
            STYLE,
            help="Room type in the prompt, or auto: found per photo by CLIP (default when "
            "the preset has CLIP, else living room).",
        ),
    ),
    "models": (
        str,
        option(MODELS, help="sd15 (default), tiny, random-sd15, or a bundle folder.", envvar="MODOMO_MODELS"),
    ),
    "size": (int, option(MODELS, help="Long side of the working size in pixels (multiple of 8).")),
    "seed": (int, option(STYLE, help="Base seed; each image's seed derives from it and the input's identity.")),
    "steps": (int | None, option(STYLE, help="Denoising steps (default: the style's).")),
    "guidance_scale": (float | None, option(STYLE, help="CFG scale (default: the style's).")),
    "batch_size": (int, option(SPEED, help="Images per model call.")),
    "compile": (
        str,
        option(
            SPEED,
            help="auto: on a CPU, compile the denoising models once per working shape when the images queued "
            "for it repay the compile (packages kept for later runs); on a GPU, off. on: always. off: never.",
        ),
    ),
    "device": (str, option(MODELS, help="auto, cpu, cuda, cuda:N.")),
    "dtype": (
        str,
        option(
            MODELS,
            help="Number format: auto (fp16 on CUDA; bf16 on a CPU with AMX or AVX-512 BF16, "
            "else fp32), fp32, bf16, fp16.",
        ),
    ),
    "gpu_price": (
        float | None,
        option(COST, help="GPU price per hour (default: table by GPU).", envvar="MODOMO_GPU_PRICE"),
    ),
    "currency": (str | None, option(COST, help="Currency of --gpu-price.")),
    "format": (str, option(IO, "--format", help="Result format: png, jpeg (or jpg), webp.")),
    "workers": (int, option(SPEED, help="Threads reading ahead and writing behind.")),
    "resume": (bool, flag(IO, "--resume/--no-resume", help="Skip inputs already done with these settings.")),
    "overwrite": (bool, flag(IO, "--overwrite", help="Redo inputs even when already done.")),
    "fail_fast": (bool, flag(IO, "--fail-fast", help="Stop at the first image that fails.")),
    "min_quality": (float | None, option(QUALITY, help="Retry results scoring below this (default: the style's).")),
    "retries": (int, option(QUALITY, help="New seeds to try for a result below --min-quality.")),
    "lora": (list[str] | None, option(STYLE, "--lora", help="LoRA weights FILE[:SCALE] for every style (repeatable).")),
    "style_ref": (
        str | None,
        option(
            STYLE,
            "--style-ref",
            help="A reference photo whose look every result takes "
            "(IP-Adapter), with the style's prompt: a path or "
            "r2://bucket/key.",
        ),
    ),
    "style_ref_scale": (
        float | None,
        option(
            STYLE,
            "--style-ref-scale",
            help="How strongly --style-ref steers, 0 to 1.5 (default: the style's, else 0.6).",
        ),
    ),
    "checkpoint": (
        Path | None,
        option(MODELS, help="A single-file SD1.5 fine-tune (.safetensors) instead of the base model."),
    ),
    "mode": (
        str | None,
        option(
            DESIGN,
            "--mode",
            help="restyle (default: a style over the room), declutter (empty the room: furniture and clutter "
            "taken out, walls, floor, windows and doors kept; results named `empty`) or stage (furnish an empty "
            "room in --style, on its floor, its windows and doors kept; results named as the style's).",
        ),
    ),
    "remove": (
        str | None,
        option(
            DESIGN,
            "--remove",
            help="Declutter only these (implies --mode declutter): detected objects (tv, couch...), scene "
            "classes (rug, lamp...) and groups (clutter: bottles, cups, books, remotes, bags, toys...).",
        ),
    ),
    "preserve": (
        str | None,
        option(
            DESIGN,
            help="Keep these as they are: detected objects (couch,bed; sofa, "
            "plant...) and parts of the room (window, door, fireplace, stairs, "
            "radiator...; architecture = the first four).",
        ),
    ),
    "fidelity": (
        str | None,
        option(
            DESIGN,
            help="How much of the room may change: loose, balanced (the style's "
            "controls as they are) or strict (default: the style's, else "
            "balanced).",
        ),
    ),
    "mask_dir": (
        Path | None,
        option(DESIGN, help="Your own keep masks (white keeps), matched by relative path and stem."),
    ),
    "shard": (str | None, option(SCALE, help="Do shard i of N (i/N); default: from a K8s Indexed Job or SLURM array.")),
    "devices": (
        str | None,
        option(SCALE, help="One worker process per device: all, 0,1,2,3, cuda:0,cuda:1 (or cpu,cpu)."),
    ),
    "engine": (str, option(SCALE, help="modomo (this process) or ray (an actor per GPU; a cluster via RAY_ADDRESS).")),
    "actors": (int | None, option(SCALE, help="Ray actors (default: one per GPU, else one).")),
    "report": (bool, flag(DESIGN, "--report", help="Write report.html into the output.")),
    "save_controls": (bool, flag(DESIGN, "--save-controls", help="Save each image's depth, edges and object masks.")),
    "disclose": (
        str | None,
        option(
            DESIGN,
            help="Draw this disclosure in a corner of every result and thumbnail, "
            "e.g. 'Virtually staged' (default: the style's `disclose`); {original_url} and {original} name the "
            "published original (--publish-originals).",
        ),
    ),
    "disclose_qr": (
        bool,
        flag(
            DESIGN,
            "--disclose-qr",
            help="Add a QR code to the disclosure that opens the published original (its URL on R2 with "
            "CDN_DOMAIN, else its path in the output).",
        ),
    ),
    "publish_originals": (
        bool,
        flag(
            DESIGN,
            "--publish-originals",
            help="Publish each input photo, as decoded and without EXIF (no GPS), under originals/ in the "
            "output, linked from the index: the unaltered original listing rules ask for.",
        ),
    ),
    "name_template": (
        str | None,
        option(
            CATALOGUE,
            "--name",
            help="Output names, e.g. '{parent}/{stem}-{style}'; fields: {stem} {parent} {root} {style} {room} "
            "{seed} {n}.",
        ),
    ),
    "events": (
        str | None,
        option(
            CATALOGUE, "--events", help="Write one JSON line per finished job to FILE (or - for stdout), as it happens."
        ),
    ),
    "sign_cert": (
        Path | None,
        option(
            CREDENTIALS,
            help="Sign every result and thumbnail with C2PA content "
            "credentials: this PEM certificate chain (signer first).",
            envvar="MODOMO_SIGN_CERT",
        ),
    ),
    "sign_key": (
        Path | None,
        option(CREDENTIALS, help="The private key (PEM) of --sign-cert's first certificate.", envvar="MODOMO_SIGN_KEY"),
    ),
    "variations": (
        int | None,
        option(
            DESIGN,
            help="Results per photo, each with its own seed (default: the "
            "style's, else 1); named .v1 ... .vN, or by {n} in --name.",
        ),
    ),
    "output_size": (
        str,
        option(
            DESIGN,
            help="Results at the working size, the photo's original size, or a long "
            "side in pixels (upscaled by the preset's super-resolution model).",
        ),
    ),
    "contact_sheet": (
        bool,
        flag(
            DESIGN,
            "--contact-sheet",
            help="Write contact-sheet.jpg into the output: each job's photo and results, labelled, for sharing.",
        ),
    ),
    "fast": (
        bool,
        flag(
            SPEED,
            "--fast",
            help="Few-step sampling: a distillation LoRA fused into the UNet at load "
            "(LCM-LoRA, 6 steps, no guidance, unless --fast-recipe).",
        ),
    ),
    "fast_recipe": (
        str | None,
        option(SPEED, help="The few-step recipe for --fast: lcm, tcd or hyper (implies --fast)."),
    ),
    "as_json": (bool, flag(COST, "--json", help="Print the run summary as JSON on stdout.")),
    "progress": (bool | None, flag(COST, "--progress/--no-progress", help="Progress bar (default: when a terminal).")),
    "dry_run": (
        bool,
        flag(
            IO,
            "--dry-run",
            help="Check the whole run without loading a model: inputs, manifest "
            "rows, names, output, what is done; print the plan.",
        ),
    ),
}
# What each device worker gets on its own (device, shard, output format) or the parent does (report, sheet).
WORKER_OWN = {
    "devices",
    "shard",
    "device",
    "as_json",
    "progress",
    "engine",
    "actors",
    "report",
    "events",
    "contact_sheet",
    "dry_run",
}


@command_from(TransformOptions, TRANSFORM)
def transform(options: TransformOptions, ctx: typer.Context) -> None:
    """Restyle every photo in INPUTS and write result, thumbnail and metadata under --out."""
    with user_errors():
        if options.events == "-" and options.as_json:
            raise UsageError("--events - and --json both write to stdout; send the events to a file")
        plan = make_plan(options, worker_argv(options, ctx.command))
        if options.dry_run:
            return show_dry_run(plan, options.as_json)
        execute(plan, options.progress, options.as_json, options.events)


def worker_argv(options: TransformOptions, command) -> list[str]:
    """This command line again, minus what each worker gets on its own; --report and --contact-sheet make the
    workers save each photo's input and control maps."""
    argv = argv_for(options, command, WORKER_OWN)
    if (options.report or options.contact_sheet) and not options.save_controls:
        argv.append("--save-controls")  # the report shows each image's control maps, the sheet its input
    return argv


def show_dry_run(plan, as_json: bool) -> None:
    """The plan, and each problem found, one line each; exit 3 when some job would fail."""
    from pipeline.run.dry_run import describe

    found = describe(plan)
    shard = f" (shard {found['shard']})" if found["shard"] else ""
    console.print(
        f"dry run     {found['inputs']} of {found['of']} inputs{shard}, {found['jobs']} jobs in "
        f"{styles_text(found)} on {found['models']} ({found['engine']}) into {found['out']}: "
        f"{found['to_do']} to do, {found['done']} done",
        soft_wrap=True,
    )
    for line in found["examples"]:
        console.print(f"  {escape(line)}", soft_wrap=True)
    for source in found["references"]:
        console.print(f"  reference {escape(source)}", soft_wrap=True)
    for name, keys in found["sets"].items():
        console.print(
            f"  room set {escape(name)}: {escape(keys[0])} (anchor), {escape(', '.join(keys[1:]))}"
            if len(keys) > 1
            else f"  room set {escape(name)}: {escape(keys[0])} alone",
            soft_wrap=True,
        )
    for line in found["removes"]:
        console.print(f"  declutter takes out {escape(line)}", soft_wrap=True)
    if found["moved"]:
        console.print(f"  {found['moved']} done job(s) found at a new place: recorded there, nothing redone")
    for line in found["replaces"][:3]:
        console.print(f"  {escape(line)}", soft_wrap=True)
    if len(found["replaces"]) > 3:
        console.print(f"  ... {len(found['replaces']) - 3} more results from earlier settings replaced")
    if found["checked"]:
        console.print(f"  checked {found['checked']}", soft_wrap=True)
    for problem in [*found["problems"], *([found["weights"]] if found["weights"] else [])]:
        console.print(f"[red]problem[/red] {escape(problem)}", soft_wrap=True)
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
    if found["weights"]:  # the real run would stop loading, before any job: its exit code
        raise typer.Exit(EXIT_FATAL)
    if found["problems"]:
        raise typer.Exit(EXIT_SOME_FAILED)


def styles_text(found: dict) -> str:
    """The dry run's styles, each with its mode unless a restyle: `boho (stage), empty (declutter)`."""
    modes = found.get("modes") or {}
    return ", ".join(
        name if modes.get(name, "restyle") == "restyle" else f"{name} ({modes[name]})" for name in found["styles"]
    )


def make_plan(options: TransformOptions, argv: list[str]):
    """Everything that can be wrong with the options, the inputs or the output, found before models load."""
    from pipeline.run.plan import build_plan

    plan = build_plan(options, worker_argv=argv)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
    if plan.shard is not None:
        console.print(f"shard       {plan.shard}: {len(plan.items)} of {len(plan.everything)} inputs", soft_wrap=True)
    return plan


def execute(plan, progress: bool | None, as_json: bool, events: str | None = None) -> None:
    """Run the plan on its engine, print the summary (and JSON), write the report, exit with the run's code."""
    from pipeline.run import execute
    from pipeline.run.events import EventLog, fan_out

    log = EventLog(events) if events else None
    with RunProgress(progress) as bar:
        hooks = execute.Hooks(
            on_event=fan_out(bar, log),
            on_model=bar.loading,
            notice=lambda text: console.print(escape(text), soft_wrap=True),
        )
        try:
            result = execute.run(plan, hooks)
        finally:
            if log is not None:
                log.close()
    summary = result.to_json()
    print_summary(summary, told=bar.told)
    if not result.fatal:
        written = execute.write_report(plan)
        if written:
            console.print(f"report      {written}", soft_wrap=True)
        for page in execute.write_contact_sheet(plan):
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
