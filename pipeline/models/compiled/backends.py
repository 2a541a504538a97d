"""How a model call becomes a package on disk and a callable again: AOTInductor (the one runs use), and plain
`torch.export` (a stand-in that compiles nothing: the same export, saved and loaded, in seconds; the tests use it
for what does not depend on the kernels, the store's keys and the eviction of shapes).

Both export under `torch.no_grad()`: inductor freezes weights (and pre-packs them) only when gradients are off; a
package compiled with them on ran no faster than eager on the test CPU (benchmarks/cpu/aoti-probe-*.json)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def exporting():
    """Outside the sampler's inference mode (export takes no inference tensors), gradients off (freezing); the C++
    toolchain's notes (no CUDA here, and the like) kept off modomo's stderr."""
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        # one compile process: a worker pool's start-up would print the same notes, and AOT C++ is one file
        with torch.inference_mode(False), torch.no_grad(), torch._inductor.config.patch(compile_threads=1):
            yield
    finally:
        quiet.setLevel(level)


def plain(args: tuple) -> tuple:
    """The call's inputs as ordinary tensors (the sampler's are inference tensors)."""
    return tuple(arg.clone() for arg in args)


class AOTInductor:
    """`torch.export` then `torch._inductor.aoti_compile_and_package` with frozen weights; loaded by
    `aoti_load_package`. Each package holds its own frozen copy of the weights."""

    name = "aotinductor"

    def compile(self, module: torch.nn.Module, args: tuple, path: Path) -> None:
        with exporting():
            exported = torch.export.export(module, plain(args))
            torch._inductor.aoti_compile_and_package(
                exported, package_path=str(path), inductor_configs={"freezing": True}
            )

    def load(self, path: Path):
        return torch._inductor.aoti_load_package(str(path))


class ExportOnly:
    """`torch.export`, saved with its weights and loaded back as a module: no kernels compiled."""

    name = "export"

    def compile(self, module: torch.nn.Module, args: tuple, path: Path) -> None:
        with exporting():
            torch.export.save(torch.export.export(module, plain(args)), str(path))

    def load(self, path: Path):
        return torch.export.load(str(path)).module()


BACKENDS = {backend.name: backend for backend in (AOTInductor, ExportOnly)}


def compiler() -> str | None:
    """The C++ compiler AOTInductor builds packages with ($CXX, else g++, clang++ or c++ on the PATH); None
    without one."""
    import os
    import shutil

    return os.environ.get("CXX") or next(filter(None, map(shutil.which, ("g++", "clang++", "c++"))), None)
