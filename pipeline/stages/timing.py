"""Per-stage timers (CUDA-synchronised) and their aggregation into mean / p50 / p95 / share."""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import torch

from pipeline.models.runtime import paused_seconds, synchronize

STAGES = (
    "read",
    "detect",
    "segment",
    "depth",
    "scene",
    "preserve",
    "room",
    "mask",
    "fill",
    "declutter",
    "region",
    "edges",
    "generate",
    "compose",
    "second pass",
    "validate",
    "upscale",
    "sign",
    "write",
)


@contextmanager
def timed(frames, stage: str, device: torch.device | None = None):
    """Time a stage over a batch; each frame is charged an equal share of the batch's time, less what ran
    `untimed` inside it (a compile, reported apart)."""
    synchronize(device)
    start, paused = time.perf_counter(), paused_seconds()
    try:
        yield
    finally:
        synchronize(device)
        elapsed = time.perf_counter() - start - (paused_seconds() - paused)
        if frames:
            for frame in frames:
                frame.timings[stage] = frame.timings.get(stage, 0.0) + elapsed / len(frames)


def summarise(timings: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per stage: mean, p50, p95 seconds and share of the summed stage time, in flow order."""
    names = [s for s in STAGES if any(s in t for t in timings)]
    names += sorted({s for t in timings for s in t} - set(names))
    totals = {s: sum(t.get(s, 0.0) for t in timings) for s in names}
    grand = sum(totals.values())
    out = {}
    for stage in names:
        values = np.array([t[stage] for t in timings if stage in t], dtype=np.float64)
        out[stage] = {
            "mean": float(values.mean()),
            "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95)),
            "share": totals[stage] / grand if grand > 0 else 0.0,
        }
    return out
