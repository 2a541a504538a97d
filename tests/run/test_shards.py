"""Shards: a stable, disjoint, complete partition; two shard runs into one output equal one full run."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.errors import UsageError
from pipeline.run.shards import Shard, from_environment, parse, shard_of

keys = st.lists(st.text(alphabet="abc/é .jpg", min_size=1, max_size=20), unique=True, max_size=60)


@settings(max_examples=200, deadline=None)
@given(keys=keys, count=st.integers(1, 7), seed=st.integers(0, 1000))
def test_partition_is_disjoint_complete_and_order_free(keys, count, seed):
    shards = [Shard(i, count) for i in range(count)]
    owned = [{k for k in keys if s.owns(k)} for s in shards]
    assert sum(len(o) for o in owned) == len(keys)  # disjoint
    assert set().union(*owned) == set(keys)  # complete
    shuffled = keys[:]
    random.Random(seed).shuffle(shuffled)
    assert [{k for k in shuffled if s.owns(k)} for s in shards] == owned  # the listing order does not matter


def test_partition_is_stable_across_runs():
    assert shard_of("living/room.jpg", 4) == shard_of("living/room.jpg", 4)
    spread = {shard_of(f"room-{i}.jpg", 4) for i in range(100)}
    assert spread == {0, 1, 2, 3}


def test_parse_and_environment():
    assert parse("2/5") == Shard(2, 5)
    for bad in ("5/5", "-1/3", "x", "1/0"):
        with pytest.raises(UsageError):
            parse(bad)
    assert from_environment({}) is None
    assert from_environment({"JOB_COMPLETION_INDEX": "3", "JOB_COMPLETIONS": "8"}) == Shard(3, 8)
    with pytest.raises(UsageError, match="JOB_COMPLETIONS"):
        from_environment({"JOB_COMPLETION_INDEX": "3"})
    slurm = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "10"}
    assert from_environment(slurm) == Shard(4, 10)


def test_two_shards_equal_one_full_run(tiny_bundle, rooms, tmp_path, monkeypatch):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    names = ["a.jpg", "b.jpg", "c.jpg", "sub/a.jpg", "sub/a.png", "d.jpg"]
    for name in names:
        Image.open(rooms / "living-room-02-small.jpg").save(inputs / name)
    common = ["--models", str(tiny_bundle), "--size", "128", "--steps", "1", "--retries", "0", "--json"]

    def run(out, *extra):
        result = CliRunner().invoke(app, ["transform", str(inputs), "--out", str(out), *common, *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    full = run(tmp_path / "full")
    assert len(full["images"]) == len(names)
    first = run(tmp_path / "sharded", "--shard", "0/2")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("JOB_COMPLETIONS", "2")
    second = run(tmp_path / "sharded")  # the shard from the job environment
    assert {r["key"] for r in first["images"]}.isdisjoint({r["key"] for r in second["images"]})
    assert len(first["images"]) + len(second["images"]) == len(names)
    made = sorted(p.relative_to(tmp_path / "full") for p in (tmp_path / "full").rglob("*.png"))
    assert made == sorted(p.relative_to(tmp_path / "sharded") for p in (tmp_path / "sharded").rglob("*.png"))
    for path in made:
        a = np.asarray(Image.open(tmp_path / "full" / path), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "sharded" / path), dtype=np.int16)
        assert np.abs(a - b).max() <= 2, path
    journal = (tmp_path / "sharded" / ".modomo" / "journal.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["key"] for line in journal) == sorted(names)  # the journals merge
    monkeypatch.delenv("JOB_COMPLETION_INDEX")
    again = run(tmp_path / "sharded")
    assert {r["status"] for r in again["images"]} == {"skipped"}
    shutil.rmtree(tmp_path / "full")
