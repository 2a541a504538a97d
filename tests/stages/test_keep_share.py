"""The share of the photo a keep mask leaves to restyle, measured as soon as the mask is made: none fails the job
before anything is generated; 10 % or less is told at once (a warning line, an `--events` line) and spends no
retry; more retries as ever. Tiny models, 128 px, --mask-dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app

PHOTO = "living-room-02-small.jpg"
EVENTS = "events.jsonl"


@pytest.fixture
def generate_calls(monkeypatch, tmp_path) -> list[list[str]]:
    """Each generate call (first renders and retries): the lines of the --events file written before it."""
    from pipeline.stages.generate import Generator

    calls: list[list[str]] = []
    real = Generator.__call__
    events = tmp_path / EVENTS

    def counted(self, frames):
        calls.append(events.read_text().splitlines() if events.exists() else [])
        return real(self, frames)

    monkeypatch.setattr(Generator, "__call__", counted)
    return calls


def restyle_with_mask(bundle: Path, rooms: Path, tmp_path: Path, free: float, *extra) -> tuple[object, Path]:
    """room.jpg with a keep mask (white keeps) that leaves a strip of `free` of its width on the right; the CLI's
    result and the --events file."""
    inputs, masks = tmp_path / "in", tmp_path / "masks"
    inputs.mkdir()
    masks.mkdir()
    shutil.copy(rooms / PHOTO, inputs / "room.jpg")
    mask = Image.new("L", (400, 300), 255)
    if free:
        mask.paste(0, (400 - round(400 * free), 0, 400, 300))
    mask.save(masks / "room.png")
    events = tmp_path / EVENTS
    args = ["transform", str(inputs), "--models", str(bundle), "--out", str(tmp_path / "out"), "--mask-dir", str(masks)]
    args += ["--size", "128", "--steps", "2", "--events", str(events), "--json", *extra]
    return CliRunner().invoke(app, args), events


def metadata(record: dict) -> dict:
    return json.loads(Path(record["outputs"]["metadata"]).read_text())


def test_a_mask_over_the_whole_photo_fails_the_job_before_generating(tiny_bundle, rooms, tmp_path, generate_calls):
    result, _ = restyle_with_mask(tiny_bundle, rooms, tmp_path, 0.0, "--retries", "2")
    assert result.exit_code == 3, result.output
    [record] = json.loads(result.stdout)["images"]
    assert record["status"] == "failed"
    assert "covers the whole photo: nothing left to restyle" in record["error"] and "room.png" in record["error"]
    assert generate_calls == []  # nothing generated, nothing retried
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed")]
    assert len(failed) == 1 and "room.jpg" in failed[0] and "nothing left to restyle" in failed[0]


def test_a_mask_leaving_five_percent_warns_at_once_and_is_not_retried(tiny_bundle, rooms, tmp_path, generate_calls):
    """--min-quality 1 leaves every result below the threshold: a normal mask would be retried twice."""
    result, events = restyle_with_mask(tiny_bundle, rooms, tmp_path, 0.11, "--retries", "2", "--min-quality", "1")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)["images"]
    assert record["status"] == "ok" and record["passed"] is False
    assert record["attempts"] == 1 and len(generate_calls) == 1  # no retry spent
    meta = metadata(record)
    assert 0.02 < meta["changeable"] <= 0.10
    assert len(meta["quality"]["attempts"]) == 1
    [warning] = meta["warnings"]
    assert "room.jpg" in warning and "keep mask leaves 5%" in warning
    # Told before anything was generated: the --events line is written before the first generate call...
    told = [json.loads(line) for line in generate_calls[0]]
    assert told == [{"event": "warning", "input": record["input"], "id": record["id"], "warning": warning}]
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [line.get("event") for line in lines] == ["warning", None]  # then the job's own line
    # ...and on stderr once, as it happened, not again after the summary.
    stderr = result.stderr.splitlines()
    warned = [n for n, line in enumerate(stderr) if line.startswith("warning:")]
    assert len(warned) == 1 and "keep mask leaves 5%" in stderr[warned[0]]
    assert warned[0] < next(n for n, line in enumerate(stderr) if line.startswith("jobs "))


def test_a_normal_mask_is_retried_as_before(tiny_bundle, rooms, tmp_path, generate_calls):
    result, events = restyle_with_mask(tiny_bundle, rooms, tmp_path, 0.5, "--retries", "2", "--min-quality", "1")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)["images"]
    assert record["attempts"] == 3 and len(generate_calls) == 3
    meta = metadata(record)
    assert 0.3 < meta["changeable"] < 0.6 and "warnings" not in meta
    assert "warning" not in result.stderr
    assert [json.loads(line).get("event") for line in events.read_text().splitlines()] == [None]  # the job's line


def test_without_a_mask_the_whole_photo_is_changeable(tiny_bundle, rooms, tmp_path):
    shutil.copy(rooms / PHOTO, tmp_path / "room.jpg")
    args = ["transform", str(tmp_path / "room.jpg"), "--models", str(tiny_bundle), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--size", "128", "--steps", "1", "--retries", "0", "--json"])
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)["images"]
    assert metadata(record)["changeable"] == 1.0
