"""Exit codes, and user errors as one red line."""

from __future__ import annotations

from contextlib import contextmanager

import typer
from rich.markup import escape

from modomo_cli.render import console
from pipeline.errors import ModomoError

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@contextmanager
def user_errors():
    """Turn a ModomoError into one red line on stderr and its exit code; no traceback."""
    try:
        yield
    except ModomoError as exc:
        print_error(str(exc))
        raise typer.Exit(exc.exit_code) from None


def print_error(message: str) -> None:
    """A user error as one red `error: ...` line on stderr."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
