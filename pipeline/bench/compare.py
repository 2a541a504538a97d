"""Sweep results side by side: the rows of a comparison table and the chart, from results files alone.

Nothing here loads a model: `modomo bench --compare A.json B.json` reads files written on other machines
(an H100 in one, an L4 in another) and lines their cells up by configuration ("512x512 b4 fast fp16"), so
the question "which GPU makes an image fastest, and which cheapest" is read off one table and one chart.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.errors import UsageError

SHOWN_STATUS = {"oom": "oom", "oom-skipped": "oom (not run)", "error": "error"}


def label(cell: dict) -> str:
    """'512x512 b4 fast fp16': one configuration, spelt the same in every machine's file."""
    return f"{cell['size']} b{cell['batch']} {cell['mode']} {cell['dtype']}"


def load_results(paths: list[str | Path]) -> list[dict]:
    """Each file as written by `bench --sweep`; a usage error names a file that is missing or not one."""
    if not paths:
        raise UsageError("--compare needs one or more results files written by `modomo bench --sweep`")
    loaded = []
    for path in map(Path, paths):
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise UsageError(f"--compare {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"--compare {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise UsageError(f"--compare {path}: not a sweep results file (no 'cells'); make one with bench --sweep")
        loaded.append({**data, "file": str(path)})
    return loaded


def file_labels(results: list[dict]) -> list[str]:
    """The heading of each series: its file's name and its machine ('h100.json (NVIDIA H100 80GB HBM3)'), so two
    files from one machine are told apart; the path where two files share a name, a number where still alike."""
    files = [Path(r["file"]).name if r.get("file") else None for r in results]
    files = [r["file"] if name and files.count(name) > 1 else name for name, r in zip(files, results, strict=True)]
    machines = [r.get("gpu") or r.get("label") or r.get("device", {}).get("name") for r in results]
    names = [
        f"{file} ({machine})" if file and machine else file or machine or "?"
        for file, machine in zip(files, machines, strict=True)
    ]
    names = [
        f"{name} {r.get('date', '')[:10]}".strip() if names.count(name) > 1 else name
        for name, r in zip(names, results, strict=True)
    ]
    return [f"{name} #{k + 1}" if names.count(name) > 1 else name for k, name in enumerate(names)]


_NOT_RECORDED = object()
# The settings a results file records, beside the grid the cells share: (what a warning calls it, keys to it).
RECORDED_SETTINGS = (
    ("models preset", ("models",)),
    ("style", ("settings", "style")),
    ("room", ("settings", "room")),
    ("images per cell", ("settings", "images")),
    ("batch sizes", ("grid", "batches")),
    ("sizes", ("grid", "sizes")),
    ("modes", ("grid", "modes")),
    ("precisions", ("grid", "dtypes")),
)


def _recorded(data: dict, keys: tuple[str, ...]):
    value = data
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return _NOT_RECORDED
        value = value[key]
    return value


def _steps(results: list[dict]) -> list:
    """Each file's denoising steps as its cells ran them, per mode that every file ran ('standard 20, fast 6');
    where no mode is shared, the --steps the sweep was given (None: the style's own)."""
    ran = [{} for _ in results]
    for modes, data in zip(ran, results, strict=True):
        for cell in data["cells"]:
            if cell.get("steps"):
                modes.setdefault(cell["mode"], cell["steps"])
    shared = [mode for mode in ran[0] if all(mode in modes for modes in ran)] if all(ran) else []
    if shared:
        return [", ".join(f"{mode} {modes[mode]}" for mode in shared) for modes in ran]
    return [_recorded(data, ("settings", "steps")) for data in results]


def _recipes(results: list[dict]) -> list:
    """The few-step recipe each file's fast cells used (not recorded where a file ran no fast cell)."""
    return [
        next((c["recipe"] for c in data["cells"] if c.get("mode") == "fast" and c.get("recipe")), _NOT_RECORDED)
        for data in results
    ]


def _shown_setting(value) -> str:
    if value is None:
        return "default"
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def setting_differences(results: list[dict]) -> list[str]:
    """One line per recorded setting whose value differs between the files ('different steps: a.json (L4)
    standard 20; b.json (H100) standard 30'): figures that differ for that reason are not the machines' doing."""
    if len(results) < 2:
        return []
    names = file_labels(results)
    settings = [(name, [_recorded(data, keys) for data in results]) for name, keys in RECORDED_SETTINGS]
    settings[4:4] = [("steps", _steps(results)), ("fast recipe", _recipes(results))]
    lines = []
    for setting, values in settings:
        recorded = [(name, value) for name, value in zip(names, values, strict=True) if value is not _NOT_RECORDED]
        if len({json.dumps(value, sort_keys=True) for _, value in recorded}) > 1:
            lines.append(
                f"different {setting}: " + "; ".join(f"{name} {_shown_setting(value)}" for name, value in recorded)
            )
    return lines


def configurations(results: list[dict]) -> list[str]:
    """Every configuration of any file, in the order the first file ran them, then the others' new ones."""
    seen: dict[str, None] = {}
    for data in results:
        for cell in data["cells"]:
            seen.setdefault(label(cell), None)
    return list(seen)


def cell_index(data: dict) -> dict[str, dict]:
    return {label(cell): cell for cell in data["cells"]}


def shown(cell: dict | None, key: str, digits: int) -> str:
    """A figure to `digits` significant digits (a CPU's 0.0137 images/s and an H100's 11.0 both readable), or
    why there is none (oom, not run, not in this file)."""
    if cell is None:
        return "-"
    if cell.get("status") != "ok":
        return SHOWN_STATUS.get(cell.get("status"), str(cell.get("status")))
    value = cell.get(key)
    return "-" if value is None else f"{value:#.{digits}g}"


def table_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(column headings, rows): per configuration, each file's images/s and cost per 1,000 images."""
    columns = ["configuration"]
    for name, data in zip(file_labels(results), results, strict=True):
        currency = data.get("price", {}).get("currency", "")
        columns += [f"{name}\nimages/s", f"{name}\n{currency}/1000"]
    indexed = [cell_index(data) for data in results]
    rows = []
    for config in configurations(results):
        row = [config]
        for cells in indexed:
            row += [shown(cells.get(config), "images_per_second", 3), shown(cells.get(config), "cost_per_1000", 3)]
        rows.append(row)
    return columns, rows


def _series(results: list[dict], names: list[str]) -> list[tuple[str, dict, str | None]]:
    """What gets one colour: each file when files are compared; each mode within one file's sweep."""
    if len(results) > 1:
        return [(name, cell_index(data), None) for name, data in zip(names, results, strict=True)]
    modes = list(dict.fromkeys(cell["mode"] for cell in results[0]["cells"]))
    return [(mode, cell_index(results[0]), mode) for mode in modes]


def _bars(ax, series: list[tuple[str, dict, str | None]], key: str, rows: list[str], digits: int) -> None:
    """Horizontal bars, configurations down the side, one colour per series (side by side when files are
    compared); a cell without a figure shows its status in place of the bar, so an oom is not read as zero."""
    import matplotlib.pyplot as plt

    slots = 1 if series[0][2] is not None else len(series)  # modes share a row's one slot: each row has one mode
    height = 0.8 / slots
    colours = plt.get_cmap("tab10").colors
    top = max([(c.get(key) or 0) for _, cells, _ in series for c in cells.values() if c.get("status") == "ok"] + [0])
    for k, (name, cells, mode) in enumerate(series):
        labelled = False
        for i, config in enumerate(rows):
            cell = cells.get(config)
            if mode is not None and (cell is None or cell["mode"] != mode):
                continue
            y = i - 0.4 + height * ((0 if slots == 1 else k) + 0.5)
            value = cell.get(key) if cell and cell.get("status") == "ok" else None
            if value is None:
                text = shown(cell, key, digits) if cell else "not in file"
                ax.text(top * 0.01, y, text, va="center", fontsize=8, color=colours[k % 10], style="italic")
                continue
            ax.barh(y, value, height=height * 0.9, color=colours[k % 10], label=None if labelled else name)
            labelled = True
            ax.text(value + top * 0.01, y, f"{value:.{digits}g}", va="center", fontsize=8)
    ax.set_xlim(0, (top or 1) * 1.18)
    ax.grid(axis="x", alpha=0.3)


def _priced(results: list[dict]) -> bool:
    return any(data.get("price", {}).get("per_hour") for data in results)


def write_chart(results: list[dict], path: Path) -> Path:
    """Two panels, configurations down the side: images/s and cost per 1,000 images, one colour per file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, names = configurations(results), file_labels(results)
    series = _series(results, names)
    per_row = 0.32 + 0.18 * (len(results) - 1)
    fig, (speed, cost) = plt.subplots(1, 2, sharey=True, figsize=(14, max(3.2, 1.8 + per_row * len(rows))))
    _bars(speed, series, "images_per_second", rows, 3)
    speed.set_title("images per second (higher is better)")
    speed.set_yticks(range(len(rows)), rows, fontsize=9)
    speed.invert_yaxis()
    currency = results[0].get("price", {}).get("currency", "USD")
    cost.set_title(f"{currency} per 1,000 images (lower is better)")
    if _priced(results):
        _bars(cost, series, "cost_per_1000", rows, 3)
    else:
        cost.text(
            0.5,
            0.5,
            "no GPU price: a CPU run costs no GPU time\n(pass --gpu-price to price it)",
            transform=cost.transAxes,
            ha="center",
            va="center",
            color="dimgray",
        )
        cost.set_xticks([])
    fig.suptitle(_title(results, names), fontsize=11)
    handles, labels = speed.get_legend_handles_labels()
    legend_room = 0.0
    if labels:  # above the panels, where it cannot cover a bar
        legend_room = 0.35 / fig.get_figheight()
        fig.legend(
            handles,
            labels,
            loc="upper center",
            ncol=len(labels),
            fontsize=9,
            frameon=False,
            bbox_to_anchor=(0.5, 1 - 0.32 / fig.get_figheight()),
        )
    fig.tight_layout(rect=(0, 0, 1, 1 - legend_room))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _title(results: list[dict], names: list[str]) -> str:
    """What the chart shows: one machine's sweep with its settings, or the machines compared."""
    if len(results) > 1:
        return "modomo bench: " + " vs ".join(names)
    data = results[0]
    steps = {}
    for cell in data["cells"]:
        if cell.get("steps"):
            steps.setdefault(
                f"{cell['mode']}{' (' + cell['recipe'] + ')' if cell.get('recipe') else ''}", cell["steps"]
            )
    shown_steps = ", ".join(f"{mode} {n} steps" for mode, n in steps.items())
    return (
        f"modomo bench sweep: {names[0]}, models {data.get('models')}, {shown_steps or 'no cell ran'}, "
        f"{data.get('settings', {}).get('images')} images per cell, {data.get('date', '')[:10]}"
    )


def compare(paths: list[str | Path], out: Path | None = None) -> tuple[list[dict], Path]:
    """Read the files and chart them together (default: compare.png beside the first file)."""
    results = load_results(paths)
    target = Path(out) if out else Path(paths[0]).parent / "compare.png"
    return results, write_chart(results, target)
