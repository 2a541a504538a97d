"""`modomo prune`: the files earlier settings left in an output that its index no longer lists.

A rerun with other settings writes a job's results under other names (`--variations 3` then 1: `room.boho.v1.png`
... then `room.boho.png`), and the index, the report and the sheet follow the job's latest journal line, so the
earlier names stay on disk or in the bucket, listed nowhere. They are found from the journal alone: a path some
line named as a result, a thumbnail, a result's metadata or a published original (`originals/`, shared by a photo's
jobs), that no job's current line names under any kind
(current as the index counts jobs, `index.latest_jobs`; a job whose latest line failed keeps its last results too).
Nothing else is ever a candidate: the index, the report, the contact sheets, `references/`, `.modomo/`, the saved
control maps and input previews, and any file modomo did not write.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from pipeline.errors import ModomoError
from pipeline.outputs.index import latest_jobs
from pipeline.outputs.journal import Journal
from pipeline.outputs.sinks import VIEWS

KINDS = ("result", "thumbnail", "metadata", "original")  # what a job's earlier results leave behind
KEPT_FOLDERS = (".modomo", "references")


def named(entry: dict, kinds: tuple[str, ...] | None = None) -> dict[str, str]:
    """The paths a journal line names (the job's and each variation's outputs), each with its kind; only
    `kinds` when given."""
    found: dict[str, str] = {}
    for outputs in [entry.get("outputs") or {}, *((v.get("outputs") or {}) for v in entry.get("variations") or [])]:
        for kind, path in outputs.items():
            if isinstance(path, str) and path and (kinds is None or kind in kinds):
                found.setdefault(path, kind)
    return found


def prunable(path: str) -> bool:
    """Whether a path may ever be pruned: relative, inside the output, and none of the output's own views or
    folders."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or "://" in path or ".." in parts or parts[0] in KEPT_FOLDERS:
        return False
    return not (path in VIEWS or (len(parts) == 1 and path.startswith("contact-sheet") and path.endswith(".jpg")))


def stale_paths(entries: list[dict]) -> dict[str, dict]:
    """Path -> what it was (kind, input, style) for each result, thumbnail or metadata an earlier line named and
    no current line names; by path. A job whose latest line failed keeps its last results until a rerun
    replaces them: they are the only ones it has."""
    current: set[str] = set()
    succeeded = [entry for entry in entries if entry.get("status", "ok") == "ok"]
    for entry in [*latest_jobs(entries), *latest_jobs(succeeded)]:
        current.update(named(entry))
    stale: dict[str, dict] = {}
    for entry in entries:
        for path, kind in named(entry, KINDS).items():
            if path not in current and prunable(path):
                stale[path] = {"kind": kind, "input": entry.get("input"), "style": entry.get("style")}
    return dict(sorted(stale.items()))


def stale_files(sink, entries: list[dict] | None = None) -> list[dict]:
    """The stale files that are still there, each with its location and size in bytes. `entries`: the journal's
    lines when the caller has read them already."""
    entries = Journal(sink).entries() if entries is None else entries
    found = []
    for path, about in stale_paths(entries).items():
        try:
            size = sink.size(path)
        except ModomoError:  # under a link to somewhere outside the output: not the output's
            continue
        if size is not None:
            found.append({"file": path, "location": sink.locate(path), "bytes": size, **about})
    return found


def totals(files: list[dict]) -> dict:
    """How many stale files, and their bytes."""
    return {"files": len(files), "bytes": sum(f["bytes"] for f in files)}


def delete_files(sink, files: list[dict]) -> list[dict]:
    """Delete each listed file; returns those that could not be, each with its error."""
    failed = []
    for entry in files:
        try:
            sink.delete(entry["file"])
        except (OSError, ModomoError) as exc:
            failed.append({**entry, "error": getattr(exc, "strerror", None) or str(exc)})
    return failed
