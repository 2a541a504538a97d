"""Where results go: output names that never collide, and atomic writes into a local folder."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path, PurePosixPath

from pipeline.errors import ModomoError
from pipeline.frames import Item


def output_stems(items: list[Item], style: str) -> dict[Item, str]:
    """Each input's output stem (relative, POSIX, no suffix): `dir/name.style`.

    Inputs that would share a stem keep their extension (`room.jpg.boho`), and inputs from
    different roots that still collide are told apart by their root folder's name.
    """

    def stem(item: Item, level: int) -> str:
        key = PurePosixPath(item.key)
        if level == 0:
            base = key.with_suffix("").as_posix()
        elif level == 1:
            base = key.as_posix()
        else:
            base = f"{item.root.name or 'input'}/{key.as_posix()}"
        return f"{base}.{style}"

    level = dict.fromkeys(items, 0)
    for _ in range(3):
        counts = Counter(stem(i, level[i]) for i in items)
        clashing = [i for i in items if counts[stem(i, level[i])] > 1]
        if not clashing:
            break
        for item in clashing:
            level[item] = min(level[item] + 1, 2)
    stems = {i: stem(i, level[i]) for i in items}
    if len(set(stems.values())) != len(stems):  # same path given twice
        seen: Counter[str] = Counter()
        for item in items:
            seen[stems[item]] += 1
            if seen[stems[item]] > 1:
                stems[item] = f"{stems[item]}-{seen[stems[item]]}"
    return stems


class LocalSink:
    """Writes files under a folder; each write lands whole or not at all."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def prepare(self) -> None:
        """Create the output folder and check it is writable, before any model loads."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".modomo-check-"):
                pass
        except OSError as exc:
            raise ModomoError(f"{self.root}: output folder is not writable: {exc.strerror or exc}") from None

    def path(self, relative: str) -> Path:
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ModomoError(f"{relative}: output path escapes {self.root}")
        return target

    def write(self, relative: str, data: bytes) -> str:
        """Write to a temporary file beside the target, then rename over it; returns the path."""
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(target)
