"""--devices: one worker process per device over one input list; a worker that dies fails only its images."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from pipeline.errors import UsageError
from pipeline.run.engines.devices import worker_shards
from pipeline.run.plan import parse_devices
from pipeline.run.shards import Shard


def folder_of(rooms, tmp_path, count: int):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(count):
        shutil.copy(rooms / "living-room-02-small.jpg", inputs / f"room-{i}.jpg")
    return inputs


def command(bundle, inputs, out, *extra) -> list[str]:
    return [
        sys.executable,
        "-m",
        "modomo_cli",
        "transform",
        str(inputs),
        "--models",
        str(bundle),
        "--out",
        str(out),
        "--size",
        "128",
        "--steps",
        "2",
        "--retries",
        "0",
        "--json",
        "--devices",
        "cpu,cpu",
        *extra,
    ]


def test_parse_devices():
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    assert parse_devices(" CPU , cpu ") == ["cpu", "cpu"]
    for bad in ("0", "all", "cuda:0"):  # no GPU on the test machine
        with pytest.raises(UsageError, match="no CUDA GPU|not on this machine"):
            parse_devices(bad)
    for bad in ("cuda", "gpu", "cuda:x", "cuda:-1", ",", "cpu,tpu"):
        with pytest.raises(UsageError, match="--devices"):
            parse_devices(bad)


@pytest.mark.parametrize("bad", ["cuda", "gpu0", ","])
def test_bad_devices_are_one_line_usage_errors(tiny_bundle, rooms, tmp_path, bad):
    from typer.testing import CliRunner

    from modomo_cli.app import app

    args = command(tiny_bundle, folder_of(rooms, tmp_path, 1), tmp_path / "out")[4:-1] + [bad]
    result = CliRunner().invoke(app, ["transform", *args])
    assert result.exit_code == 2, result.output
    assert "--devices" in result.stderr and result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.stderr.strip().splitlines()) == 1


def test_worker_shards_split_the_pod_shard_exactly():
    keys = [f"photos/room-{i:03d}.jpg" for i in range(300)]
    for pods in (1, 2, 3):
        covered = []
        for pod in range(pods):
            mine = {k for k in keys if Shard(pod, pods).owns(k)}
            parts = [{k for k in keys if s.owns(k)} for s in worker_shards(Shard(pod, pods), 2)]
            assert parts[0] | parts[1] == mine and not parts[0] & parts[1]
            covered += [k for part in parts for k in part]
        assert sorted(covered) == keys  # every input exactly once over all pods and devices
    assert worker_shards(None, 3) == [Shard(0, 3), Shard(1, 3), Shard(2, 3)]


# Two workers cover the list once, their events as they finish: test_scale_out's two pods of two devices each.


def test_a_killed_worker_fails_only_its_images(tiny_bundle, rooms, tmp_path):
    inputs = folder_of(rooms, tmp_path, 8)
    parent = subprocess.Popen(
        command(tiny_bundle, inputs, tmp_path / "out"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    children = []
    while len(children) < 2 and time.monotonic() < deadline:
        children = psutil.Process(parent.pid).children()
        time.sleep(0.05)
    assert len(children) == 2
    victim = next(c for c in children if "0/2" in c.cmdline())
    victim.send_signal(signal.SIGKILL)
    stdout, stderr = parent.communicate(timeout=300)
    assert parent.returncode == 3, stderr
    summary = json.loads(stdout)
    by_shard = {d["shard"]: d for d in summary["devices"]}
    assert "killed (SIGKILL)" in by_shard["0/2"]["error"] and by_shard["1/2"]["error"] is None
    failed = [r for r in summary["images"] if r["status"] == "failed"]
    ok = [r for r in summary["images"] if r["status"] == "ok"]
    assert failed and ok and len(failed) + len(ok) == 8
    assert all("killed" in r["error"] for r in failed)
    assert "Traceback" not in stderr
