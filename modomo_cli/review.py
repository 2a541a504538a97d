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
    mode: Annotated[
        str,
        typer.Option(
            help="restyle, or declutter: AFTER empties BEFORE (what it left, the seam; needs --models for the "
            "detector, SAM2 and scene segmentation).",
            metavar="MODE",
        ),
    ] = "restyle",
    as_json: Annotated[bool, typer.Option("--json", help="Print the score as JSON on stdout.")] = False,
) -> None:
    """Score a before/after pair: does AFTER keep BEFORE's room (layout, depth) and look like a photo?"""
    with user_errors():
        if mode not in ("restyle", "declutter"):
            raise UsageError(f"--mode {mode!r}: choose restyle or declutter")
        if mode == "declutter" and not models:
            raise UsageError("--mode declutter needs --models (the detector, SAM2 and scene segmentation to look with)")
        scored = score_pair(before, after, models, mode)
    if as_json:
        sys.stdout.write(json.dumps({**scored, "before": str(before), "after": str(after)}, indent=2) + "\n")
        return
    from rich.table import Table

    console.print(f"{before} -> {after}", soft_wrap=True)
    table = Table()
    table.add_column("part")
    table.add_column("value", justify="right")
    for name, part in scored["parts"].items():
        table.add_row(name, f"{part:.3f}")
    table.add_row("[bold]score[/bold]", f"[bold]{scored['score']:.3f}[/bold]")
    for name, part in scored["fidelity"].items():
        shown = ", ".join(f"{k} {v:.3f}" for k, v in part.items()) if isinstance(part, dict) else f"{part:.3f}"
        shown = str(part) if isinstance(part, int) else shown  # a count: objects left
        table.add_row(f"fidelity: {name.replace('_', ' ')}", shown)
    console.print(table)


def score_pair(before: Path, after: Path, models: str | None, mode: str) -> dict:
    """The score, its parts and the fidelity of a pair (with a preset: depth too); a declutter's also what it
    took out of BEFORE and what AFTER left (pipeline.stages.declutter_check)."""
    from pipeline.errors import ImageError
    from pipeline.inputs import imaging
    from pipeline.stages.fidelity import fidelity
    from pipeline.stages.validate import cleared, quality

    images = []
    for path in (before, after):
        try:
            images.append(imaging.decode(path.read_bytes(), str(path)))
        except (OSError, ImageError) as exc:
            raise ModomoError(f"{path}: {getattr(exc, 'strerror', None) or exc}", EXIT_USAGE) from None
    depths, check = loaded_for_score(models, images, mode)
    if check is None:
        value, parts = quality(images[0], images[1], *depths)
        return {"score": value, "parts": parts, "fidelity": fidelity(images[0], images[1], *depths)}
    from pipeline.stages.declutter_check import result_at
    from pipeline.stages.preserve import held

    frame = check.removal_of(images[0])  # what a declutter of BEFORE takes out, as a run's masker decides it
    frame.result = images[1]
    frame.result = result_at(frame)  # at BEFORE's size, where the removal mask is
    check([frame])
    hold = held(frame)
    value, parts = quality(frame.image, frame.result, *depths, keep=hold)
    measured = {**fidelity(frame.image, frame.result, *depths, hold), **frame.fidelity}
    value, parts = cleared(value, parts, measured)
    taken = {"removed": list(frame.removed), "removed_area": round(float(frame.removal.mean()), 4)}
    return {"score": value, "parts": parts, "fidelity": measured, "mode": mode, "declutter": taken}


def loaded_for_score(models: str | None, images: list, mode: str) -> tuple[tuple, object]:
    """With a preset: the pair's depth maps and, for a declutter, a DeclutterCheck with its models; never a
    download (a missing part is one line)."""
    if not models:
        return (None, None), None
    import numpy as np
    import torch

    from pipeline.models import catalog, inventory, loaders, placement
    from pipeline.stages.depth import DepthEstimator

    spec = catalog.resolve(models)
    if mode == "declutter":  # what it looks with, and depth, named in one line
        inventory.check_weights(spec, roles=("depth", "yolo", "sam2", "sam2 config"), fetch=False)
    inventory.check_weights(spec, roles=("depth",), fetch=False)  # here, or one line: never a download
    device = placement.pick_device("auto")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model, processor = loaders.load_depth(spec, device, dtype)
    depths = tuple(np.asarray(d) for d in DepthEstimator(model, processor, device, dtype).estimate(images))
    if mode != "declutter":
        return depths, None
    from pipeline.stages.declutter_check import load_check

    return depths, load_check(spec, device, dtype)


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
    """Check that each generated picture says it is AI-edited and that its content credentials, if any, validate.

    Each result, thumbnail and contact sheet page must carry the IPTC digital source type in its XMP, and its C2PA
    content credentials, when signed, must validate; photo previews are reported as photos and files that are not
    images as skipped."""
    with user_errors():
        from pipeline.outputs.verify import verify

        checked = verify(target)
    if as_json:
        sys.stdout.write(json.dumps(checked, indent=2) + "\n")
    for entry in checked:
        if not entry["ok"]:
            label, reason = verify_problem(entry)
            console.print(f"[red]{label}[/red] {escape(entry['file'])}: {escape(reason)}", soft_wrap=True)
    for line in verify_summary(checked):
        console.print(line, soft_wrap=True)
    if not all(entry["ok"] for entry in checked):
        raise typer.Exit(1)


def verify_summary(checked: list[dict]) -> list[str]:
    """The summary lines, each count naming what it counts: generated pictures marked, photos' previews left
    unmarked, files skipped, signed files (those carrying a manifest or whose run signed them) valid."""
    kinds = {kind: [e for e in checked if e.get("kind", "generated") == kind] for kind in ("generated", "photo")}
    generated, photos = kinds["generated"], kinds["photo"]
    marked = sum(entry["marked"] for entry in generated)
    lines = [
        f"verify      {marked} of {len(generated)} generated pictures marked as AI-edited "
        "(IPTC compositeWithTrainedAlgorithmicMedia)"
    ]
    if photos:
        plain = sum(not entry["marked"] for entry in photos)
        originals = sum("/originals/" in entry["file"] for entry in photos)
        what = "photo previews (.input.jpg)"
        if originals:
            what = f"photos ({len(photos) - originals} previews .input.jpg, {originals} published originals)"
        lines.append(f"photos      {plain} of {len(photos)} {what} unmarked, as photos are")
    by_reason: dict[str, list[str]] = {}
    for entry in checked:
        if entry.get("kind") == "skipped":
            by_reason.setdefault(entry["reason"], []).append(entry["file"].rsplit("/", 1)[-1])
    for reason, names in by_reason.items():
        names.sort(key=lambda name: (name.count("."), name))  # report.html and index.csv before each job's files
        shown = ", ".join(names[:4]) + (f", … ({len(names) - 4} more)" if len(names) > 4 else "")
        lines.append(escape(f"skipped     {len(names)} file{'s' if len(names) != 1 else ''}, {reason}: {shown}"))
    signed = [entry for entry in generated if entry["c2pa"] or entry.get("signed")]
    if signed:
        manifests = [entry["c2pa"] for entry in signed if entry["c2pa"]]
        valid = sum(bool(entry["c2pa"] and entry["c2pa"]["valid"]) for entry in signed)
        signers = ", ".join(sorted({f"{c['signer']!r} ({c['issuer']})" for c in manifests if c.get("signer")}))
        trusted = "" if all(c.get("trusted") for c in manifests) else "; the chain is not on the validator's trust list"
        lines.append(
            f"c2pa        {valid} of {len(signed)} signed files valid, signed by {escape(signers or 'nobody named')}"
            f"{trusted}"
        )
    return lines


def verify_problem(entry: dict) -> tuple[str, str]:
    """Why a file fails verification: a one-word label and one line."""
    if entry.get("kind") == "skipped":
        return entry["reason"], f"it is {entry['reason']}; there is nothing to verify"
    if not entry["marked"]:
        return "unmarked", "no IPTC digital source type in its XMP"
    if entry["c2pa"] is None:
        return "unsigned", "its run signed it, but it carries no C2PA manifest"
    failures = ", ".join(entry["c2pa"]["failures"]) or entry["c2pa"]["state"]
    return "invalid", f"its C2PA manifest does not validate ({failures})"
