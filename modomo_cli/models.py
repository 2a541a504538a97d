"""`modomo models`: list, fetch and export the model presets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from modomo_cli.errors import EXIT_USAGE, user_errors
from modomo_cli.params import Command, Group
from modomo_cli.render import console
from pipeline.errors import ModomoError

models_app = typer.Typer(help="List and fetch model presets.", no_args_is_help=True, cls=Group)


@models_app.command("list", cls=Command)
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the presets as JSON on stdout.")] = False,
) -> None:
    """The presets, the models each one loads, and whether they are in the local caches."""
    from rich.table import Table

    from pipeline.doctor import model_files
    from pipeline.models.presets import sd15

    rows = [
        {"preset": "sd15", "model": role, "id": model_id, "cached": path is not None}
        for role, model_id, path in model_files(sd15())
    ]
    rows.append({"preset": "tiny", "model": "all", "id": "random tiny models built from configs", "cached": True})
    rows.append(
        {
            "preset": "random-sd15",
            "model": "all",
            "id": "real architectures, random weights, for timing",
            "cached": True,
        }
    )
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="model presets", title_justify="left")
    for column in ("preset", "model", "id", "cached"):  # a long id folds onto the next line, never cut
        table.add_column(column, overflow="fold" if column == "id" else "ellipsis")
    for row in rows:
        cached = "[green]yes[/green]" if row["cached"] else "[red]no[/red]"
        table.add_row(row["preset"], row["model"], row["id"], cached)
    console.print(table)
    console.print("or --models DIR for a bundle folder (see the README); fetch sd15 with `modomo models download`")


@models_app.command("export-tiny", cls=Command)
def models_export_tiny(folder: Annotated[Path, typer.Argument(help="Where to write the bundle.")]) -> None:
    """Write the tiny random bundle to FOLDER (the bundle layout; load it with --models FOLDER)."""
    with user_errors():
        from pipeline.models.tiny import build_tiny_bundle

        if folder.exists() and any(folder.iterdir()):
            raise ModomoError(f"{folder}: folder is not empty", EXIT_USAGE)
        console.print(f"tiny bundle written to {build_tiny_bundle(folder)}", soft_wrap=True)


@models_app.command("download", cls=Command)
def models_download(
    preset: Annotated[str, typer.Argument(help="Preset to fetch.")] = "sd15",
    fast: Annotated[bool, typer.Option("--fast", help="Also fetch the default few-step recipe's LoRA.")] = False,
    fast_recipe: Annotated[
        str | None, typer.Option(help="The recipe whose LoRA --fast fetches: lcm, tcd, hyper, or all (implies --fast).")
    ] = None,
    style_ref: Annotated[
        bool,
        typer.Option(
            "--style-ref",
            help="Also fetch the IP-Adapter and its image encoder "
            "(about 2.5 GB), which --style-ref and room sets steer the look "
            "with.",
        ),
    ] = False,
    declutter: Annotated[
        bool,
        typer.Option(
            "--declutter",
            help="Also fetch the inpaint ControlNet and LaMa (about 1.6 GB), which --mode declutter empties a room "
            "with.",
        ),
    ] = False,
) -> None:
    """Fetch a preset's weights into the standard caches (HF_HOME, modomo's detector folder); with --fast, the
    few-step LoRA as well; with --style-ref, the IP-Adapter; with --declutter, the inpaint ControlNet and LaMa."""
    with user_errors():
        from pipeline.models.catalog import resolve
        from pipeline.models.download import (
            download,
            download_declutter,
            download_fast,
            download_ip_adapter,
            fast_recipes,
        )

        recipes = fast_recipes(fast_recipe) if fast or fast_recipe else []
        spec = resolve(preset)
        if spec.local:
            console.print(f"{preset}: built locally, nothing to download")
            return
        fetched = download(spec, report=console.print) + download_fast(spec, recipes, report=console.print)
        if style_ref:  # only on request: the image encoder alone is 2.5 GB
            fetched += download_ip_adapter(spec, report=console.print)
        if declutter:  # only on request: the inpaint ControlNet alone is 1.4 GB
            fetched += download_declutter(spec, report=console.print)
        for path in fetched:
            console.print(f"  [green]ok[/green] {path}")
