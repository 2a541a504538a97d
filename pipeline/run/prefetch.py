"""Ordered read-ahead on a thread pool with a bounded window, so memory stays flat on any batch size."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def read_ahead(items: Iterable[T], fn: Callable[[T], R], pool: ThreadPoolExecutor, window: int) -> Iterator[R]:
    """`fn(item)` for every item, in order, with at most `window` calls submitted ahead of the consumer."""
    pending: deque[Future] = deque()
    todo = iter(items)
    for item in todo:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().result()
        nxt = next(todo, None)
        if nxt is not None:
            pending.append(pool.submit(fn, nxt))
        yield result
