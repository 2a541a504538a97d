"""The command-line reference (`docs/cli.md`): every command and option with its help, generated from the app itself,
so the page says what `--help` says. Regenerate with `python -m modomo_cli.reference > docs/cli.md`;
tests/test_docs.py fails when the page and the app differ."""

from __future__ import annotations

import typer
from typer import _click as click  # the click Typer's commands are made of (its own copy)

from modomo_cli.app import app

HEADER = (
    "# Command-line reference\n\n"
    "Every `modomo` command and option, with the help `--help` prints. This page is generated from the app "
    "(`python -m modomo_cli.reference > docs/cli.md`), and a test fails when the two differ.\n"
)


def commands(group, prefix: str) -> list[tuple[str, click.Command]]:
    """Every command under `group`, depth first, in the order `--help` lists them, with its full name."""
    found = []
    ctx = click.Context(group, info_name=prefix)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        found.append((f"{prefix} {name}", command))
        if hasattr(command, "list_commands"):
            found += commands(command, f"{prefix} {name}")
    return found


def usage(name: str, command: click.Command) -> str:
    """The command's usage line, as `--help` starts."""
    ctx = click.Context(command, info_name=name)
    return f"{name} {' '.join(command.collect_usage_pieces(ctx))}".strip()


def param_line(param, ctx) -> str:
    """One argument or option as `--help` shows it: its names and value, then its help and default."""
    record = param.get_help_record(ctx)
    if record is None:
        return ""
    names, text = record
    text = " ".join(text.split())
    return f"- `{names}`: {text}" if text else f"- `{names}`"


def section(name: str, command: click.Command) -> list[str]:
    """A command's section: its help, its usage, its arguments and options by help panel."""
    lines = [f"## {name}", "", " ".join((command.help or "").split()), "", f"Usage: `{usage(name, command)}`", ""]
    ctx = click.Context(command, info_name=name)
    panels: dict[str, list[str]] = {}
    for param in command.params:
        line = param_line(param, ctx)
        if not line or getattr(param, "hidden", False):
            continue
        default_panel = "Arguments" if param.param_type_name == "argument" else "Options"
        panels.setdefault(getattr(param, "rich_help_panel", None) or default_panel, []).append(line)
    for panel, entries in panels.items():
        lines += [f"**{panel}**", "", *entries, ""]
    return lines


def markdown() -> str:
    """The whole reference page."""
    root = typer.main.get_command(app)
    lines = [HEADER, *section("modomo", root)]
    for name, command in commands(root, "modomo"):
        lines += section(name, command)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
