"""Find the inputs: files and folders (recursive, sorted, hidden files skipped) and R2 prefixes, as `Item`s."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path, PurePosixPath

from pipeline.errors import UsageError
from pipeline.frames import Item
from pipeline.inputs.imaging import IMAGE_SUFFIXES
from pipeline.r2 import Remote, is_remote, list_keys


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


def file_version(path: Path) -> str | None:
    """Size and modification time: enough to notice an input that changed since it was done."""
    try:
        info = path.stat()
    except OSError:
        return None
    return f"{info.st_size}-{info.st_mtime_ns}"


def remote_items(uri: str, remote: Remote) -> list[Item]:
    """Every image object under an R2 prefix (or the one object a URI names), keyed relative to it."""
    location = remote.location(uri)
    remote.check(location)
    listed = list_keys(remote.client, location, remote.settings, IMAGE_SUFFIXES)
    if not listed and location.prefix:
        key = location.prefix.rstrip("/")
        etag = remote.etag(location.bucket, key)
        if etag is not None:
            root = f"r2://{location.bucket}/{key.rpartition('/')[0]}"
            return [
                Item(
                    PurePosixPath(key).name,
                    None,
                    root,
                    f"r2://{location.bucket}/{key}",
                    partial(remote.get, location.bucket, key),
                    etag,
                )
            ]
    return [
        Item(
            key[len(location.prefix) :],
            None,
            location.uri(),
            f"r2://{location.bucket}/{key}",
            partial(remote.get, location.bucket, key),
            etag,
        )
        for key, etag in listed
    ]


def collect_inputs(inputs: list[str | Path], remote: Remote | None = None) -> list[Item]:
    """Every input as an Item keyed by its path relative to the folder or prefix it was found in."""
    items: list[Item] = []
    for raw in inputs:
        if is_remote(raw):
            items += remote_items(str(raw), remote or Remote())
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            root = path
            found = sorted(walk_images(root), key=lambda p: p.relative_to(root).as_posix())
            items += [Item(p.relative_to(root).as_posix(), p, root, version=file_version(p)) for p in found]
        elif path.suffix.lower() in (".csv", ".jsonl") and path.is_file():
            raise UsageError(f"{raw}: a list of jobs, not a photo; pass it as --manifest {raw}")
        elif path.exists() or path.is_symlink():
            items.append(Item(path.name, path, path.parent, version=file_version(path)))
        else:
            raise UsageError(f"{raw}: no such file or folder")
    return once(items)


def once(items: list[Item]) -> list[Item]:
    """Each input once, however many times or ways it was named (`one/x.jpg` and `/abs/one/x.jpg`): the first."""
    seen: set[str] = set()
    return [item for item in items if not (item.identity in seen or seen.add(item.identity))]
