"""The host allocator on a CPU run. glibc's malloc serves each block above its threshold with a fresh mmap and
unmaps it on free, so every UNet call faulted its activations in again, page by page: 85,000 page faults a call on
the full-size UNet at 256x192, a tenth of the call spent in the kernel. Kept blocks stay mapped and are reused: the
same call ran 0.81 s -> 0.69 s, and the segment stage about a quarter faster (docs/benchmarking.md).

The setting is the process's, so whatever runs in it after (the bench's plain diffusers baselines included) runs
with it too. `MODOMO_MALLOC=system` leaves glibc's own behaviour (to measure the difference, or on a machine where
kept memory is unwelcome)."""

from __future__ import annotations

import ctypes
import os
from functools import cache

# mallopt's parameters (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
KEEP = 2**31 - 1  # the largest threshold mallopt takes: up to 2 GiB free at the heap's top is kept
_state: list[str] = []  # what keep_host_memory set in this process


@cache
def _libc():
    """glibc's malloc controls, or None on a C library without them (musl, macOS)."""
    try:
        libc = ctypes.CDLL(None)  # the C library this process runs on, as linked (no search for its file)
        libc.mallopt.argtypes, libc.malloc_trim.argtypes = (ctypes.c_int, ctypes.c_int), (ctypes.c_size_t,)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        return libc
    except (OSError, AttributeError, TypeError):
        return None


def keep_host_memory() -> str:
    """Serve every block from the heap and keep freed memory for reuse (once per process); says what holds."""
    if not _state:
        _state.append(_keep())
    return _state[0]


def host_memory() -> str:
    """What holds in this process: kept, or glibc's own behaviour (where no CPU stack was loaded)."""
    return _state[0] if _state else "system (no CPU stack loaded)"


def _keep() -> str:
    if os.environ.get("MODOMO_MALLOC", "").lower() == "system":
        return "system (MODOMO_MALLOC=system)"
    libc = _libc()
    if libc is None:
        return "system (not glibc)"
    if not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, KEEP)):
        return "system (mallopt refused)"
    return f"kept (glibc {libc.gnu_get_libc_version().decode()}: no mmap per block, no trim)"


def release_free_memory() -> None:
    """Hand the heap's free pages back to the kernel (after a load left copies behind: the layout change)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
