"""The `modomo` command line: parses options, renders Rich output, calls pipeline/. No model code here."""

from __future__ import annotations

import os

# Before ultralytics is imported anywhere: no banner on stdout, no settings file in $HOME for a JSON run.
os.environ.setdefault("YOLO_VERBOSE", "False")

import typer  # noqa: E402

from modomo_cli.bench import bench  # noqa: E402
from modomo_cli.doctor import doctor  # noqa: E402
from modomo_cli.models import models_app  # noqa: E402
from modomo_cli.review import index_cmd, score, styles_cmd  # noqa: E402
from modomo_cli.transform import transform  # noqa: E402

app = typer.Typer(
    name="modomo",
    help="Restyle photos of rooms in bulk: SD1.5 + depth/canny ControlNets, YOLO + SAM2, per-stage timing and cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command()(transform)
app.command("styles")(styles_cmd)
app.command()(bench)
app.command()(doctor)
app.command()(score)
app.command("index")(index_cmd)
app.add_typer(models_app, name="models")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
