"""How a model call becomes a package on disk and a callable again: AOTInductor (the one runs use), and plain
`torch.export` (a stand-in that compiles nothing: the same export, saved and loaded, in seconds; the tests use it
for what does not depend on the kernels, the store's keys and the eviction of shapes).

Both export under `torch.no_grad()`: inductor freezes weights (and pre-packs them) only when gradients are off; a
package compiled with them on ran no faster than eager on the test CPU (benchmarks/cpu/aoti-probe-*.json)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]  # where `pipeline` is importable from, for the build process
INDUCTOR = ".inductor"  # inductor's caches for the builds, beside the packages
LARGE = (
    16 * 2**20
)  # a file this large in inductor's cache carries weights (an object file, a library): the package has them


def prune(folder: Path) -> None:
    """Inductor's cache less the weight-bearing files a build leaves there (about twice the weights)."""
    for path in folder.rglob("*"):
        if path.is_file() and path.stat().st_size > LARGE:
            path.unlink(missing_ok=True)


@contextmanager
def exporting():
    """Outside the sampler's inference mode (export takes no inference tensors), gradients off (freezing)."""
    with torch.inference_mode(False), torch.no_grad():
        yield


@contextmanager
def quiet_toolchain():
    """torch's C++ extension notes (no CUDA on this machine, and the like) kept off modomo's stderr."""
    import logging

    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def dense(args: tuple) -> tuple:
    """The call's tensors laid out densely, row-major, as a package takes them: a package's kernels are specialised
    to its example inputs' strides and read any other layout wrongly (the prompt's embedding expanded over an
    unguided batch, a stride-0 view, gave every image after the first NaN: black). A no-op for dense inputs."""
    return tuple(arg.contiguous() if isinstance(arg, torch.Tensor) else arg for arg in args)


def plain(args: tuple) -> tuple:
    """The call's inputs as ordinary dense tensors (the sampler's are inference tensors, some of them views)."""
    return tuple(arg.clone(memory_format=torch.contiguous_format) for arg in args)


class CompileError(RuntimeError):
    """A package could not be built; its message is the build's last line."""


class AOTInductor:
    """`torch.export` here, then `torch._inductor.aoti_compile_and_package` with frozen weights in a process of its
    own (`build`); loaded by `aoti_load_package`. Each package holds its own frozen copy of the weights."""

    name = "aotinductor"

    def compile(self, module: torch.nn.Module, args: tuple, path: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=".build-", dir=path.parent) as scratch:
            exported = Path(scratch) / "exported.pt2"
            with exporting():
                torch.export.save(torch.export.export(module, plain(args)), str(exported))
            env = {
                **os.environ,
                # inductor's kernel and header caches kept between builds (content-addressed); no graph cache, whose
                # entries would name the weight-bearing files pruned below
                "TORCHINDUCTOR_CACHE_DIR": str(path.parent / INDUCTOR),
                "TORCHINDUCTOR_FX_GRAPH_CACHE": "0",
                "TORCHINDUCTOR_AUTOGRAD_CACHE": "0",
                "TORCHINDUCTOR_COMPILE_THREADS": "1",  # AOT C++ is one file per model: no worker pool to start
                "TMPDIR": scratch,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            }
            command = [sys.executable, "-m", "pipeline.models.compiled.build", str(exported), str(path)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            prune(path.parent / INDUCTOR)
            if done.returncode != 0:
                lines = [line for line in done.stderr.splitlines() if line.strip()]
                raise CompileError(lines[-1] if lines else f"the build exited with {done.returncode}")

    def load(self, path: Path):
        with quiet_toolchain():
            return torch._inductor.aoti_load_package(str(path))


class ExportOnly:
    """`torch.export`, saved with its weights and loaded back as a module: no kernels compiled."""

    name = "export"

    def compile(self, module: torch.nn.Module, args: tuple, path: Path) -> None:
        with exporting():
            torch.export.save(torch.export.export(module, plain(args)), str(path))

    def load(self, path: Path):
        return torch.export.load(str(path)).module()


def compiler() -> str | None:
    """The C++ compiler AOTInductor builds packages with ($CXX, else g++, clang++ or c++ on the PATH); None
    without one."""
    return os.environ.get("CXX") or next(filter(None, map(shutil.which, ("g++", "clang++", "c++"))), None)
