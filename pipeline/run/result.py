"""The run's outcome: one record per input and style, and the summary the CLI prints and `--json` emits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.outputs.records import ImageRecord
from pipeline.run.cost import Price
from pipeline.stages.timing import summarise

_ROW = re.compile(r"#[0-9a-f]{12}$")  # a manifest row's digest on its input's identity (pipeline.frames.Item)


def photo_of(record: ImageRecord) -> str:
    """The input file or URI a job restyles, whichever manifest row named it: two rows of one photo are one."""
    return _ROW.sub("", record.id)


@dataclass
class RunResult:
    """Everything the summary needs: records, wall time, cost, and how the run ended."""

    records: list[ImageRecord] = field(default_factory=list)
    seconds: float = 0.0
    load_seconds: float = 0.0
    price: Price | None = None
    settings: dict = field(default_factory=dict)
    interrupted: bool = False
    stopped: str | None = None  # why the run ended early: "interrupted", "fail-fast", or a fatal error
    fatal: str | None = None
    oom: list[dict] = field(default_factory=list)
    batching: dict = field(default_factory=dict)  # requested batch size, generate calls, mean batch
    shared_seconds_saved: float = 0.0  # preprocessing not repeated for the second and later styles
    compile: dict = field(default_factory=dict)  # --compile: its decisions and what compiling took (compiled.report)
    extra: dict = field(default_factory=dict)  # what the engine adds: engine, device(s), models, load

    @property
    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "failed": 0, "skipped": 0}
        for record in self.records:
            out[record.status] += 1
        # Results made this run: a job with --variations N makes N.
        out["results"] = sum(max(1, len(r.variations)) for r in self.records if r.ok)
        return out

    def sort(self, items: list, styles: list[str]) -> None:
        """Records in input order (by identity), styles in the order asked."""
        order = {item.identity: i for i, item in enumerate(items)}
        rank = {name: i for i, name in enumerate(styles)}
        self.records.sort(key=lambda r: (order.get(r.id, len(order)), rank.get(r.style, 0)))

    def to_json(self) -> dict:
        processed = [r for r in self.records if r.status != "skipped"]
        done = [r for r in self.records if r.ok]
        total_cost = self.price.cost(self.seconds) if self.price else 0.0
        scored = [r for r in done if r.quality is not None]
        return {
            "images": [r.to_json() for r in self.records],
            "stages": summarise([r.timings for r in done]) if done else {},
            "quality": {
                "threshold": self.settings.get("min_quality"),
                "mean": sum(r.quality for r in scored) / len(scored) if scored else None,
                "success_rate": sum(bool(r.passed) for r in scored) / len(scored) if scored else None,
                "retries": sum(max(0, r.attempts - 1) for r in done),
                "retry_errors": sum(r.retry_errors for r in self.records),
            },
            "settings": self.settings,
            "counts": self.counts,
            "photos": len({photo_of(r) for r in self.records}),  # distinct input files/URIs, not jobs or rows
            "stopped": self.stopped,
            "oom": self.oom,
            "batching": self.batching,
            "styles": {"names": self.settings.get("styles", []), "shared_seconds_saved": self.shared_seconds_saved},
            "seconds": self.seconds,
            "load_seconds": self.load_seconds,
            "compile": self.compile,
            # images_per_minute: jobs done (a photo in a style) per minute, as recorded benchmarks read it;
            # results_per_minute: the files made (a job with --variations N makes N) per minute.
            "images_per_minute": 60.0 * len(done) / self.seconds if self.seconds > 0 else 0.0,
            "results_per_minute": 60.0 * self.counts["results"] / self.seconds if self.seconds > 0 else 0.0,
            "cost": {
                "currency": self.price.currency if self.price else "USD",
                "price_per_hour": self.price.per_hour if self.price else 0.0,
                "price_source": self.price.source if self.price else "",
                "seconds": self.seconds,
                "per_image": total_cost / len(processed) if processed else 0.0,
                "per_result": total_cost / self.counts["results"] if self.counts["results"] else 0.0,
                "total": total_cost,
            },
            **self.extra,
        }
