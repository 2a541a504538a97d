"""A real run's fidelity is measured on its result: a job's recorded edge F1 is what `modomo score` finds on the
written files (a photo already at the working size, lossless in and out, so both see the same pixels)."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app


def test_a_runs_edge_f1_is_the_score_of_its_written_result(tiny_bundle, rooms, tmp_path):
    photo = tmp_path / "in" / "room.png"
    photo.parent.mkdir()
    Image.open(rooms / "living-room-02-small.jpg").convert("RGB").resize((128, 96)).save(photo)
    out = tmp_path / "out"
    run = CliRunner().invoke(
        app,
        ["transform", str(photo.parent), "--out", str(out), "--models", str(tiny_bundle), "--style", "boho",
         "--size", "128", "--steps", "2", "--retries", "0", "--format", "png", "--json"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    recorded = json.loads((out / "room.boho.json").read_text())["fidelity"]["edges_f1"]
    scored = CliRunner().invoke(app, ["score", str(photo), str(out / "room.boho.png"), "--json"])
    assert scored.exit_code == 0, scored.output
    measured = json.loads(scored.stdout)["fidelity"]["edges_f1"]
    assert recorded < 1.0  # a restyle changes edges: the input against itself would score 1
    assert abs(recorded - measured) < 1e-3
