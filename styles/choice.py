"""Which styles a command names: --style's built-ins (in any case), then each --style-file's own, each once."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UsageError
from pipeline.options import TransformOptions
from styles import STYLE_DIR, Style, load_style, style_name


def chosen_styles(options: TransformOptions) -> list[Style]:
    """The run's styles: --style's built-ins (any case), then each --style-file's own, in the order given."""
    files = [load_style(path=path) for path in options.style_file or []]
    by_name = {style.name.lower(): style for style in files}
    for name in options.styles:
        own = by_name.get(name.strip().lower())
        if own is not None and style_name(name) is None:
            raise UsageError(
                f"--style {name!r} is not a built-in style, and --style-file {own.source} already "
                "adds it: leave it out of --style"
            )
    return [*(load_style(style_name(name) or name) for name in options.styles), *files]


def check_distinct(styles: list[Style]) -> None:
    """A style given twice (by --style or --style-file, in any case) would write its results twice."""
    names = [s.name.lower() for s in styles]
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        given = ", ".join(
            f"--style {s.name}" if Path(s.source).parent == STYLE_DIR else f"--style-file {s.source}"
            for s in styles
            if s.name.lower() == twice
        )
        raise UsageError(f"style {twice!r} is named twice ({given}); name each style once")
