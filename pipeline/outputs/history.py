"""The output's history: one line per run that wrote into it (date, engine, device, jobs done, throughput,
cost, where the time went), kept beside the journal, so the report can say how the output was made.

Local outputs append to `.modomo/runs.jsonl`; on R2, one object per run under `.modomo/runs/`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from pipeline.outputs.sinks import LocalSink

LOCAL_RUNS = ".modomo/runs.jsonl"
RUNS_PREFIX = ".modomo/runs/"


def device_text(summary: dict) -> str:
    """Where a run ran, in words: its device, its device workers, or its Ray actors."""
    device = summary.get("device")
    if isinstance(device, dict):
        return device.get("name") or device.get("type", "")
    if summary.get("devices"):
        return ", ".join(worker["device"] for worker in summary["devices"])
    if summary.get("actors"):
        return f"{summary['actors']} Ray actor(s)"
    return str(device or "")


def run_line(summary: dict) -> dict:
    """What the history keeps of one run's summary."""
    counts, cost = summary.get("counts", {}), summary.get("cost", {})
    return {
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "engine": summary.get("engine", "modomo"),
        "device": device_text(summary),
        "jobs": counts.get("ok", 0),
        "failed": counts.get("failed", 0),
        "skipped": counts.get("skipped", 0),
        "results": counts.get("results", 0),
        "seconds": round(summary.get("seconds", 0.0), 3),
        "images_per_minute": round(summary.get("images_per_minute", 0.0), 3),
        "cost": round(cost.get("total", 0.0), 6),
        "currency": cost.get("currency", "USD"),
        "stages": {name: round(row["mean"], 6) for name, row in (summary.get("stages") or {}).items()},
        "settings": {
            k: summary.get("settings", {}).get(k)
            for k in ("size", "steps", "room", "models")
            if summary.get("settings", {}).get(k) is not None
        },
        "styles": summary.get("styles", {}).get("names", []),
    }


def record_run(sink, summary: dict) -> None:
    """Add this run to the output's history."""
    line = json.dumps(run_line(summary), ensure_ascii=False, separators=(",", ":"))
    if isinstance(sink, LocalSink):
        sink.append(LOCAL_RUNS, line)
        return
    name = f"{RUNS_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.json"
    sink.write(name, (line + "\n").encode(), "application/json")


def runs(sink) -> list[dict]:
    """Every run in the history, oldest first."""
    if isinstance(sink, LocalSink):
        data = sink.read(LOCAL_RUNS)
        texts = [data.decode("utf-8", "replace")] if data else []
    else:
        texts = [(sink.read(name) or b"").decode("utf-8", "replace") for name in sink.list(RUNS_PREFIX)]
    lines = []
    for text in texts:
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if isinstance(entry, dict) and "finished" in entry:
                lines.append(entry)
    return sorted(lines, key=lambda e: e["finished"])
