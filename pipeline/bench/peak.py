"""A CPU's measured matrix-multiply peak in a number format: a short GEMM probe (2048x2048, best of three
runs of five), cached per CPU model, format and thread count. A GPU's peak is its datasheet's (the price table);
a CPU has none, so the bench measures one and reports the generate stage's share of it.

A probe taken while the machine is busy reads low, so the cache keeps the best the CPU has shown: each bench run
probes again after it has timed (`fresh`, once per process) and keeps the higher figure; the estimate before a run
reads the cache."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from pipeline.models.compiled.keys import cpu_model
from pipeline.models.precision import name_of

__all__ = ["cpu_model", "cpu_peak_tflops", "probe"]

SIDE = 2048
CACHE_FILE = "cpu-peaks.json"
_PROBED: set[str] = set()  # what this process has probed: a sweep's cells probe once, not once each


def probe(dtype: torch.dtype, side: int = SIDE, repeats: int = 5, rounds: int = 3) -> float:
    """TFLOP/s of a square matrix multiply in `dtype` on this CPU, the best of `rounds`."""
    a, b = torch.randn(side, side, dtype=dtype), torch.randn(side, side, dtype=dtype)
    with torch.inference_mode():
        for _ in range(2):
            a @ b
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * side**3 / best / 1e12


def cpu_peak_tflops(dtype: torch.dtype, cache: Path | None = None, fresh: bool = False) -> dict:
    """The measured peak for `dtype` with the threads torch uses now: {tflops, dtype, threads, cpu, probe}; the
    cache's, measured when it has none or when `fresh` (the higher of the two is kept)."""
    from pipeline.models.presets import cache_dir

    path = (cache or cache_dir()) / CACHE_FILE
    key = f"{cpu_model()} | {name_of(dtype)} | {torch.get_num_threads()} threads"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known or (fresh and f"{path} {key}" not in _PROBED):
        known[key] = max(round(probe(dtype), 4), known.get(key, 0.0))
        _PROBED.add(f"{path} {key}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(known, indent=2) + "\n")
        except OSError:
            pass  # a read-only cache: measured again next time
    return {
        "tflops": known[key],
        "dtype": name_of(dtype),
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "probe": f"{SIDE}x{SIDE} matmul, best of 3x5",
    }
