"""`modomo prune`: list (and with --yes delete) what earlier settings left in an output that its index no longer
lists."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape

from modomo_cli.errors import EXIT_FATAL, user_errors
from modomo_cli.render import console, shown
from pipeline.errors import ModomoError, UsageError


def prune_cmd(
    out: Annotated[str, typer.Argument(help="An output folder or r2://bucket/prefix that modomo wrote into.")],
    yes: Annotated[bool, typer.Option("--yes", help="Delete the files listed.", metavar="")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the files (and what was deleted) as JSON on stdout.", metavar="")
    ] = False,
) -> None:
    """List the files of earlier settings that the index of OUT no longer lists; --yes deletes them.

    Only results, thumbnails and metadata that no job's latest result uses any more are listed; nothing else is
    ever touched."""
    with user_errors():
        from pipeline.outputs.prune import delete_files, stale_files, totals
        from pipeline.outputs.sinks import open_sink

        sink = open_sink(out)
        if not sink.is_output():
            raise UsageError(f"{out}: not a modomo output (no journal in {out.rstrip('/')}/.modomo/); nothing pruned")
        try:
            files = stale_files(sink)
        except OSError as exc:
            raise ModomoError(f"{out}: cannot read the output: {exc}", EXIT_FATAL) from None
        failed = delete_files(sink, files) if yes else []
    if as_json:
        found = {"out": out, "count": len(files), "bytes": totals(files)["bytes"], "deleted": yes}
        found |= {"files": files, "failed": failed}
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
    show(files, failed, yes)
    if failed:
        raise typer.Exit(EXIT_FATAL)


def show(files: list[dict], failed: list[dict], deleted: bool) -> None:
    """The files, their sizes and totals; what could not be deleted."""
    from rich.table import Table

    if files:
        table = Table(title="deleted" if deleted else "no longer in the index", title_justify="left")
        table.add_column("file")
        table.add_column("kind")
        table.add_column("size", justify="right")
        for entry in files:
            table.add_row(escape(shown(entry["location"])), entry["kind"], human_size(entry["bytes"]))
        console.print(table)
    for entry in failed:
        where = escape(shown(entry["location"]))
        console.print(f"[red]not deleted[/red] {where}: {escape(entry['error'])}", soft_wrap=True)
    left = {entry["file"] for entry in failed}
    count, size = len(files) - len(left), human_size(sum(f["bytes"] for f in files if f["file"] not in left))
    if not files:
        line = "nothing to prune: no result of earlier settings is left"
    elif deleted:
        line = f"deleted {count} file{'' if count == 1 else 's'}, {size}"
    else:
        line = f"{count} file{'' if count == 1 else 's'}, {size}, from earlier settings: --yes deletes them"
    console.print(f"prune       {line}", soft_wrap=True)


def human_size(count: int) -> str:
    """Bytes as a person reads them (1 KB = 1,000 bytes)."""
    if count < 1000:
        return f"{count} bytes"
    for unit in ("KB", "MB", "GB"):
        count /= 1000
        if count < 1000 or unit == "GB":
            break
    return f"{count:.1f} {unit}"
