"""Rich output on stderr: the progress bar while a run goes, the stage table at the end."""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console(stderr=True, highlight=False)


class RunProgress:
    """A progress bar (current image and stage, ETA) when stderr is a terminal; failures always print."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = console.is_terminal if enabled is None else enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[current]}", style="dim"),
            console=console,
            transient=True,
        )
        self.task = None

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
            names = ", ".join(f.item.key for f in data["frames"][:2])
            more = f" +{len(data['frames']) - 2}" if len(data["frames"]) > 2 else ""
            self.progress.update(self.task, current=f"{data['stage']}: {names}{more}")
        elif event == "done":
            record = data["record"]
            if record.status == "failed":
                console.print(f"[red]failed[/red] {escape(record.input)}: {escape(record.error or '')}", soft_wrap=True)
            if self.enabled:
                self.progress.advance(self.task)


def stage_table(summary: dict) -> Table:
    """Per stage mean / p50 / p95 seconds and share, then load time, throughput and cost."""
    table = Table(title="modomo run", title_justify="left", show_footer=False)
    table.add_column("stage")
    for name in ("mean s", "p50 s", "p95 s", "share"):
        table.add_column(name, justify="right")
    for stage, row in summary["stages"].items():
        table.add_row(stage, f"{row['mean']:.3f}", f"{row['p50']:.3f}", f"{row['p95']:.3f}", f"{row['share']:.1%}")
    return table


def print_summary(summary: dict) -> None:
    """The stage table and the run's totals, to stderr."""
    counts = summary["counts"]
    if summary["stages"]:
        console.print(stage_table(summary))
    cost = summary["cost"]
    cur = cost["currency"]
    lines = [
        f"images      {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped",
        f"model load  {summary['load_seconds']:.1f} s",
        f"run time    {summary['seconds']:.1f} s, {summary['images_per_minute']:.1f} images/minute",
        f"cost        {cost['per_image']:.5f} {cur}/image, {cost['total']:.4f} {cur} total"
        f"  (at {cost['price_per_hour']:.4f} {cur}/GPU-hour: {cost['price_source']})",
    ]
    quality = summary.get("quality") or {}
    if quality.get("mean") is not None:
        lines.append(f"quality     mean {quality['mean']:.3f}, {quality['success_rate']:.0%} at or above "
                     f"{quality['threshold']:g}, {quality['retries']} retries")
    batching = summary.get("batching") or {}
    if batching.get("generate_calls") and batching["batch_size"] > 1:
        lines.append(f"batching    {batching['batch_size']} requested: {batching['generate_calls']} generate calls, "
                     f"mean batch {batching['mean_batch']:.2f}")
    styles = summary.get("styles") or {}
    if len(styles.get("names", [])) > 1:
        lines.append(f"styles      {', '.join(styles['names'])}: read, detect, segment and depth ran once per photo, "
                     f"{styles['shared_seconds_saved']:.1f} s saved against separate runs")
    if summary.get("stopped"):
        lines.append(f"stopped     {summary['stopped']}")
    if summary.get("index"):
        index = summary["index"]
        lines.append(f"index       {shown(index['csv'])} ({index['jobs']} jobs: {index['ok']} ok, "
                     f"{index['failed']} failed)")
    for event in summary.get("oom", []):
        lines.append(f"GPU memory  out of memory at batch {event['batch']}: continued with {event['action']}")
    for line in lines:
        console.print(line, soft_wrap=True)


def print_bench(summary: dict) -> None:
    """The bench report: stage table, throughput, memory, FLOP/s, cost projection, baseline, ablation."""
    print_summary(summary)
    device, speed, flops = summary["device"], summary["speed"], summary["flops"]
    tput, memory, warm = summary["throughput"], summary["memory"], summary["warmup"]
    console.print(f"device      {device['name']} ({device['type']}), {speed['dtype']}, batch {speed['batch_size']}",
                  soft_wrap=True)
    console.print(f"throughput  {tput['seconds_per_image']:.3f} s/image, {tput['images_per_second']:.3f} images/s "
                  f"(after {warm['images']} warm-up image(s), {warm['seconds']:.1f} s"
                  + (f", of which compiling {warm['compile_seconds']:.1f} s" if warm.get("compile_seconds") else "")
                  + ")", soft_wrap=True)
    gpu = f"{memory['peak_gpu_gb']:.2f} GB GPU, " if memory["peak_gpu_gb"] is not None else ""
    console.print(f"memory      peak {gpu}{memory['peak_host_gb']:.2f} GB host", soft_wrap=True)
    w, h = flops["image_size"]
    share = f", {flops['share_of_peak']:.1%} of the {device['peak_tflops']} TFLOP/s peak" if flops["share_of_peak"] \
        else ""
    console.print(f"generate    {flops['per_image_tflop']['modomo']:.2f} TFLOP/image at {w}x{h} "
                  f"(plain diffusers: {flops['per_image_tflop']['diffusers']:.2f}), "
                  f"{flops['generate_tflops_achieved']:.3f} TFLOP/s achieved{share}", soft_wrap=True)
    cost = summary["cost_projection"]
    table = Table(title="monthly cost", title_justify="left")
    table.add_column("images")
    table.add_column(f"GPU cost ({cost['currency']})", justify="right")
    for count, value in cost["monthly"].items():
        table.add_row(f"{int(count):,}", f"{value:.2f}")
    console.print(table)
    if "diffusers" in summary:
        base = summary["diffusers"]
        console.print(f"vs diffusers  generate {base['generate_ratio']:.2f}x the time of plain diffusers per image "
                      f"({summary['stages']['generate']['mean']:.3f} s vs {base['generate_seconds_per_image']:.3f} s), "
                      f"whole run {base['speedup_images_per_second']:.2f}x the images/s, "
                      f"largest pixel difference {base['max_pixel_difference']}", soft_wrap=True)
    sanity = quality_sanity(summary)
    if sanity:
        console.print(f"sanity      {sanity} (0 = black, blank or NaN output)", soft_wrap=True)
    for name, seconds in summary.get("ablation", {}).items():
        console.print(f"ablation    {name}: generate {seconds:.3f} s/image", soft_wrap=True)


def quality_sanity(summary: dict) -> str:
    """'mean 0.91 modomo, 0.90 diffusers': the sanity of what was timed, so broken output is never a speed."""
    ours = (summary.get("quality") or {}).get("sanity")
    theirs = (summary.get("diffusers") or {}).get("sanity")
    parts = [f"{ours:.2f} modomo"] if ours is not None else []
    if theirs is not None:
        parts.append(f"{theirs:.2f} plain diffusers")
    return "mean " + ", ".join(parts) if parts else ""


def shown(location: str) -> str:
    """A written file as a person would type it: relative to the working folder when inside it."""
    if "://" in location:
        return location
    relative = os.path.relpath(location)
    return location if relative.startswith("..") else relative
