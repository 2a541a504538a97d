"""The resume journal: one JSON line per finished input, with a hash of the settings that shaped its result.

Local outputs keep one file, `.modomo/journal.jsonl`, appended and fsynced a line at a time (after
the input's outputs are all in place). R2 objects cannot be appended to, so an R2 journal is a
set of segment objects under `.modomo/journal/`, one per flush (every few seconds, and at exit).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

from pipeline.outputs.sinks import LocalSink, R2Sink

LOCAL_JOURNAL = ".modomo/journal.jsonl"
SEGMENT_PREFIX = ".modomo/journal/"


def parse_lines(text: str) -> list[dict]:
    """JSON lines; a torn last line (a crash mid-write) is ignored."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "id" in entry and "settings" in entry:  # lines without an id predate
            entries.append(entry)  # input identities: redone
    return entries


def is_absolute(path: str) -> bool:
    """An absolute path or a URI: how earlier versions recorded outputs."""
    return isinstance(path, str) and (path.startswith("/") or "://" in path or path[1:3] in (":\\", ":/"))


def all_outputs(entry: dict) -> list[str]:
    """Every output path a journal line names (the job's and each variation's)."""
    paths = list((entry.get("outputs") or {}).values())
    for variation in entry.get("variations") or []:
        paths += list((variation.get("outputs") or {}).values())
    return paths


def superseded(entries: list[dict]) -> list[dict]:
    """The lines without those a later `was` line replaces (the same job and style at the input's old place)."""
    last: dict[tuple[str, str], int] = {}
    for n, entry in enumerate(entries):
        if entry.get("was"):
            last[(entry["was"], entry.get("style"))] = n
    return [e for n, e in enumerate(entries) if n >= last.get((e["id"], e.get("style")), -1)]


class Journal:
    """What is done in an output, and a way to add to it."""

    def __init__(self, sink: LocalSink | R2Sink, flush_seconds: float = 10.0):
        self.sink = sink
        self.flush_seconds = flush_seconds
        # Segments are read in name order: the time to the microsecond, so that two runs in one second keep their
        # order (names of earlier versions, to the second, sort before any later one of their second).
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S.%f}-{uuid.uuid4().hex[:8]}"
        self.pending: list[str] = []
        self.segment = 0
        self.last_flush = time.monotonic()
        self.lock = threading.Lock()  # writer threads record concurrently
        self.loads = 0  # how often the whole journal was read: once per run, whatever the engine
        self._finished: dict | None = None
        self._lines: list[dict] = []

    @property
    def local(self) -> bool:
        return isinstance(self.sink, LocalSink)

    def load(self) -> dict[tuple[str, str], dict]:
        """Finished entries keyed by (input identity, settings hash), the latest winning, as they were when
        first asked (read once: what a run resumes from). Failure lines (kept for the index) never count."""
        if self._finished is None:
            self.loads += 1
            self._lines = [e for e in self.entries() if e.get("status", "ok") == "ok"]
            self._finished = {(e["id"], e["settings"]): e for e in self._lines}
        return self._finished

    def lines(self) -> list[dict]:
        """The finished lines in the order written (from the same single read as `load`)."""
        self.load()
        return self._lines

    def moved(self, entry: dict) -> None:
        """Record a done job at its input's new place (a line with `was`), and resume from it in this run too."""
        self.record(entry)
        self.load()
        self._lines.append(entry)
        self._finished[(entry["id"], entry["settings"])] = entry

    def entries(self) -> list[dict]:
        """Every line, in the order written (R2: segments in name order, each a run and a flush), with every
        output path relative to the output's root. A job recorded at a new place (a line with `was`: its input
        moved, or named another way) is known by it alone: its lines under the old identity, in that style, before
        it, are left out."""
        if self.local:
            data = self.sink.read(LOCAL_JOURNAL)
            entries = parse_lines(data.decode("utf-8", "replace")) if data else []
        else:
            entries = []
            for name in self.sink.list(SEGMENT_PREFIX):
                data = self.sink.read(name)
                entries += parse_lines(data.decode("utf-8", "replace")) if data else []
        return [self.relative(entry) for entry in superseded(entries)]

    def relative(self, entry: dict) -> dict:
        """A line with its outputs relative to the output's root. Lines of earlier versions hold absolute
        paths or URIs, possibly of where the output was before it moved: the sink places them."""

        def fix(outputs: dict) -> dict:
            return {k: self.sink.relative(v) if is_absolute(v) else v for k, v in (outputs or {}).items()}

        if not any(is_absolute(v) for v in all_outputs(entry)):
            return entry
        return {
            **entry,
            "outputs": fix(entry.get("outputs")),
            "variations": [{**v, "outputs": fix(v.get("outputs"))} for v in entry.get("variations") or []],
        }

    def record(self, entry: dict) -> None:
        """Add one finished input; durable at once locally, at the next flush on R2."""
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        with self.lock:
            if self.local:
                self.sink.append(LOCAL_JOURNAL, line)
                return
            self.pending.append(line)
            if time.monotonic() - self.last_flush >= self.flush_seconds:
                self._flush()

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            name = f"{SEGMENT_PREFIX}{self.run_id}-{self.segment:06d}.jsonl"
            self.sink.write(name, ("\n".join(self.pending) + "\n").encode(), "application/x-ndjson")
            self.pending, self.segment = [], self.segment + 1
        self.last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()


class JournalBuffer:
    """Collects journal lines in memory for another process to record (a Ray actor hands them back with
    its records, and the driver writes them into the run's one journal)."""

    def __init__(self):
        self.entries: list[dict] = []
        self.lock = threading.Lock()

    def record(self, entry: dict) -> None:
        with self.lock:
            self.entries.append(entry)

    def drain(self) -> list[dict]:
        with self.lock:
            entries, self.entries = self.entries, []
        return entries

    def close(self) -> None:
        pass
