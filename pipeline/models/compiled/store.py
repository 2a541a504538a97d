"""Packages on disk, one per (model weights, input shapes and dtypes, CPU, torch): compiled once, by whichever run
needs it first (another process wanting the same package waits for it and loads it), written whole or not at all,
and loaded by every later run. Beside them, each compile's measured time, kept by model size, shapes and machine:
what `--compile auto` expects the next compile of those shapes to take; and the speed-up the bench measured for a
model on this machine, compiled against eager (what `auto` weighs a compile with, where it has one)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from pipeline.models.compiled import keys

ESTIMATES = "compile-times.json"
SPEEDUPS = "speedups.json"
LOCK = "compiling.lock"  # held while a package is compiled or the estimates written: one process at a time


@dataclass
class Made:
    """A package ready to call: how it came (`compiled`, or `loaded` from an earlier run) and the seconds that took."""

    runner: Callable
    how: str
    seconds: float


@contextmanager
def locked(path: Path):
    """An exclusive lock on `path` (a lock file) across processes: `--devices` workers share one cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_whole(path: Path, write: Callable[[Path], None]) -> None:
    """`write(temporary)`, then the temporary renamed into place: a reader sees the whole file or none."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class PackageStore:
    """The packages of one backend under one folder (keys.folder() by default)."""

    def __init__(self, backend, root: Path | None = None):
        self.backend = backend
        self.root = root or keys.folder()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt2"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str, module: torch.nn.Module, args: tuple, estimate_key: str) -> Made:
        """The package of `key`: loaded when it is on disk, else compiled from `module` on `args` first (its time
        kept under `estimate_key`)."""
        path = self.path(key)
        start = time.perf_counter()
        how = "loaded"
        with locked(self.root / LOCK):
            if not path.is_file():
                write_whole(path, lambda temporary: self.backend.compile(module, args, temporary))
                how = "compiled"
        if how == "compiled":
            self.note(estimate_key, time.perf_counter() - start, key, path)
        runner = self.backend.load(path)
        return Made(runner, how, time.perf_counter() - start)

    def read(self, name: str) -> dict:
        try:
            return json.loads((self.root / name).read_text())
        except (OSError, ValueError):
            return {}

    def keep(self, name: str, key: str, entry: dict) -> None:
        """One entry of a small JSON table beside the packages, written whole under the lock; a read-only cache
        keeps nothing (the next run measures again)."""
        try:
            with locked(self.root / LOCK):
                known = self.read(name)
                known[key] = {**entry, "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
                text = json.dumps(known, indent=2, sort_keys=True) + "\n"
                write_whole(self.root / name, lambda temporary: temporary.write_text(text))
        except OSError:
            pass

    def estimates(self) -> dict:
        return self.read(ESTIMATES)

    def speedup(self, speedup_key: str) -> float | None:
        """The speed-up the bench last measured under this key, compiled against eager; None if none."""
        known = self.read(SPEEDUPS).get(speedup_key)
        return float(known["speedup"]) if known else None

    def note_speedup(self, speedup_key: str, speedup: float, how: str) -> None:
        self.keep(SPEEDUPS, speedup_key, {"speedup": round(speedup, 3), "how": how})

    def estimate(self, estimate_key: str) -> float | None:
        """The seconds the last compile under this key took on this machine, or None."""
        known = self.estimates().get(estimate_key)
        return float(known["seconds"]) if known else None

    def measured(self, kind: str, parameters: int) -> float | None:
        """The longest compile of a model of this kind and size on this machine, at any shape; None if none."""
        head, tail = f"{keys.model_part(self.backend.name, kind, parameters)} | ", f" | {keys.machine()}"
        found = [v["seconds"] for k, v in self.estimates().items() if k.startswith(head) and k.endswith(tail)]
        return max(found) if found else None

    def note(self, estimate_key: str, seconds: float, key: str, path: Path) -> None:
        """Keep a compile's time for the next run's estimate."""
        self.keep(ESTIMATES, estimate_key, {"seconds": round(seconds, 2), "package": key, "bytes": path.stat().st_size})
