"""Commands that look at styles and results: `modomo styles`, `modomo score`, `modomo index`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from modomo_cli.errors import EXIT_USAGE, user_errors
from modomo_cli.render import console
from pipeline.errors import ModomoError, UsageError


def styles_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the styles as JSON on stdout.")] = False,
) -> None:
    """List the built-in styles."""
    from rich.table import Table

    from styles import list_styles, load_style

    with user_errors():
        loaded = [load_style(name) for name in list_styles()]
    if as_json:
        sys.stdout.write(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "description": s.description,
                        "prompt": s.prompt,
                        "steps": s.steps,
                        "guidance_scale": s.guidance_scale,
                    }
                    for s in loaded
                ],
                indent=2,
            )
            + "\n"
        )
        return
    table = Table(title="styles", title_justify="left")
    for column in ("name", "description", "steps", "guidance", "depth scale", "canny scale / end"):
        table.add_column(column)
    for s in loaded:
        table.add_row(
            s.name,
            s.description,
            str(s.steps),
            f"{s.guidance_scale:g}",
            f"{s.depth.scale:g}",
            f"{s.canny.scale:g} / {s.canny.end:g}",
        )
    console.print(table)


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
        from pipeline.stages.fidelity import fidelity
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
        faithful = fidelity(images[0], images[1], *depths)
    if as_json:
        sys.stdout.write(
            json.dumps(
                {"score": value, "parts": parts, "fidelity": faithful, "before": str(before), "after": str(after)},
                indent=2,
            )
            + "\n"
        )
        return
    from rich.table import Table

    console.print(f"{before} -> {after}", soft_wrap=True)
    table = Table()
    table.add_column("part")
    table.add_column("value", justify="right")
    for name, part in parts.items():
        table.add_row(name, f"{part:.3f}")
    table.add_row("[bold]score[/bold]", f"[bold]{value:.3f}[/bold]")
    for name, part in faithful.items():
        table.add_row(f"fidelity: {name.replace('_', ' ')}", f"{part:.3f}")
    console.print(table)


def index_cmd(
    out: Annotated[str, typer.Argument(help="An output folder or r2://bucket/prefix that modomo wrote into.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON on stdout.")] = False,
) -> None:
    """Rebuild OUT/index.csv and OUT/index.jsonl from OUT's journal (all runs, all shards)."""
    with user_errors():
        from pipeline.outputs.index import write_index
        from pipeline.outputs.sinks import open_sink

        sink = open_sink(out)
        if not sink.is_output():
            raise UsageError(f"{out}: not a modomo output (no journal in {out.rstrip('/')}/.modomo/); nothing written")
        written = write_index(sink)
    if as_json:
        sys.stdout.write(json.dumps(written, indent=2) + "\n")
    console.print(
        f"index       {written['csv']} ({written['jobs']} jobs: {written['ok']} ok, {written['failed']} failed)",
        soft_wrap=True,
    )


def verify_cmd(
    target: Annotated[
        str,
        typer.Argument(
            help="A result, a folder of images, or an output (folder or "
            "r2://bucket/prefix) whose journal lists its results."
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each file's marking and credentials as JSON on stdout.", metavar="")
    ] = False,
) -> None:
    """Check that each result says it is an AI-edited photo (IPTC digital source type in its XMP) and that its
    C2PA content credentials, when signed, validate."""
    with user_errors():
        from pipeline.outputs.verify import verify

        checked = verify(target)
    if as_json:
        sys.stdout.write(json.dumps(checked, indent=2) + "\n")
    for entry in checked:
        if not entry["ok"]:
            label, reason = verify_problem(entry)
            console.print(f"[red]{label}[/red] {escape(entry['file'])}: {escape(reason)}", soft_wrap=True)
    marked = sum(entry["marked"] for entry in checked)
    console.print(
        f"verify      {marked} of {len(checked)} files marked as AI-edited (IPTC compositeWithTrainedAlgorithmicMedia)",
        soft_wrap=True,
    )
    signed = [entry["c2pa"] for entry in checked if entry["c2pa"]]
    if signed:
        signers = ", ".join(sorted({f"{c['signer']!r} ({c['issuer']})" for c in signed if c.get("signer")}))
        trusted = "" if all(c.get("trusted") for c in signed) else "; the chain is not on the validator's trust list"
        console.print(
            f"c2pa        {sum(c['valid'] for c in signed)} of {len(signed)} content credentials valid, "
            f"signed by {escape(signers or 'nobody named')}{trusted}",
            soft_wrap=True,
        )
    if not all(entry["ok"] for entry in checked):
        raise typer.Exit(1)


def verify_problem(entry: dict) -> tuple[str, str]:
    """Why a file fails verification: a one-word label and one line."""
    if not entry["marked"]:
        return "unmarked", "no IPTC digital source type in its XMP"
    if entry["c2pa"] is None:
        return "unsigned", "its run signed it, but it carries no C2PA manifest"
    failures = ", ".join(entry["c2pa"]["failures"]) or entry["c2pa"]["state"]
    return "invalid", f"its C2PA manifest does not validate ({failures})"
