"""How the model libraries run here: quiet on stderr, CUDA work waited for before a clock is read, and the work a
stage's clock leaves out."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import torch


def gpu_name(device: torch.device) -> str | None:
    """The CUDA device's name (what the price table is keyed by); None on a CPU."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def synchronize(device: torch.device | None) -> None:
    """Wait for queued GPU work, or a timer reads the launch time instead of the run time."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def quiet_libraries() -> None:
    """The libraries' own progress bars and advice would bury modomo's output on stderr."""
    import warnings

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for logging in (diffusers_logging, transformers_logging):
        logging.set_verbosity_error()
        logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*torch_dtype.*")


_paused = threading.local()


@contextmanager
def untimed():
    """Work a stage's timer leaves out (a compile, a package's load: reported apart, as model load is): the
    seconds are added to this thread's paused time, which `stages.timing.timed` subtracts."""
    start = time.perf_counter()
    try:
        yield
    finally:
        _paused.seconds = paused_seconds() + time.perf_counter() - start


def paused_seconds() -> float:
    """This thread's seconds spent in `untimed` so far."""
    return getattr(_paused, "seconds", 0.0)
