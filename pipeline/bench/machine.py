"""What the sweep reads from the machine itself, beside torch: the process's peak resident memory (reset per
cell), the NVIDIA driver's version and the load average."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import torch


def reset_host_peak() -> bool:
    """Reset the process's peak resident memory (Linux), so each cell reports its own host peak, not the
    largest of every cell before it. False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def host_peak_gb() -> float | None:
    """The process's peak resident memory since the last reset, in GiB (None off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**20, 3)
    except OSError:
        pass
    return None


def driver_version() -> str | None:
    """The NVIDIA driver's version from nvidia-smi (torch does not report it); None without one."""
    if not torch.cuda.is_available() or shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if lines else None


def load_average() -> list[float] | None:
    """The machine's 1, 5 and 15 minute load: on a shared CPU, other work slows the cells it overlaps."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
