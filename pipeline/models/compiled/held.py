"""The compiled shapes held in memory: at most `bound` at once, the least recently used released whole (every
package of its shape) when another is needed. Each package holds a frozen copy of its model's weights, so a
mixed-aspect catalogue would otherwise hold one copy per shape it has met."""

from __future__ import annotations

import gc
from collections import OrderedDict
from pathlib import Path

SHARE = 0.5  # of the memory available when the first shape compiles: what compiled shapes may take together
MOST = 4  # shapes held at most, whatever the memory


def available_bytes() -> int | None:
    """The memory the kernel says is available (Linux), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def shape_bound(bytes_per_shape: int, available: int | None = None) -> int:
    """How many shapes may be held: those whose frozen weights fit in SHARE of the available memory, 1 to MOST."""
    available = available if available is not None else available_bytes()
    if not available or bytes_per_shape <= 0:
        return 1
    return max(1, min(MOST, int(available * SHARE // bytes_per_shape)))


class HeldShapes:
    """Shape -> {package key: callable}, least recently used first."""

    def __init__(self, bound: int | None = None):
        self.bound = bound  # None: set from the memory when the first package is held
        self.shapes: OrderedDict[str, dict] = OrderedDict()
        self.released: list[str] = []  # shapes released, in order: the summary counts them

    def get(self, shape: str, key: str):
        """The held callable, marking its shape used; None when not held."""
        if shape not in self.shapes or key not in self.shapes[shape]:
            return None
        self.shapes.move_to_end(shape)
        return self.shapes[shape][key]

    def make_room(self, shape: str, bytes_per_shape: int) -> None:
        """Before a package of `shape` is compiled or loaded: release the least recently used other shapes until
        it fits within the bound (its compile then does not run beside a copy it would push out)."""
        if self.bound is None:
            self.bound = shape_bound(bytes_per_shape)
        if shape in self.shapes:
            self.shapes.move_to_end(shape)
            return
        while len(self.shapes) >= self.bound:
            self._release_oldest()

    def release_all(self) -> None:
        """Release every held shape now (their packages' frozen weights with them)."""
        while self.shapes:
            self._release_oldest()

    def _release_oldest(self) -> None:
        gone, _ = self.shapes.popitem(last=False)
        self.released.append(gone)
        gc.collect()  # the package's frozen weights go now, not at some later collection

    def hold(self, shape: str, key: str, runner) -> None:
        self.shapes.setdefault(shape, {})[key] = runner
        self.shapes.move_to_end(shape)
