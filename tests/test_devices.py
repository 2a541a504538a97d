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
from pipeline.workers import parse_devices


def folder_of(rooms, tmp_path, count: int):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(count):
        shutil.copy(rooms / "living-room-02-small.jpg", inputs / f"room-{i}.jpg")
    return inputs


def command(bundle, inputs, out, *extra) -> list[str]:
    return [sys.executable, "-m", "modomo_cli", "transform", str(inputs), "--models", str(bundle), "--out", str(out),
            "--size", "128", "--steps", "2", "--retries", "0", "--json", "--devices", "cpu,cpu", *extra]


def test_parse_devices():
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    with pytest.raises(UsageError):
        parse_devices("0")  # no GPU on the test machine
    with pytest.raises(UsageError):
        parse_devices("all")


def test_two_workers_cover_the_list_once(tiny_bundle, rooms, tmp_path):
    inputs = folder_of(rooms, tmp_path, 6)
    done = subprocess.run(command(tiny_bundle, inputs, tmp_path / "out"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [r["key"] for r in summary["images"]] == [f"room-{i}.jpg" for i in range(6)]
    assert {r["status"] for r in summary["images"]} == {"ok"}
    assert [d["shard"] for d in summary["devices"]] == ["0/2", "1/2"]
    assert all(d["returncode"] == 0 for d in summary["devices"])
    assert len(list((tmp_path / "out").glob("*.png"))) == 6
    assert summary["batching"]["rendered"] >= 6 and summary["batching"]["generate_calls"] >= 2


def test_a_killed_worker_fails_only_its_images(tiny_bundle, rooms, tmp_path):
    inputs = folder_of(rooms, tmp_path, 8)
    parent = subprocess.Popen(command(tiny_bundle, inputs, tmp_path / "out"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
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
