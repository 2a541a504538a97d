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


