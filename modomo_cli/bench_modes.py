"""What `modomo bench` prints for a declutter or a staging after its summary: the mode's stages against plain
diffusers' (a table), its passes' settings, what its masks cover, what each generate stage called, how far the
baseline's frames are modomo's; then what makes a figure mean less."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from modomo_cli.render import console

BASELINES = ("diffusers", "diffusers_fp32")


def print_mode(summary: dict) -> None:
    if "declutter" in summary:
        print_declutter(summary)
    if "stage" in summary:
        print_stage(summary)


def print_stage_table(summary: dict, mode: str) -> None:
    """The mode's stages, s/image: modomo's, and each baseline's with modomo's time over it."""
    rows = summary[mode]["stages"]
    keys = [key for key in BASELINES if key in summary]
    title = f"{mode} stages, s/image" + (" (ratio: modomo's time over plain diffusers')" if keys else "")
    table = Table(title=title, title_justify="left")
    table.add_column("stage")
    table.add_column("modomo", justify="right")
    for key in keys:
        fmt = summary[key].get("dtype", "")
        table.add_column(f"diffusers {fmt}".strip(), justify="right")
        table.add_column("ratio", justify="right")
    for name, row in rows.items():
        cells = [name, f"{row['modomo']:.3f}"]
        for key in keys:
            theirs, ratio = row.get(key), row.get(f"ratio_{key}")
            cells += [f"{theirs:.3f}" if theirs is not None else "", f"{ratio:.2f}x" if ratio else ""]
        table.add_row(*cells)
    console.print(table)


def print_lines(lines: list[str], warnings: list[str]) -> None:
    for line in lines:
        console.print(escape(line), soft_wrap=True)
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)


def print_declutter(summary: dict) -> None:
    """A declutter's own report: its stages, the pass's settings, how much of the photos the masks take out and
    where from, what each generate stage called, whether the baseline's pass was given the same frames."""
    print_stage_table(summary, "declutter")
    d = summary["declutter"]
    removal = d["removal"]
    lines = [
        f"declutter   pass: {d['denoising_steps']} of {d['steps']} steps (strength {d['strength']:g}), controls "
        f"{' + '.join(d['controls'])}",
    ]
    if removal["area_mean"] is not None:
        lines.append(
            f"declutter   removal mask: {removal['area_mean']:.1%} of each photo on average (min "
            f"{removal['area_min']:.1%}, max {removal['area_max']:.1%}; {removal['empty']} of {removal['images']} "
            f"empty), {removal['source']}"
        )
    for key, called in d["generator"].items():
        lines.append(f"declutter   {key} generate called {', '.join(called or ['nothing'])}")
    for name, same in d["same_frames"].items():
        checked = d["frames_checked"].get(name, 0)
        verdict = "the same" if same else "NOT the same"
        lines.append(
            f"declutter   {name}: {verdict} seeds, removal masks and LaMa fills as modomo's pass ({checked} images)"
        )
    print_lines(lines, d["warnings"])


def share(found: dict | None) -> str:
    if found is None:
        return "none"
    return f"{found['mean']:.1%} on average (min {found['min']:.1%}, max {found['max']:.1%})"


def print_stage(summary: dict) -> None:
    """A staging's own report: its stages and both passes, the passes' settings, how many photos were emptied
    first, the regions' and added furniture's shares, what each generate stage called, how far the baseline's
    masks agree with modomo's."""
    print_stage_table(summary, "stage")
    d = summary["stage"]
    second = (
        f"second pass {d['second_pass_steps']} of {d['steps']} steps (strength {d['second_pass']:g})"
        if d["second_pass"]
        else "no second pass"
    )
    lines = [
        f"stage       {d['style']}: first pass {d['first_pass_steps']} of {d['steps']} steps from noise, {second}; "
        f"controls {' + '.join(d['controls'])}",
        f"stage       {d['emptied_first']} of {d['images']} photos emptied first; region {share(d['region'])} of "
        f"each photo; added furniture {share(d['added'])}",
    ]
    for key, called in d["generator"].items():
        lines.append(f"stage       {key} passes called {', '.join(called or ['nothing'])}")
    lines += [agreement_line(name, agreed) for name, agreed in d["agreement"].items()]
    print_lines(lines, d["warnings"])


def agreement_line(name: str, agreed: dict) -> str:
    """'diffusers before: the same seeds, the same photos emptied first; regions IoU 1.000 at least, ...'."""

    def same(yes: bool) -> str:
        return "the same" if yes else "NOT the same"

    masks = [
        f"{what} IoU {found['min']:.3f} at least"
        for what, found in (("regions", agreed["region_iou"]), ("added masks", agreed["added_iou"]))
        if found
    ]
    return (
        f"stage       {name}: {same(agreed['seeds'])} seeds, {same(agreed['emptied'])} photos emptied first"
        + "".join(f"; {m}" for m in masks)
    )
