"""Ctrl-C and SIGTERM during a run: the first asks for a graceful stop, the second for an immediate one."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager


@contextmanager
def on_stop_signals(first: Callable[[], None], again: Callable[[], None], notice: Callable[[str], None]):
    """Within the block, SIGINT/SIGTERM call `first` the first time and `again` every later time.
    Outside the main thread (where Python cannot take signals) the block runs unguarded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def handler(signum, frame):
        received.append(signum)
        if len(received) == 1:
            notice(
                f"\n{signal.Signals(signum).name}: finishing the images in hand, then stopping (again to stop at once)"
            )
            first()
        else:
            again()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def raise_interrupt() -> None:
    raise KeyboardInterrupt
