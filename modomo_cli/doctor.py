"""`modomo doctor`: what this machine has and lacks for each preset."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape

from modomo_cli.errors import EXIT_FATAL
from modomo_cli.render import console


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON on stdout.")] = False,
) -> None:
    """Check what this machine has and lacks: Python, torch, GPU, cached weights, ultralytics, R2 (never downloads).

    Exit 1 only when something `modomo transform` needs with its defaults is missing; an optional part that is
    missing is a warning naming what it enables."""
    from dataclasses import asdict

    from pipeline import __version__
    from pipeline.doctor import run_checks

    checks = run_checks()
    if as_json:
        sys.stdout.write(json.dumps([asdict(c) for c in checks], indent=2) + "\n")
    else:
        console.print(f"modomo {__version__}", soft_wrap=True)
        console.print(checks_table(checks))
    optional = [c for c in checks if c.enables and not c.required and c.status != "ok"]
    for c in optional:
        console.print(
            f"[yellow]warning[/yellow] {escape(c.area)} {escape(c.name)}: optional, not available; it "
            f"enables {escape(c.enables)}",
            soft_wrap=True,
        )
    problems = [c for c in checks if c.required and c.status != "ok"]
    if problems:
        console.print(
            f"[red]{len(problems)} problem(s)[/red] for the default preset (sd15): "
            + "; ".join(f"{c.area} {c.name}" for c in problems),
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_FATAL)


def checks_table(checks: list):
    """One row per check; long model ids and paths fold onto the next line rather than being cut."""
    from rich.table import Table

    from pipeline.doctor import MISSING, OK, WARN

    table = Table(title="modomo doctor", title_justify="left")
    for column in ("area", "check", "status"):
        table.add_column(column)
    table.add_column("detail", overflow="fold")
    colours = {OK: "green", MISSING: "red", WARN: "yellow"}
    for c in checks:
        colour = colours.get(c.status, "dim")
        table.add_row(c.area, c.name, f"[{colour}]{c.status}[/{colour}]", escape(c.detail))
    return table
