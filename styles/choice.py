"""Which styles a command names: --style's built-ins (in any case), then each --style-file's own, each once; or
the recipe of its mode (--mode declutter), and what that mode refuses."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UsageError
from pipeline.options import TransformOptions
from styles import MODES, STYLE_DIR, Style, load_mode, load_style, style_name


def chosen_styles(options: TransformOptions) -> list[Style]:
    """The run's styles: --style's built-ins (any case), then each --style-file's own, in the order given; a
    staging of each (--mode stage); a declutter's own recipe (`empty`)."""
    mode = check_mode(options)
    if mode == "declutter":
        return [load_mode(mode)]
    styles = restyles(options)
    if mode == "stage":
        from styles.staging import staged

        return [staged(style) for style in styles]
    return styles


def restyles(options: TransformOptions) -> list[Style]:
    """--style's built-ins (any case), then each --style-file's own, in the order given."""
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


DECLUTTER_REFUSES = {  # what --mode declutter has no use for: each refused with one line
    "style": "--style",
    "style_file": "--style-file",
    "style_ref": "--style-ref",
    "sets_by": "--sets-by",
}


def check_mode(o: TransformOptions) -> str:
    """--mode in canonical form: restyle unless asked, declutter when --remove is given; what a mode has no use
    for is a usage line."""
    mode = o.chosen_mode
    if mode not in MODES:
        raise UsageError(f"--mode {o.mode!r}: choose one of {', '.join(MODES)}")
    if o.remove and mode != "declutter":
        raise UsageError(f"--remove takes things out of the room: it goes with --mode declutter, not --mode {mode}")
    if mode == "declutter":
        given = [flag for name, flag in DECLUTTER_REFUSES.items() if getattr(o, name)]
        if given:
            raise UsageError(
                f"{given[0]} with --mode declutter: a declutter has no style (its results are named `empty`); "
                f"leave out {', '.join(given)}"
            )
    return mode
