"""Rich output on stderr: the progress bar while a run goes, the stage table at the end."""

from __future__ import annotations

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
            if record["status"] == "failed":
                console.print(f"[red]failed[/red] {escape(record['input'])}: {escape(record['error'])}", soft_wrap=True)
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
    if summary.get("stopped"):
        lines.append(f"stopped     {summary['stopped']}")
    for event in summary.get("oom", []):
        lines.append(f"GPU memory  out of memory at batch {event['batch']}: continued with {event['action']}")
    for line in lines:
        console.print(line, soft_wrap=True)
