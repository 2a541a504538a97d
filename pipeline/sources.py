"""Find the inputs: files and folders (recursive, sorted, hidden files skipped) as `Item`s."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.frames import Item
from pipeline.imaging import IMAGE_SUFFIXES


def _hidden(name: str) -> bool:
    return name.startswith(".")


def walk_images(root: Path) -> list[Path]:
    """Image files under `root`, following folder links once each (a link loop ends there)."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        try:
            info = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (info.st_dev, info.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        for name in files:
            if not _hidden(name) and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.append(Path(folder) / name)
    return found


def collect_inputs(inputs: list[str | Path]) -> list[Item]:
    """Every input file as an Item keyed by its path relative to the folder it was found in."""
    items: list[Item] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            root = path
            found = sorted(walk_images(root), key=lambda p: p.relative_to(root).as_posix())
            items += [Item(p.relative_to(root).as_posix(), p, root) for p in found]
        elif path.exists() or path.is_symlink():
            items.append(Item(path.name, path, path.parent))
        else:
            raise UsageError(f"{raw}: no such file or folder")
    return items
