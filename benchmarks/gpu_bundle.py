"""Wheels of every runtime dependency the GPU machine lacks, into one folder that travels with the tree.

The GPU machine reaches no package registry. It has torch, transformers, accelerate, opencv and many more
(benchmarks/gpu_machine_packages.txt) but not diffusers, ultralytics, sam2, boto3, c2pa-python... This
walks modomo's runtime requirements as installed in this venv (make install), stops at what the machine
has, and fetches a wheel of each package left at the exact version installed here, for the machine's
Python (3.12, manylinux x86-64). Packages published only as source (sam2, iopath, antlr4...) are built
into wheels here, without their CUDA extension. Then it checks the folder fits the device tool's 64 MiB
together with the working tree.

    python benchmarks/gpu_bundle.py                        # make gpu-bundle: .gpu/
    python benchmarks/gpu_bundle.py --python 3.11 --out .gpu-rehearsal/wheels    # for this machine's Python

The folder holds the wheels, requirements.txt (name==version, installed with --no-deps --no-index by
benchmarks/gpu.sh) and machine.txt (the machine's own packages that modomo relies on, at the version read
there where one was, else the one installed here: make gpu-rehearsal installs those from the registry).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
MACHINE_LIST = ROOT / "benchmarks" / "gpu_machine_packages.txt"
CARRY_LIMIT = 64 * 2**20
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
# Left out on purpose, each with the reason; make gpu-rehearsal runs the checks without them.
LEFT_OUT = {
    "polars": "ultralytics imports it only to train and to export tables, never to predict (54 MB)",
    "polars-runtime-32": "polars' engine, see polars",
    "opencv-python": "the machine's opencv-python-headless provides the same cv2",
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def machine_packages() -> dict[str, str | None]:
    """name -> the version read on the machine, or None where none was read."""
    lines = [line.strip() for line in MACHINE_LIST.read_text().splitlines()]
    pairs = [line.partition("==") for line in lines if line and not line.startswith("#")]
    return {norm(name): version or None for name, _, version in pairs}


def requirement_applies(req: Requirement, python: str) -> bool:
    if req.marker is None:
        return True
    env = {"extra": "", "python_version": python, "python_full_version": python + ".0"}
    env.update(sys_platform="linux", platform_system="Linux", platform_machine="x86_64")
    return req.marker.evaluate(env)


def rehearsed_version(name: str, read: str | None, here: str, python: str) -> str:
    """The version make gpu-rehearsal installs: the one read on the machine, where it installs for that Python."""
    if read is None or read == here:
        return here
    spec = f"{name}=={read}"
    check = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps", "--ignore-installed"]
    with tempfile.TemporaryDirectory() as nowhere:
        check += ["--only-binary=:all:", "--python-version", python, "--target", nowhere, spec]
        if subprocess.run(check, capture_output=True).returncode == 0:
            return read
    print(f"gpu-bundle: {spec}, as read on the machine, has no wheel for Python {python}: the rehearsal takes {here}")
    return here


def walk(root: str, machine: dict[str, str | None], python: str) -> tuple[dict[str, str], dict[str, str]]:
    """(packages to carry, the machine's own packages that modomo's tree relies on), each name -> the version
    installed here."""
    carry: dict[str, str] = {}
    relied: dict[str, str] = {}
    todo = [root]
    while todo:
        name = norm(todo.pop())
        if name in carry or name in relied or name in LEFT_OUT:
            continue
        version = metadata.version(name)
        if name in machine:
            relied[name] = version
            continue
        carry[name] = version
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if requirement_applies(req, python):
                todo.append(req.name)
    carry.pop(norm(root))
    return carry, relied


def pip(*args: str, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", *args, "--no-deps", "--quiet", "-d" if args[0] == "download" else "-w"]
    env = {**os.environ, "SAM2_BUILD_CUDA": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return subprocess.run([*command, str(out)], capture_output=True, text=True, env=env)


def fetch(name: str, version: str, python: str, out: Path) -> str:
    """A wheel of name==version for that Python: downloaded where one is published, else built here."""
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    spec = f"{name}=={version}"
    got = pip(
        "download",
        "--only-binary=:all:",
        "--python-version",
        python,
        "--implementation",
        "cp",
        *platforms,
        spec,
        out=out,
    )
    if got.returncode == 0:
        return "downloaded"
    built = pip("wheel", "--no-build-isolation", "--no-binary", name, spec, out=out)
    if built.returncode != 0:
        raise SystemExit(f"gpu-bundle: {spec}: no wheel for Python {python} and the build failed:\n{built.stderr}")
    return "built here"


def tree_bytes() -> int:
    """What the device tool sends besides the carried folders: tracked and untracked, not ignored, files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True
    ).stdout.split(b"\0")
    return sum((ROOT / name.decode()).stat().st_size for name in listed if name and (ROOT / name.decode()).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu")
    parser.add_argument("--python", default="3.12", help="the Python the wheels are for (the GPU machine's: 3.12)")
    parser.add_argument("--rehearsal", action="store_true", help="wheels for make gpu-rehearsal: not carried")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    carry, relied = walk("modomo", machine_packages(), args.python)
    for name, version in sorted(carry.items()):
        print(f"gpu-bundle: {name}=={version}: {fetch(name, version, args.python, args.out)}", flush=True)
    for wheel in args.out.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if carry.get(norm(name)) != version:
            wheel.unlink()  # left from an earlier bundle: another package or version
    (args.out / "requirements.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(carry.items())))
    machine = machine_packages()
    rehearsed = {name: rehearsed_version(name, machine[name], here, args.python) for name, here in relied.items()}
    (args.out / "machine.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(rehearsed.items())))
    size, tree = folder_bytes(args.out), tree_bytes()
    if args.rehearsal:
        print(f"gpu-bundle: {len(carry)} wheels for Python {args.python} in {args.out}: {size / 2**20:.1f} MiB")
        return 0
    print(
        f"gpu-bundle: {len(carry)} wheels in {args.out}: {size / 2**20:.1f} MiB; with the working tree "
        f"({tree / 2**20:.1f} MiB) {(size + tree) / 2**20:.1f} MiB of the device tool's 64 MiB"
    )
    for name, why in LEFT_OUT.items():
        print(f"gpu-bundle: left out {name}: {why}")
    if size + tree > CARRY_LIMIT:
        print("gpu-bundle: over the 64 MiB the device tool carries", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
