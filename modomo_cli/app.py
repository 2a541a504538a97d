"""The `modomo` command line: parses options, renders Rich output, calls pipeline/. No model code here."""

from __future__ import annotations

import os

# Before ultralytics is imported anywhere: no banner on stdout, no settings file in $HOME for a JSON run.
os.environ.setdefault("YOLO_VERBOSE", "False")

from typing import Annotated  # noqa: E402

import typer  # noqa: E402

from modomo_cli.bench import bench  # noqa: E402
from modomo_cli.doctor import doctor  # noqa: E402
from modomo_cli.models import models_app  # noqa: E402
from modomo_cli.params import Command, Group  # noqa: E402
from modomo_cli.prune import prune_cmd  # noqa: E402
from modomo_cli.review import index_cmd, score, styles_cmd, verify_cmd  # noqa: E402
from modomo_cli.transform import transform  # noqa: E402
from pipeline import __version__  # noqa: E402

app = typer.Typer(
    name="modomo",
    help="Restyle photos of rooms in bulk: SD1.5 + depth/canny ControlNets, YOLO + SAM2, per-stage timing and cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)

app.command(cls=Command)(transform)
app.command("styles", cls=Command)(styles_cmd)
app.command(cls=Command)(bench)
app.command(cls=Command)(doctor)
app.command(cls=Command)(score)
app.command("index", cls=Command)(index_cmd)
app.command("verify", cls=Command)(verify_cmd)
app.command("prune", cls=Command)(prune_cmd)
app.add_typer(models_app, name="models")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"modomo {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print modomo's version and exit.", metavar="", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Restyle photos of rooms in bulk: SD1.5 + depth/canny ControlNets, YOLO + SAM2, per-stage timing and cost."""


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
