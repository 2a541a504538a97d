"""--engine ray: Ray Data over an actor pool, end to end on the CPU with the tiny models and two actors."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app


def test_two_actors_restyle_everything_report_errors_as_data_and_read_the_journal_once(
    ray_local, tiny_bundle, rooms, tmp_path, monkeypatch
):
    """Eight photos, every other one portrait, and a broken file over two actors at batch 2: each photo once in
    one journal, the broken one failed as data, mixed sizes still batched, the journal read once for the run."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    photo = Image.open(rooms / "living-room-02-small.jpg").convert("RGB")
    for i in range(8):
        (photo.transpose(Image.ROTATE_90) if i % 2 else photo).save(inputs / f"room-{i}.jpg")
    (inputs / "broken.jpg").write_bytes(b"not an image")
    monkeypatch.chdir(tmp_path)  # relative paths mean the same in the actors
    args = ["in", "--models", tiny_bundle, "--out", "out", "--size", "128", "--steps", "1", "--retries", "0"]
    args += ["--engine", "ray", "--actors", "2", "--batch-size", "2", "--json"]
    result = CliRunner().invoke(app, ["transform", *map(str, args)])
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert summary["engine"] == "ray" and summary["actors"] == 2 and summary["journal_reads"] == 1
    statuses = {r["key"]: r["status"] for r in summary["images"]}
    assert statuses == {"broken.jpg": "failed", **{f"room-{i}.jpg": "ok" for i in range(8)}}
    # batched by shape, though the shapes alternate: four pairs, one split where the broken file sat in a row's pair
    assert summary["batching"]["rendered"] == 8 and summary["batching"]["generate_calls"] <= 5
    out = tmp_path / "out"
    assert len(list(out.glob("*.png"))) == 8
    journal = [json.loads(line) for line in (out / ".modomo" / "journal.jsonl").read_text().splitlines()]
    assert sorted(e["status"] for e in journal) == ["failed"] + ["ok"] * 8  # one journal for both actors
    folder = (tmp_path / "in").resolve()  # a job is known by its canonical place, however the folder was named
    assert sorted(e["id"] for e in journal if e["status"] == "ok") == [f"{folder}/room-{i}.jpg" for i in range(8)]
