"""`--events FILE|-`: one JSON line per finished job, flushed as it happens, for an orchestrator or a notebook.

Each line: the job's input, id, style, status, error, outputs and seconds, and the run's done,
total and ETA. The same under every engine: with --devices the parent follows its workers' records
as they finish them; with Ray the driver, as they stream in.

In this process, a warning found before a photo is generated (a keep mask that leaves next to nothing to
restyle) is a line of its own as soon as it is found: `event` ("warning"), `input`, `id`, `warning`; under
--devices and Ray it is in the job's record (and metadata) instead.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

RECORD_LOG = "MODOMO_RECORD_LOG"  # set by --devices for its workers: each record as a JSON line, at once


class EventLog:
    """Writes a line per `done` event; `start` sets the total the ETA is counted against."""

    def __init__(self, target: str):
        self.handle = sys.stdout if target == "-" else Path(target).expanduser().open("a", encoding="utf-8")
        self.total, self.done, self.started = 0, 0, time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, event: str, **data) -> None:
        if event == "start":
            self.total, self.started = data["total"], time.monotonic()
        elif event == "done":
            self.write(data["record"])
        elif event == "retry_failed":
            self.emit(
                {
                    "event": "retry_failed",
                    "inputs": [f.item.display for f in data["frames"]],
                    "style": data["frames"][0].style,
                    "attempt": data["attempt"],
                    "error": data["error"],
                }
            )
        elif event == "warning":  # told as soon as it is found, before the job is generated
            frame = data["frames"][0]
            self.emit(
                {"event": "warning", "input": frame.item.display, "id": frame.item.identity, "warning": data["message"]}
            )

    def emit(self, line: dict) -> None:
        with self.lock:
            self.handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            self.handle.flush()

    def write(self, record) -> None:
        with self.lock:
            self.done += 1
            elapsed = time.monotonic() - self.started
            left = max(0, self.total - self.done)
            line = {
                "input": record.input,
                "id": record.id,
                "style": record.style,
                "status": record.status,
                "error": record.error,
                "outputs": record.outputs,
                "seconds": round(sum(record.timings.values()), 3),
                "done": self.done,
                "total": self.total,
                "eta_seconds": round(elapsed / self.done * left, 1) if self.done else None,
            }
            self.handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            self.handle.flush()

    def close(self) -> None:
        if self.handle is not sys.stdout:
            self.handle.close()


def fan_out(*handlers):
    """One event handler that calls each of `handlers` in turn."""
    live = [h for h in handlers if h is not None]

    def handle(event: str, **data) -> None:
        for handler in live:
            handler(event, **data)

    return handle


def record_log_hook():
    """In a --devices worker: each finished record appended to the parent's file as it happens."""
    target = os.environ.get(RECORD_LOG)
    if not target:
        return None
    lock = threading.Lock()

    def handle(event: str, **data) -> None:
        if event == "done":
            line = json.dumps(data["record"].to_json(), ensure_ascii=False) + "\n"
            with lock, open(target, "a", encoding="utf-8") as handle:
                handle.write(line)

    return handle
