"""The presets a user names (`--models sd15|tiny|random-sd15|FOLDER`), resolved to a ModelSpec: the random
presets are built on first use by their builders, which is why this is not in `presets` (plain data)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.models.presets import BUNDLE_FILE, TINY_VERSION, ModelSpec, bundle, cache_dir, sd15


def tiny() -> ModelSpec:
    """The tiny random bundle, built once into the cache, then loaded like any bundle."""
    folder = cache_dir() / f"tiny-v{TINY_VERSION}"
    if not (folder / BUNDLE_FILE).is_file():
        from pipeline.models.tiny import build_tiny_bundle

        tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
        build_tiny_bundle(tmp)
        try:
            tmp.rename(folder)
        except OSError:  # another process built it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    else:
        from pipeline.models.tiny import add_missing

        add_missing(folder)  # parts added since the bundle was built (none once they are there)
    return replace(bundle(folder), name="tiny")


def random_sd15() -> ModelSpec:
    """Full-size architectures with random weights, for timing without downloads."""
    from pipeline.models import random_sd15 as module

    return module.spec()


PRESETS = {"sd15": sd15, "tiny": tiny, "random-sd15": random_sd15}


def resolve(name: str) -> ModelSpec:
    """A preset name or a bundle folder to a `ModelSpec`."""
    if name in PRESETS:
        return PRESETS[name]()
    if Path(name).expanduser().is_dir():
        return bundle(name)
    raise UsageError(f"--models {name!r}: not a preset ({', '.join(PRESETS)}) nor a bundle folder")
