"""How an options dataclass becomes a Typer command: each field declared once on the command line (its flag, help
and panel), defaults taken from the dataclass, and the command body handed one typed object."""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from dataclasses import MISSING, fields
from typing import Annotated, Any

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # Typer's own click; not re-exported
from typer.core import TyperCommand, TyperGroup

from modomo_cli.errors import EXIT_USAGE, print_error


class FlagHelp:
    """--help shown as the flag it is (no value placeholder)."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class OneLineErrors:
    """A parser error (a bad value, an unknown option or command) printed as one `error: ...` line, exit 2, like
    every other usage error, rather than Typer's boxed panel."""

    def make_context(self, *args, **kwargs):
        with _usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _usage_errors():
            return super().invoke(ctx)


@contextmanager
def _usage_errors():
    try:
        yield
    except NoArgsIsHelpError:
        raise  # `modomo` alone: the help, as Typer prints it
    except UsageError as exc:
        print_error(exc.format_message())
        raise typer.Exit(EXIT_USAGE) from None


class Command(FlagHelp, OneLineErrors, TyperCommand):
    """A command whose --help shows as a flag and whose parser errors are one line."""


class Group(FlagHelp, OneLineErrors, TyperGroup):
    """A command group whose --help shows as a flag and whose parser errors are one line."""


def option(panel: str, *names: str, **kwargs) -> Any:
    """An option with a value, shown in its help panel."""
    return typer.Option(*names, rich_help_panel=panel, **kwargs)


def flag(panel: str, *names: str, **kwargs) -> Any:
    """An on/off option: shown as a flag (no value placeholder in the help)."""
    return typer.Option(*names, rich_help_panel=panel, metavar="", **kwargs)


def command_from(options_type: type, declarations: dict[str, tuple[Any, Any]]):
    """Decorate `body(options, ctx)` into a Typer command whose parameters are `options_type`'s fields, in
    order; `declarations[field] = (type, typer.Option(...) or typer.Argument(...))`. Typer calls the command with
    each parameter; the body gets `options_type(**parameters)` and the context (the command's option names, and
    where each value came from)."""
    names = [f.name for f in fields(options_type)]
    if set(names) != set(declarations):
        raise TypeError(
            f"{options_type.__name__}: fields and declarations differ: {sorted(set(names) ^ set(declarations))}"
        )

    def wrap(body):
        parameters = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
        for f in fields(options_type):
            kind, info = declarations[f.name]
            default = f.default if f.default is not MISSING else f.default_factory()
            parameters.append(
                inspect.Parameter(
                    f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info]
                )
            )

        @functools.wraps(body)
        def command(ctx: typer.Context, **given):
            return body(options_type(**given), ctx)

        command.__signature__ = inspect.Signature(parameters)
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        del command.__wrapped__  # Typer reads the signature above, not the body's
        return command

    return wrap


def argv_for(options, command, skip: set[str]) -> list[str]:
    """The command line that gives `options` again (defaults left out), minus the fields in `skip`."""
    argv: list[str] = []
    for param in command.params:
        if param.name in skip:
            continue
        value = getattr(options, param.name)
        if param.param_type_name == "argument":
            argv += [str(v) for v in value or []]
        elif value is None or value == param.default:
            continue
        elif getattr(param, "is_flag", False):
            argv.append(param.opts[0] if value else param.secondary_opts[0])
        elif isinstance(value, list | tuple):
            for v in value:
                argv += [param.opts[0], str(v)]
        else:
            argv += [param.opts[0], str(value)]
    return argv
