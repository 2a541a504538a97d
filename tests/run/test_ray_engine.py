"""--engine ray: Ray Data over an actor pool, end to end on the CPU with the tiny models and two actors."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from modomo_cli.app import app


def test_two_actors_restyle_everything_and_report_errors_as_data(ray_local, tiny_bundle, rooms, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(4):
        shutil.copy(rooms / "living-room-02-small.jpg", inputs / f"room-{i}.jpg")
    (inputs / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(inputs),
            "--models",
            str(tiny_bundle),
            "--out",
            str(out),
            "--size",
            "128",
            "--steps",
            "1",
            "--retries",
            "0",
            "--engine",
            "ray",
            "--actors",
            "2",
            "--batch-size",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert summary["engine"] == "ray"
    statuses = {r["key"]: r["status"] for r in summary["images"]}
    assert statuses == {"broken.jpg": "failed", **{f"room-{i}.jpg": "ok" for i in range(4)}}
    assert len(list(out.glob("*.png"))) == 4
    journal = [json.loads(line) for line in (out / ".modomo" / "journal.jsonl").read_text().splitlines()]
    assert sorted(e["status"] for e in journal) == ["failed"] + ["ok"] * 4  # one journal for both actors
