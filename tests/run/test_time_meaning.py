"""`seconds`, images per minute and cost mean one thing under every engine: the processing wall time after the
models loaded, with the load reported apart (the longest worker's, and their sum). In this process here; under
`--devices` and Ray on the runs of tests/run/test_scale_out.py, which every engine makes with every option."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from typer.testing import CliRunner

from modomo_cli.app import app

PRICE = 1.8  # per device-hour, so the cost can be checked against the definition


def timed_run(tiny_bundle, rooms, tmp_path, *engine: str) -> tuple[dict, float]:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(4):
        shutil.copy(rooms / "living-room-02-small.jpg", inputs / f"room-{i}.jpg")
    start = time.perf_counter()
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(inputs),
            "--models",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "out"),
            "--size",
            "128",
            "--steps",
            "2",
            "--retries",
            "0",
            "--gpu-price",
            str(PRICE),
            "--json",
            *engine,
        ],
    )
    wall = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), wall


def check_definition(summary: dict, wall: float, devices: int, price: float = PRICE) -> None:
    """The one meaning, whatever the engine."""
    seconds, load = summary["seconds"], summary["load_seconds"]
    assert seconds > 0 and load > 0
    assert summary["load_seconds_total"] >= load * 0.999
    assert seconds + load <= wall + 0.25, (seconds, load, wall)  # processing after the load, not the load again
    assert summary["images_per_minute"] == pytest.approx(60 * summary["counts"]["ok"] / seconds)
    assert summary["cost"]["total"] == pytest.approx(price * devices * seconds / 3600)


def test_in_process(tiny_bundle, rooms, tmp_path):
    summary, wall = timed_run(tiny_bundle, rooms, tmp_path)
    check_definition(summary, wall, 1)
    assert summary["load_seconds_total"] == summary["load_seconds"]
