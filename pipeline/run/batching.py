"""Batches of one working size from a stream of frames of mixed sizes.

A model call takes frames of one size, so a folder of mixed aspect ratios in input order (landscape,
portrait, square, landscape, ...) would run at batch 1 whatever --batch-size says. Frames are held
in one bucket per size, within a bounded window, and a bucket goes out when it is full; when the
window is full, the fullest bucket goes out as it is. Seeds come from each input's identity, not its
position, so the order of rendering changes no result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pipeline.frames import Frame

WINDOW_BATCHES = 4  # frames held at most: this many batches (working-size images, a few MB each)


def size_batches(frames: Iterable[Frame], batch_size: int, window: int | None = None) -> Iterator[list[Frame]]:
    """Batches of up to `batch_size` frames of one size; failed frames go out at once, on their own."""
    window = window or batch_size * WINDOW_BATCHES
    buckets: dict[tuple[int, int], list[Frame]] = {}  # insertion order: the oldest size first
    held = 0
    for frame in frames:
        if not frame.ok or frame.image is None:
            yield [frame]
            continue
        bucket = buckets.setdefault(frame.image.size, [])
        bucket.append(frame)
        held += 1
        if len(bucket) >= batch_size:
            del buckets[frame.image.size]
            held -= len(bucket)
            yield bucket
        elif held >= window:
            size = max(buckets, key=lambda s: len(buckets[s]))  # max() keeps the first (oldest) of equals
            held -= len(buckets[size])
            yield buckets.pop(size)
    yield from buckets.values()


def batching_report(batch_size: int, calls: int, rendered: int) -> dict:
    """What the summary says of batching: requested size, generate calls (retries included), the frames
    they rendered and the mean frames per call."""
    return {
        "batch_size": batch_size,
        "generate_calls": calls,
        "rendered": rendered,
        "mean_batch": round(rendered / calls, 3) if calls else None,
    }


def merge_reports(batch_size: int, reports: list[dict]) -> dict:
    """One report from several workers' reports."""
    return batching_report(
        batch_size, sum(r.get("generate_calls", 0) for r in reports), sum(r.get("rendered", 0) for r in reports)
    )
