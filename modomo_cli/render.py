"""Rich output on stderr: the progress bar while a run goes, the stage table at the end."""

from __future__ import annotations

import math
import os
import shlex

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from modomo_cli.compile_lines import compile_lines, eager_line

console = Console(stderr=True, highlight=False)


class RunProgress:
    """A progress bar (current image and stage, ETA) when stderr is a terminal; failures always print."""

    def __init__(self, enabled: bool | None = None, output: Console = console):
        self.enabled = output.is_terminal if enabled is None else enabled
        self.progress = Progress(  # fits 80 columns: a short bar, the ETA, then what is in hand, cut to fit
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn(
                "{task.fields[current]}",
                style="dim",
                table_column=Column(no_wrap=True, overflow="ellipsis", max_width=36),
            ),
            console=output,
            transient=True,
        )
        self.task = None
        self.told: set[str] = set()  # warnings already printed while the run went: the summary leaves them out

    def __enter__(self):
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.stop()

    def loading(self, name: str) -> None:
        if self.enabled and self.task is None:
            self.task = self.progress.add_task("loading", total=None, current="")
        if self.enabled:
            self.progress.update(self.task, description="loading", current=name)

    def __call__(self, event: str, **data) -> None:
        if event == "start" and self.enabled:
            if self.task is None:
                self.task = self.progress.add_task("restyling", total=data["total"], current="")
            self.progress.update(self.task, description="restyling", total=data["total"], completed=0)
        elif event == "stage" and self.enabled:
            self.progress.update(self.task, current=f"{data['stage']}: {in_hand(data['frames'])}")
        elif event == "warning":
            self.told.add(data["message"])
            console.print(f"[yellow]warning:[/yellow] {escape(data['message'])}", soft_wrap=True)
        elif event == "retry_failed":
            names = ", ".join(dict.fromkeys(f.item.display for f in data["frames"]))
            console.print(
                f"[yellow]retry {data['attempt']} failed[/yellow] {escape(names)}: {escape(data['error'])} "
                "(the best result so far is kept; the next retry goes ahead)",
                soft_wrap=True,
            )
        elif event == "done":
            record = data["record"]
            if record.status == "failed":
                console.print(f"[red]failed[/red] {escape(record.input)}: {escape(record.error or '')}", soft_wrap=True)
            if self.enabled:
                self.progress.advance(self.task)


def in_hand(frames: list) -> str:
    """What a stage works on, for the progress line: the photos (each once) and the style, when there is one:
    `living-room-01.jpg (boho) +1`."""
    names = list(dict.fromkeys(f.item.key for f in frames))
    styles = list(dict.fromkeys(f.style for f in frames if f.style))
    text = names[0] + (f" ({', '.join(styles)})" if styles else "")
    return text + (f" +{len(names) - 1}" if len(names) > 1 else "")


def stage_table(summary: dict, title: str = "modomo run") -> Table:
    """Per stage mean / p50 / p95 seconds and share, then load time, throughput and cost."""
    table = Table(title=title, title_justify="left", show_footer=False)
    table.add_column("stage")
    for name in ("mean s", "p50 s", "p95 s", "share"):
        table.add_column(name, justify="right")
    for stage, row in summary["stages"].items():
        table.add_row(stage, f"{row['mean']:.3f}", f"{row['p50']:.3f}", f"{row['p95']:.3f}", f"{row['share']:.1%}")
    return table


def print_summary(summary: dict, title: str = "modomo run", unpriced_cost: bool = True, told=()) -> None:
    """The stage table and the run's totals, to stderr; with `unpriced_cost` False, no cost line when there is
    no GPU price (the bench says once why its cost figures are left out). The jobs' warnings last, less those
    `told` while the run went (a --devices worker's or a Ray actor's are told here)."""
    counts = summary["counts"]
    if summary["stages"]:
        console.print(stage_table(summary, title))
    made = f" ({counts['results']} results)" if counts.get("results", 0) > counts["ok"] else ""
    photos = summary.get("photos", counts["ok"] + counts["failed"] + counts["skipped"])
    lines = [
        f"jobs        {counts['ok']} ok{made}, {counts['failed']} failed, {counts['skipped']} skipped, from "
        f"{photos} photo{'' if photos == 1 else 's'}",
        *time_lines(summary, unpriced_cost),
    ]
    quality = summary.get("quality") or {}
    if quality.get("mean") is not None:
        failed = (
            f" ({quality['retry_errors']} failed: see each result's metadata)" if quality.get("retry_errors") else ""
        )
        lines.append(
            f"quality     mean {quality['mean']:.3f}, {quality['success_rate']:.0%} at or above "
            f"{quality['threshold']:g}, {quality['retries']} retries{failed}"
        )
    batching = summary.get("batching") or {}
    if batching.get("generate_calls") and batching["batch_size"] > 1:
        lines.append(
            f"batching    {batching['batch_size']} requested: {batching['generate_calls']} generate calls, "
            f"mean batch {batching['mean_batch']:.2f}"
        )
    styles = summary.get("styles") or {}
    if len(styles.get("names", [])) > 1:
        lines.append(
            f"styles      {', '.join(styles['names'])}: read, detect, segment and depth ran once per photo, "
            f"{styles['shared_seconds_saved']:.1f} s saved against separate runs"
        )
    lines += look_lines(summary.get("images", []))
    if summary.get("stopped"):
        lines.append(f"stopped     {summary['stopped']}")
    lines += index_lines(summary)
    for event in summary.get("oom", []):
        lines.append(f"GPU memory  out of memory at batch {event['batch']}: continued with {event['action']}")
    for line in lines:
        console.print(line, soft_wrap=True)
    for warning in dict.fromkeys(w for record in summary.get("images", []) for w in record.get("warnings") or []):
        if warning in told:
            continue
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)


def time_lines(summary: dict, unpriced_cost: bool = True) -> list[str]:
    """Model load, run time with the results made per minute (a job with --variations N makes N), and cost; a run
    the journal had every job of says so in one line instead of zeros."""
    counts, cost = summary["counts"], summary["cost"]
    if counts["skipped"] and not counts["ok"] and not counts["failed"] and not summary.get("stopped"):
        jobs = counts["skipped"]
        return [f"nothing to do: {jobs} job{'' if jobs == 1 else 's'} already done"]
    per_minute = summary.get("results_per_minute", summary["images_per_minute"])
    lines = [
        f"model load  {summary['load_seconds']:.1f} s",
        *compile_lines(summary.get("compile") or {}),
        f"run time    {summary['seconds']:.1f} s, {per_minute:.1f} results/minute",
    ]
    if unpriced_cost or cost["price_per_hour"]:
        cur = cost["currency"]
        lines.append(
            f"cost        {cost['per_image']:.5f} {cur}/image, {cost['total']:.4f} {cur} total"
            f"  (at {cost['price_per_hour']:.4f} {cur}/GPU-hour: {cost['price_source']})"
        )
    return lines


def index_lines(summary: dict) -> list[str]:
    """The index the run rebuilt, and how many files of earlier settings it no longer lists (`modomo prune`)."""
    lines = []
    if summary.get("index"):
        index = summary["index"]
        lines.append(
            f"index       {shown(index['csv'])} ({index['jobs']} jobs: {index['ok']} ok, {index['failed']} failed)"
        )
    stale = summary.get("stale") or {}
    if stale.get("files"):
        count = stale["files"]
        lines.append(
            f"prune       {count} file{'' if count == 1 else 's'} from earlier settings "
            f"{'is' if count == 1 else 'are'} no longer in the index "
            f"(modomo prune {escape(shlex.quote(stale['out']))} lists them)"
        )
    return lines


def look_lines(images: list[dict]) -> list[str]:
    """What the results followed: the reference photos (each encoded once) and the room sets, when there are any."""
    followed = {
        r["reference"]["digest"]: r["reference"]["source"]
        for r in images
        if r.get("reference") and not r["reference"].get("anchor")
    }
    sets = {r["set"] for r in images if r.get("set")}
    lines = []
    if followed:
        named = ", ".join(shown(source) for source in list(followed.values())[:3]) + (
            ", ..." if len(followed) > 3 else ""
        )
        lines.append(f"reference   {len(followed)} photo{'' if len(followed) == 1 else 's'} followed: {named}")
    if sets:
        photos = len({r["id"] for r in images if r.get("set")})
        lines.append(
            f"room sets   {len(sets)} set{'' if len(sets) == 1 else 's'}, {photos} photos: each follows "
            "its first photo's result"
        )
    return lines


def print_bench(summary: dict) -> None:
    """The bench report: stage table, throughput, memory, FLOP/s, cost projection, baseline, ablation. A figure
    that would only be zero (no GPU price, no datasheet peak) is left out, with one line saying why."""
    print_summary(summary, title="modomo bench", unpriced_cost=False)
    device, speed, memory, warm = summary["device"], summary["speed"], summary["memory"], summary["warmup"]
    tput = summary["throughput"]
    console.print(
        f"device      {device['name']} ({device['type']}), {speed['dtype']}, batch {speed['batch_size']}",
        soft_wrap=True,
    )
    console.print(
        f"throughput  {tput['seconds_per_image']:.3f} s/image, {tput['images_per_second']:.3f} images/s "
        f"(after {warm['images']} warm-up image(s), {warm['seconds']:.1f} s"
        + (f", of which compiling {warm['compile_seconds']:.1f} s" if warm.get("compile_seconds") else "")
        + ")",
        soft_wrap=True,
    )
    gpu = f"{memory['peak_gpu_gb']:.2f} GB GPU, " if memory["peak_gpu_gb"] is not None else ""
    kept = f"; host memory {device['host_memory']}" if device.get("host_memory") else ""
    packed = (summary.get("precision") or {}).get("packed")
    kept += f"; weights packed once: {', '.join(packed)}" if packed else ""
    console.print(f"memory      peak {gpu}{memory['peak_host_gb']:.2f} GB host{kept}", soft_wrap=True)
    for line in filter(None, [eager_line(summary.get("compile") or {})]):
        console.print(line, soft_wrap=True)
    generate = generate_line(summary)
    if generate:
        console.print(f"generate    {generate}", soft_wrap=True)
    print_cost_projection(summary)
    if "diffusers" in summary:
        print_vs_diffusers(summary)
    print_projection(summary.get("projection"))
    sanity = quality_sanity(summary)
    if sanity:
        console.print(f"sanity      {sanity} (0 = black, blank or NaN output)", soft_wrap=True)
    for name, seconds in summary.get("ablation", {}).items():
        console.print(f"ablation    {name}: generate {seconds:.3f} s/image", soft_wrap=True)
    parts = summary.get("parts", {})
    if "lines" in parts:
        lines = parts["lines"]
        console.print(
            f"parts       lines control: {lines['seconds_per_image']:+.3f} s/image (edges + generate "
            f"{lines['with']:.3f} s with it, {lines['without']:.3f} s without)",
            soft_wrap=True,
        )
    if "style_ref" in parts:
        ref = parts["style_ref"]
        console.print(
            f"parts       style reference: {ref['seconds_per_image']:+.3f} s/image (generate "
            f"{ref['with']:.3f} s with it, {ref['without']:.3f} s without)",
            soft_wrap=True,
        )
    if "scene" in parts:
        console.print(
            f"parts       scene segmentation: {parts['scene']['seconds_per_image']:.3f} s/image (keeping "
            f"the architecture adds {parts['scene']['preserve']:.3f} s of preserve + compose)",
            soft_wrap=True,
        )


def flop_text(tflop: float | None, unit: str = "FLOP") -> str | None:
    """'57.3 TFLOP', '0.521 GFLOP': three significant figures in a unit that shows them (a tiny model's FLOPs are
    not '0.00 TFLOP'); None for no figure, zero or NaN."""
    if tflop is None or not math.isfinite(tflop) or tflop <= 0:
        return None
    for prefix, scale in (("T", 1.0), ("G", 1e-3), ("M", 1e-6), ("k", 1e-9)):
        if tflop >= scale:
            return f"{tflop / scale:.3g} {prefix}{unit}"
    return f"{tflop * 1e12:.3g} {unit}"


def generate_line(summary: dict) -> str | None:
    """The generate stage's FLOPs per image and achieved FLOP/s, and its share of the datasheet peak when the
    device has one; None when there is no figure to show."""
    flops, device = summary["flops"], summary["device"]
    ours = flop_text(flops["per_image_tflop"].get("modomo"))
    if ours is None:
        return None
    w, h = flops["image_size"]
    plain = flop_text(flops["per_image_tflop"].get("diffusers"))
    achieved = flop_text(flops.get("generate_tflops_achieved"), "FLOP/s")
    line = f"{ours}/image at {w}x{h}" + (f" (plain diffusers: {plain})" if plain else "")
    if achieved:
        line += f", {achieved} achieved"
        if flops.get("share_of_peak"):
            line += f", {flops['share_of_peak']:.1%} of the {device['peak_tflops']} TFLOP/s peak"
        elif flops.get("share_of_measured_peak") and device.get("measured_peak"):
            peak = device["measured_peak"]
            line += (
                f", {flops['share_of_measured_peak']:.1%} of this CPU's {peak['dtype']} matmul peak "
                f"({peak['tflops']:.3g} TFLOP/s measured, {peak['threads']} threads)"
            )
    return line


def print_cost_projection(summary: dict) -> None:
    """The monthly cost table when there is a price; else one line saying why there is none (a CPU run costs no
    GPU time, and a GPU missing from the price table has no price)."""
    cost = summary["cost_projection"]
    if not cost.get("price_per_hour") or not any(cost["monthly"].values()):
        source = summary.get("cost", {}).get("price_source") or "no GPU price"
        console.print(
            f"projection  left out: needs a GPU price ({escape(source)}); --gpu-price gives the cost per "
            "image and per month",
            soft_wrap=True,
        )
        return
    table = Table(title="monthly cost", title_justify="left")
    table.add_column("images")
    table.add_column(f"GPU cost ({cost['currency']})", justify="right")
    for count, value in cost["monthly"].items():
        table.add_row(f"{int(count):,}", f"{value:.2f}")
    console.print(table)


def one_way(ratio: float, than: str) -> str:
    """A time ratio (ours over theirs) read one way: '1.18x faster than X', '1.25x slower than X', 'as fast as
    X'; the factor is never below 1, so 'faster' comes only with ours taking less time."""
    if ratio <= 0 or ratio != ratio:
        return f"no figure against {than}"
    factor = 1 / ratio if ratio < 1 else ratio
    if f"{factor:.2f}" == "1.00":
        return f"as fast as {than}"
    return f"{factor:.2f}x {'faster' if ratio < 1 else 'slower'} than {than}"


def ratio_lines(summary: dict) -> list[str]:
    """modomo against each plain diffusers baseline: the generate stage, the whole run, then how far the images
    differ, each on its own line and each ratio read the same way (one_way)."""
    fast = summary["settings"].get("fast")
    lines = []
    for key in ("diffusers", "diffusers_fp32"):
        base = summary.get(key)
        if not base:
            continue
        than = f"plain diffusers in {base.get('dtype', summary['speed']['dtype'])}"
        settings = ", the style at its standard settings" if fast else ""
        ours, theirs = summary["stages"]["generate"]["mean"], base["generate_seconds_per_image"]
        lines.append(
            f"vs diffusers  generate {one_way(base['generate_ratio'], than)} "
            f"({ours:.3f} s against {theirs:.3f} s per image{settings})"
        )
        speedup = base.get("speedup_images_per_second")
        if speedup:
            lines.append(f"vs diffusers  whole run {one_way(1 / speedup, than)} (images/s)")
        psnr = f", PSNR {base['psnr_db']:.1f} dB" if base.get("psnr_db") and not fast else ""
        difference = "fast against standard settings" if fast else "largest pixel difference"
        lines.append(f"vs diffusers  {difference} {base['max_pixel_difference']}{psnr} ({than})")
    return lines


def print_vs_diffusers(summary: dict) -> None:
    """modomo against plain diffusers (in the run's format, and in fp32 when the run is not), a line per ratio."""
    for line in ratio_lines(summary):
        console.print(line, soft_wrap=True, markup=False)


def print_projection(projection: dict | None) -> None:
    """Fast mode on the deployed system's T4, projected from FLOPs at the seed's own achieved FLOP/s."""
    if not projection:
        return
    p = projection
    ours, seed = flop_text(p["tflop"]), flop_text(p["seed_tflop"])
    if ours is None or seed is None:
        return
    console.print(
        f"T4 at 512px {ours}/image against the seed's {seed} "
        f"({p['flop_ratio']:.2f}); at the {p['t4_tflops_achieved']:.3g} TFLOP/s the seed's T4 achieved "
        f"({p['t4_share_of_peak']:.1%} of peak): {p['t4_seconds']:.1f} s and GBP "
        f"{p['cost_gbp_at_seed_rate']:.4f} per image (seed: {p['seed_seconds']} s, GBP "
        f"{p['seed_cost_gbp']}); USD {p['cost_usd_at_t4_list_price']:.5f} at the T4 list price",
        soft_wrap=True,
    )


def quality_sanity(summary: dict) -> str:
    """'mean 0.91 modomo, 0.90 diffusers': the sanity of what was timed, so broken output is never a speed."""
    ours = (summary.get("quality") or {}).get("sanity")
    parts = [f"{ours:.2f} modomo"] if ours is not None else []
    for key in ("diffusers", "diffusers_fp32"):
        theirs = (summary.get(key) or {}).get("sanity")
        if theirs is not None:
            fmt = (summary.get(key) or {}).get("dtype")
            parts.append(f"{theirs:.2f} plain diffusers" + (f" {fmt}" if fmt and "diffusers_fp32" in summary else ""))
    return "mean " + ", ".join(parts) if parts else ""


def shown(location: str) -> str:
    """A written file as a person would type it: relative to the working folder when inside it."""
    if "://" in location:
        return location
    relative = os.path.relpath(location)
    return location if relative.startswith("..") else relative


def print_sweep_cell(cell: dict) -> None:
    """One line per finished sweep cell, so a long sweep shows where it is and what each setting gave."""
    from pipeline.bench.compare import label

    if cell["status"] == "ok":
        gpu = f", {cell['peak_gpu_gb']:.2f} GB GPU" if cell["peak_gpu_gb"] is not None else ""
        cost = f", {cell['cost_per_1000']:#.3g} per 1,000 images" if cell.get("cost_per_1000") else ""
        detail = f"{cell['images_per_second']:#.3g} images/s, {cell['seconds_per_image']:#.3g} s/image{gpu}{cost}"
    else:
        detail = f"[yellow]{cell['status']}[/yellow] {escape(cell['error'] or '')}"
    console.print(f"sweep       {label(cell)}: {detail}", soft_wrap=True)


def print_compare(results: list[dict], chart=None, title: str = "bench compare", written=None) -> None:
    """Configurations down, each results file's images/s and cost per 1,000 images across; then where the
    chart (and the results file, for a sweep) were written."""
    from pipeline.bench.compare import file_labels, setting_differences, table_rows

    columns, rows = table_rows(results)
    table = Table(title=title, title_justify="left")
    for k, column in enumerate(columns):  # figures never truncated: headings wrap instead
        widest = max([len(row[k]) for row in rows] + [1])
        table.add_column(escape(column), justify="left" if k == 0 else "right", no_wrap=k == 0, min_width=widest)
    for row in rows:
        table.add_row(*map(escape, row))
    console.print(table)
    for line in setting_differences(results):
        console.print(f"[yellow]warning[/yellow] {escape(line)}", soft_wrap=True)
    for name, data in zip(file_labels(results), results, strict=True):
        price = data.get("price", {})
        source = escape(price.get("source", ""))
        console.print(
            f"  {escape(name)}: driver {data.get('driver') or '-'}, "
            f"{price.get('per_hour', 0):g} {price.get('currency', '')}/hour ({source}), "
            f"{data.get('date', '')}, {escape(data.get('command') or '')}",
            soft_wrap=True,
        )
    if written is not None:
        console.print(f"results     {shown(str(written))}", soft_wrap=True)
    if chart is not None:
        console.print(f"chart       {shown(str(chart))}", soft_wrap=True)
