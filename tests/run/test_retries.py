"""A quality retry that raises is recorded (an event, the attempt's error in the metadata, a count in the
summary) and the next retry goes ahead."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from modomo_cli.app import app


def test_a_failed_retry_is_recorded_and_the_next_one_runs(tiny_bundle, rooms, tmp_path, monkeypatch):
    from pipeline.stages.generate import Generator

    real, calls = Generator.__call__, []

    def flaky(self, frames):
        calls.append(len(frames))
        if len(calls) == 2:  # the first retry
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore detail")
        return real(self, frames)

    monkeypatch.setattr(Generator, "__call__", flaky)
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(rooms / "living-room-02-small.jpg", inputs / "room.jpg")
    events = tmp_path / "events.jsonl"
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
            "1",
            "--min-quality",
            "0.99",
            "--retries",
            "2",
            "--events",
            str(events),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(calls) == 3  # the first render, the retry that failed, and the retry after it
    summary = json.loads(result.stdout)
    [record] = summary["images"]
    assert record["status"] == "ok" and record["retry_errors"] == 1 and record["attempts"] == 3
    assert summary["quality"]["retry_errors"] == 1
    attempts = json.loads(open(record["outputs"]["metadata"]).read())["quality"]["attempts"]
    assert [("error" in a) for a in attempts] == [False, True, False]
    assert attempts[1]["error"] == "CUDA error: an illegal memory access was encountered"
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    failed = [line for line in lines if line.get("event") == "retry_failed"]
    assert len(failed) == 1 and failed[0]["attempt"] == 1 and failed[0]["inputs"] == [str(inputs / "room.jpg")]
    assert "retry 1 failed" in result.stderr and "1 failed" in result.stderr
