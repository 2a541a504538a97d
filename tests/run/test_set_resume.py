"""Room sets that resume and grow: a set's later photos follow their anchor's result whether it was made in this run
or an earlier one (after a hard kill, a photo added later), under every engine; an anchor whose result is
gone is rendered again; a set shares its seed through retries.

On the tiny models (`tiny_bundle`), loaded from disk as real weights are.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.inputs.seeds import derive_seed
from pipeline.run.shards import shard_of

BASE = ["--style", "boho", "--size", "64", "--steps", "2", "--json", "--sets-by", "parent"]


def picture(rooms: Path, target: Path, turn: int) -> Path:
    image = Image.open(rooms / "living-room-02-small.jpg").convert("RGB").rotate(turn * 9).resize((96, 72))
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, quality=90)
    return target


def sets(rooms: Path, folder: Path, count: int, photos: int) -> Path:
    for k in range(count):
        for n in range(1, photos + 1):
            picture(rooms, folder / f"room{k}" / f"v{n}.jpg", k * 10 + n)
    return folder


def transform(bundle: Path, *args, code: int = 0) -> dict:
    result = CliRunner().invoke(app, ["transform", *map(str, args), "--models", str(bundle), *BASE])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def counts(summary: dict) -> tuple[int, int, int]:
    return summary["counts"]["ok"], summary["counts"]["skipped"], summary["counts"]["failed"]


def journal(out: Path) -> list[dict]:
    lines = []
    for line in (out / ".modomo" / "journal.jsonl").read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:  # a hard kill may tear the last line
            pass
    return lines


def assert_members_follow_their_anchors(out: Path) -> None:
    """Every set's later photo names its anchor and follows exactly the anchor's written result."""
    anchors = {line["set"]: line for line in journal(out) if line.get("anchor")}
    for metadata in out.rglob("*.boho.json"):
        data = json.loads(metadata.read_text())
        anchor = anchors[data["set"]]
        if data["id"] != anchor["id"]:
            assert data["reference"]["anchor"] == anchor["id"], metadata
            assert data["reference"]["digest"] == anchor["digest"], metadata


def test_a_set_killed_after_its_anchors_resumes(tiny_bundle, rooms, tmp_path):
    """A hard kill, the harder stop: the journal may end in a torn line (Ctrl-C and SIGTERM leave whole lines and
    resume through the same journal: tests/run/test_reliability.py)."""
    sig = signal.SIGKILL
    inputs, out = sets(rooms, tmp_path / "in", 3, 3), tmp_path / "out"
    command = [sys.executable, "-m", "modomo_cli", "transform", str(inputs), "--out", str(out), "--models",
               str(tiny_bundle), "--retries", "0", "--batch-size", "1", *BASE]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / ".modomo" / "journal.jsonl").is_file() or len(journal(out)) < 3:  # the three anchors
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(sig)
    process.communicate(timeout=120)
    done = {line["key"] for line in journal(out)}
    assert {"room0/v1.jpg", "room1/v1.jpg", "room2/v1.jpg"} <= done and len(done) < 9

    resumed = transform(tiny_bundle, inputs, "--out", out, "--retries", "0")
    assert counts(resumed) == (9 - len(done), len(done), 0)  # nothing redone that was done, nothing failed
    assert sorted(line["key"] for line in journal(out)) == sorted(
        str(p.relative_to(inputs)) for p in inputs.rglob("*.jpg")
    )
    assert_members_follow_their_anchors(out)


ENGINES = {"modomo": [], "devices": ["--devices", "cpu,cpu"], "ray": ["--engine", "ray", "--actors", "2"]}


@pytest.mark.parametrize("engine", list(ENGINES))
def test_sets_stay_whole_and_a_photo_added_later_follows_the_recorded_anchor(
    tiny_bundle, rooms, tmp_path, engine, request
):
    """Under every engine, both runs: three sets, each later photo following its anchor's result made in the same
    worker or actor (the sets go to both workers: named by their root's folder name, not where it is); then a
    photo added later to one set follows the anchor the first run recorded."""
    if engine == "ray":
        request.getfixturevalue("ray_local")
    inputs, out = tmp_path / "in", tmp_path / "out"
    for k in range(3):
        for n, name in enumerate(("b", "c")):
            picture(rooms, inputs / f"room{k}" / f"{name}.jpg", k * 10 + n)
    first = transform(tiny_bundle, inputs, "--out", out, "--retries", "0", *ENGINES[engine])
    assert counts(first) == (6, 0, 0)
    assert_members_follow_their_anchors(out)
    if engine == "devices":  # the sets were spread: each worker made some
        assert len({shard_of(f"set:{line['set']}", 2) for line in journal(out)}) == 2
    anchor = next(line for line in journal(out) if line.get("anchor") and line["key"].startswith("room0/"))
    assert anchor["key"] == "room0/b.jpg"
    made = (out / "room0" / "b.boho.png").read_bytes()

    picture(rooms, inputs / "room0" / "a.jpg", 5)  # sorts first, yet b stays the set's anchor
    grown = transform(tiny_bundle, inputs, "--out", out, "--retries", "0", *ENGINES[engine])
    assert counts(grown) == (1, 6, 0)
    if engine == "ray":  # one set to do: one actor loads the models, not the two asked for
        assert grown["actors"] == 1
    assert (out / "room0" / "b.boho.png").read_bytes() == made
    assert_members_follow_their_anchors(out)


def test_an_anchor_whose_result_is_gone_is_rendered_again_with_its_set(tiny_bundle, rooms, tmp_path):
    inputs, out = sets(rooms, tmp_path / "in", 1, 2), tmp_path / "out"
    assert counts(transform(tiny_bundle, inputs, "--out", out, "--retries", "0")) == (2, 0, 0)
    (out / "room0" / "v1.boho.png").unlink()
    again = transform(tiny_bundle, inputs, "--out", out, "--retries", "0")
    assert counts(again) == (2, 0, 0) and (out / "room0" / "v1.boho.png").is_file()
    assert_members_follow_their_anchors(out)


def test_a_set_shares_its_seed_through_retries(tiny_bundle, rooms, tmp_path):
    inputs, out = sets(rooms, tmp_path / "in", 1, 2), tmp_path / "out"
    transform(tiny_bundle, inputs, "--out", out, "--retries", "2", "--min-quality", "1.0", "--seed", "7")
    seeds = [
        [
            attempt["seed"]
            for attempt in json.loads((out / "room0" / f"v{n}.boho.json").read_text())["quality"]["attempts"]
        ]
        for n in (1, 2)
    ]
    assert len(seeds[0]) == 3 and seeds[0] == seeds[1]  # attempt k of every photo: the set's k-th seed
    assert seeds[0][1:] == [derive_seed(7, f"set:in/room0#retry{k}") for k in (1, 2)]
