"""The host allocator on a CPU run (pipeline/models/host_memory.py): once a CPU stack is loaded, a freed block is
kept and served again without the kernel faulting its pages in; `MODOMO_MALLOC=system` leaves glibc's own way."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Frees and allocates 64 MiB blocks, writing each through, and prints the page faults of the last three rounds.
ROUNDS = """
import ctypes, resource
from pipeline.models.host_memory import keep_host_memory
print(keep_host_memory())
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, (ctypes.c_size_t,), (ctypes.c_void_p,)
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)
    libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[1:]))
"""


def rounds(**env) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", ROUNDS], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    state, faults = done.stdout.splitlines()
    return state, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc is Linux's")
def test_a_freed_block_is_served_again_without_faulting_its_pages_in():
    state, faults = rounds()
    assert state.startswith("kept (glibc")
    assert faults < 100  # three rounds of 16,384 pages each: none faulted again
    state, faults = rounds(MODOMO_MALLOC="system")
    assert state == "system (MODOMO_MALLOC=system)"
    assert faults > 3 * 16_000  # glibc's own way: each 64 MiB block mapped afresh and faulted in page by page
