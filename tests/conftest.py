"""Suite-wide setup: offline environment, a guard against any non-loopback connection, the tiny bundle."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

# Before any test module imports the model libraries: nothing may reach a hub, and nothing
# is written into the user's home.
_SCRATCH = Path(tempfile.mkdtemp(prefix="modomo-tests-"))
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)  # the tiny bundle and caches: over 100 MB a session
if os.environ.get("PYTEST_XDIST_WORKER"):  # two test processes on two cores: one thread each, none spinning idle
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(_SCRATCH / "hf-home"),
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "YOLO_OFFLINE": "1",
        "YOLO_VERBOSE": "False",
        "YOLO_CONFIG_DIR": str(_SCRATCH / "ultralytics"),
        "MODOMO_CACHE": str(_SCRATCH / "modomo-cache"),
        "DO_NOT_TRACK": "1",
    }
)

import pytest  # noqa: E402

pytest_plugins = ["tests.s3_server", "tests.signing_certs"]

REPO = Path(__file__).resolve().parents[1]
# The real room photos (roomGPT's, MIT: see their NOTICE.md), kept with the tests so a clone anywhere has them;
# the same files as the shared set beside the repository, when there is one (SHARED_ROOMS; checked in test_imaging).
ROOMS = REPO / "tests" / "fixtures" / "rooms"
SHARED_ROOMS = REPO.parent / "shared" / "rooms"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "", None}


def _is_loopback(host) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    text = str(host)
    return text.startswith("127.") or text == "::1" or text.startswith("::ffff:127.")


class NetworkBlocked(RuntimeError):
    """Raised when code under test tries to leave the machine."""


@pytest.fixture(scope="session", autouse=True)
def network_guard():
    """Fail any connection or name lookup that is not loopback, and fail the session if any was tried."""
    attempts: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock, address):
        if sock.family == getattr(socket, "AF_UNIX", None):
            return
        host = address[0] if isinstance(address, tuple) else address
        if not _is_loopback(host):
            attempts.append(f"connect {address}")
            raise NetworkBlocked(f"test tried to connect to {address}")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            attempts.append(f"getaddrinfo {host}")
            raise NetworkBlocked(f"test tried to resolve {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    patched = (connect, connect_ex, getaddrinfo)
    originals = (real_connect, real_connect_ex, real_getaddrinfo)
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = patched
    yield attempts
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = originals
    assert not attempts, f"network access attempted during the suite: {attempts}"


@pytest.fixture(scope="session")
def rooms() -> Path:
    """The real room photos kept with the tests."""
    assert ROOMS.is_dir(), f"missing {ROOMS}: the real room photos belong in the repository"
    return ROOMS


@pytest.fixture(scope="session")
def tiny_bundle() -> Path:
    """The tiny random bundle, built once per session where `--models tiny` builds it (the session's MODOMO_CACHE),
    so tests naming the folder and tests naming the preset share one build; loaded back via the folder preset."""
    from pipeline.models.catalog import tiny

    return Path(tiny().sd).parent


@pytest.fixture(scope="session")
def floor_bundle(tiny_bundle, rooms, tmp_path_factory) -> Path:
    """The tiny bundle whose scene segmentation knows where the test rooms' floor is (tests/floor_segmenter.py):
    what --mode stage needs to find a region to furnish."""
    from PIL import Image

    from tests.floor_segmenter import floor_bundle

    photos = [Image.open(rooms / name) for name in ("living-room-01.jpg", "living-room-02-small.jpg")]
    return floor_bundle(tiny_bundle, tmp_path_factory.mktemp("floor-bundle"), photos)


def pytest_configure(config):
    config.addinivalue_line("markers", "fresh_models: the test's runs load their models afresh (tests about loading)")


# The suite's longest files (their time on 2 cores, 2026-12-07), started first: with a file per test process at a time
# (--dist loadfile), a long file handed out last keeps one process busy while the other has nothing left.
LONGEST_FIRST = (
    "run/test_scale_out.py",  # 105 s: every engine, Ray and --devices runs
    "run/test_set_resume.py",  # 78 s: sets under every engine
    "run/test_compile_run.py",  # 57 s: a real AOTInductor compile
    "run/test_reliability.py",  # 45 s
    "bench/test_sweep.py",
    "run/test_declutter_catalogue.py",
    "stages/test_style_ref.py",
    "bench/test_bench.py",
    "bench/test_bench_stage.py",
    "models/test_lora.py",
    "run/test_ray_engine.py",
    "run/test_room_sets.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {REPO / "tests" / path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(item.path), len(rank)))  # stable: the rest in collection order


@pytest.fixture(scope="session")
def stack_shelf():
    """The session's loaded stacks (tests/stacks.py), shared by every in-process run that only reads them."""
    from pipeline.models.load import load_stack
    from tests.stacks import StackShelf

    return StackShelf(load_stack)


@pytest.fixture(autouse=True)
def shared_stacks(request, stack_shelf, monkeypatch):
    """In-process runs take a stack from the shelf, unless the test is marked `fresh_models`."""
    if request.node.get_closest_marker("fresh_models") is None:
        monkeypatch.setattr("pipeline.run.engines.local.load_stack", stack_shelf)


@pytest.fixture(scope="session")
def tiny_stack(tiny_bundle):
    """The tiny bundle loaded once on the CPU in fp32 (the equality checks against diffusers) through the same
    code a user's bundle takes."""
    import torch

    from pipeline.models.catalog import resolve
    from pipeline.models.load import load_stack
    from pipeline.models.placement import LoadOptions

    return load_stack(resolve(str(tiny_bundle)), torch.device("cpu"), options=LoadOptions(dtype="fp32"))


@pytest.fixture(scope="session")
def declutter_stack(tiny_bundle, stack_shelf):
    """The tiny bundle as a declutter loads it (the lines and inpaint ControlNets, LaMa), on the CPU in fp32."""
    import torch

    from pipeline.models.catalog import resolve
    from pipeline.models.placement import LoadOptions

    options = LoadOptions(dtype="fp32", controls=("lines", "inpaint"), lama=True)
    return stack_shelf(resolve(str(tiny_bundle)), torch.device("cpu"), options=options)


def restyle(bundle: Path, photo: Path, out: Path, *extra, steps: int = 2) -> dict:
    """One photo through `modomo transform` (tiny models, 128 px, no retries); the --json summary."""
    import json

    from typer.testing import CliRunner

    from modomo_cli.app import app

    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(photo),
            "--models",
            str(bundle),
            "--out",
            str(out),
            "--size",
            "128",
            "--steps",
            str(steps),
            "--retries",
            "0",
            "--json",
            *map(str, extra),
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
