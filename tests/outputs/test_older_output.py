"""An output written by modomo 0ef5980 (before the options, the config and the records took their present shape):
the same command resumes it with nothing redone, nothing rewritten, and the index rebuilt with the same rows.

The fixture (`tests/fixtures/before_35`) was made on the built-in tiny models, from its own folder, with
`MODOMO_CACHE=/tmp/modomo-before-35 modomo transform in` and COMMAND below: options that each reach the settings
hash. The tiny models' place is part of what a result was made with (the settings hash holds it), so the test names
the same cache (and removes what it built there)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modomo_cli.app import app

CACHE = "/tmp/modomo-before-35"  # where the fixture's tiny models were: the plan builds them there again
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "before_35"
COMMAND = ["--out", "output", "--models", "tiny", "--size", "64", "--steps", "2", "--retries", "0",
           "--style", "boho,modern", "--format", "jpeg", "--preserve", "sofa", "--variations", "2",
           "--name", "{parent}/{stem}-{style}", "--disclose", "Virtually staged"]  # fmt: skip


def older_output(tmp_path: Path) -> Path:
    """The fixture copied, its photos' times as they were when it was made (a photo's version is its size and
    time: a git checkout gives them new times)."""
    root = tmp_path / "before"
    shutil.copytree(FIXTURE, root)
    for line in (root / "output" / ".modomo" / "journal.jsonl").read_text().splitlines():
        entry = json.loads(line)
        mtime = int(entry["version"].split("-")[1])
        os.utime(root / "in" / entry["key"], ns=(mtime, mtime))
    return root


def rows(index: Path) -> list[dict]:
    """The index's rows less `id` (an input's identity has been its absolute place since), by input, style and
    variation (a resume records the jobs at their identities' new form, which orders them anew)."""
    found = [{k: v for k, v in json.loads(line).items() if k != "id"} for line in index.read_text().splitlines()]
    return sorted(found, key=lambda row: (row["input"], row["style"], row["variation"]))


@pytest.fixture
def cache(monkeypatch):
    made = not Path(CACHE).exists()
    monkeypatch.setenv("MODOMO_CACHE", CACHE)
    yield
    if made:
        shutil.rmtree(CACHE, ignore_errors=True)


def test_an_older_output_resumes_with_nothing_redone(tmp_path, monkeypatch, cache):
    root = older_output(tmp_path)
    made = [p for p in (root / "output" / "lounge").rglob("*") if p.is_file()]
    before = {p: p.read_bytes() for p in made}
    assert len(before) == 24  # two photos, two styles, two variations each: result, thumbnail, metadata
    old_rows = rows(root / "output" / "index.jsonl")
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["transform", "in", *COMMAND, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [image["status"] for image in summary["images"]] == ["skipped"] * 4
    assert summary["loaded"] is False  # nothing to do: no model loaded
    after = {p: p.read_bytes() for p in before}
    assert after == before  # results, thumbnails and metadata untouched
    new_rows = rows(root / "output" / "index.jsonl")
    assert [{k: row[k] for k in old} for row, old in zip(new_rows, old_rows, strict=True)] == old_rows
    assert {row["original_url"] for row in new_rows} == {None}  # a column added since, at the end
