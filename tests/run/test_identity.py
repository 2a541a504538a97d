"""One photo is one job whatever path names it: a relative or absolute path, another working directory, a moved or
copied folder; a different photo that would write the same name is refused in one line, never written over. An
output written before identities were canonical (a committed fixture) resumes with nothing redone.

On the tiny models (`tiny_bundle`), loaded from disk as real weights are.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.options import TransformOptions
from pipeline.run.plan import build_plan

BASE = ["--style", "boho", "--size", "64", "--steps", "2", "--retries", "0", "--json"]
FIXTURE = Path(__file__).parent.parent / "fixtures" / "old_output"


def picture(rooms: Path, target: Path, turn: int = 0) -> Path:
    image = Image.open(rooms / "living-room-02-small.jpg").convert("RGB").rotate(turn * 9).resize((96, 72))
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, quality=90)
    return target


def transform(bundle: Path, *args, code: int = 0) -> dict:
    result = CliRunner().invoke(app, ["transform", *map(str, args), "--models", str(bundle), *BASE])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def counts(summary: dict) -> tuple[int, int, int]:
    return summary["counts"]["ok"], summary["counts"]["skipped"], summary["counts"]["failed"]


def journal_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / ".modomo" / "journal.jsonl").read_text().splitlines()]


def index_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def test_one_folder_named_five_ways_is_one_job(tiny_bundle, rooms, tmp_path, monkeypatch):
    work = tmp_path / "work"
    picture(rooms, work / "one" / "x.jpg")
    monkeypatch.chdir(work)
    assert counts(transform(tiny_bundle, "one", "--out", "oneout")) == (1, 0, 0)
    result = work / "oneout" / "x.boho.png"
    made = result.read_bytes()

    absolute = transform(tiny_bundle, work / "one", "--out", work / "oneout")
    assert counts(absolute) == (0, 1, 0) and absolute["loaded"] is False
    twice = transform(tiny_bundle, "one", work / "one" / "x.jpg", "--out", work / "oneout")  # one file, named twice
    assert counts(twice) == (0, 1, 0)
    assert len(journal_lines(work / "oneout")) == 1  # the same identity: found as it is, nothing to record again

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert counts(transform(tiny_bundle, "../work/one/", "--out", "../work/oneout")) == (0, 1, 0)

    (work / "one").rename(work / "renamed")  # moved: the same size and time, another identity
    moved = transform(tiny_bundle, work / "renamed", "--out", work / "oneout")
    assert counts(moved) == (0, 1, 0) and moved["loaded"] is False

    shutil.copytree(work / "renamed", work / "copied")  # copied and touched: only the bytes say it is the same
    os.utime(work / "copied" / "x.jpg", (1_000_000, 1_000_000))
    assert counts(transform(tiny_bundle, work / "copied", "--out", work / "oneout")) == (0, 1, 0)

    assert result.read_bytes() == made  # never rendered again, never replaced
    rows = index_rows(work / "oneout")
    assert len(rows) == 1 and rows[0]["input"] == str(work / "copied" / "x.jpg")  # one job, at its latest place
    monkeypatch.chdir(work)
    assert counts(transform(tiny_bundle, "copied", "--out", "oneout")) == (0, 1, 0)  # known there from now on


def test_a_different_photo_of_the_same_name_is_refused_not_written_over(tiny_bundle, rooms, tmp_path):
    first, second = picture(rooms, tmp_path / "a" / "x.jpg", 1), picture(rooms, tmp_path / "b" / "x.jpg", 2)
    out = tmp_path / "out"
    assert counts(transform(tiny_bundle, tmp_path / "a", "--out", out)) == (1, 0, 0)
    made = (out / "x.boho.png").read_bytes()

    dry = CliRunner().invoke(app, ["transform", str(tmp_path / "b"), "--out", str(out), "--dry-run", "--models",
                                   str(tiny_bundle), *BASE])  # fmt: skip
    assert dry.exit_code == 3 and "problem" in dry.output and str(first) in " ".join(dry.output.split())

    refused = transform(tiny_bundle, tmp_path / "b", "--out", out, code=3)
    assert counts(refused) == (0, 0, 1) and refused["loaded"] is False  # found before any model loads
    error = refused["images"][0]["error"]
    way_out = "{root}/{parent}/{stem}.{style}"
    assert str(second) in error and str(first) in error and f"--name '{way_out}'" in error
    assert (out / "x.boho.png").read_bytes() == made
    assert [row["input"] for row in index_rows(out)] == [str(first)]

    named = transform(tiny_bundle, tmp_path / "b", "--out", out, "--name", way_out)  # the way out it names
    assert counts(named) == (1, 0, 0) and (out / "b" / "x.boho.png").is_file()
    assert (out / "x.boho.png").read_bytes() == made


def old_output(tmp_path: Path, bundle: Path) -> tuple[Path, Path]:
    """The committed output of a run made before identities were canonical (`in` and `output`, named relative to
    their folder), with its input's times as they were and the settings hash of this session's tiny bundle (the
    bundle's place is part of what a result was made with)."""
    root = tmp_path / "old"
    shutil.copytree(FIXTURE, root)
    journal = root / "output" / ".modomo" / "journal.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    for line in lines:
        size, mtime = line["version"].split("-")
        os.utime(root / "in" / line["key"], ns=(int(mtime), int(mtime)))
    options = TransformOptions(inputs=[str(root / "in")], out=str(root / "output"), models=str(bundle),
                               style="boho", size=64, steps=2, retries=0, sets_by="parent")  # fmt: skip
    settings = build_plan(options).result_hashes()["boho"]
    journal.write_text("".join(json.dumps({**line, "settings": settings}) + "\n" for line in lines))
    return root / "in", root / "output"


def test_an_output_written_before_this_resumes_with_nothing_redone(tiny_bundle, rooms, tmp_path, monkeypatch):
    inputs, out = old_output(tmp_path, tiny_bundle)
    before = {p: p.read_bytes() for p in out.rglob("*.png")}
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # not where the old run was: its lines name `in/lounge/a.jpg`
    resumed = transform(tiny_bundle, inputs, "--out", out, "--sets-by", "parent")
    assert counts(resumed) == (0, 2, 0) and resumed["loaded"] is False
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == before
    assert sorted(row["input"] for row in index_rows(out)) == [
        str(inputs / "lounge/a.jpg"),
        str(inputs / "lounge/b.jpg"),
    ]

    picture(rooms, inputs / "lounge" / "0.jpg", 3)  # added later, sorting first: the recorded anchor stays
    grown = transform(tiny_bundle, inputs, "--out", out, "--sets-by", "parent")
    assert counts(grown) == (1, 2, 0)
    anchor = {json.loads(line)["key"]: json.loads(line) for line in (out / ".modomo/journal.jsonl").open()}[
        "lounge/a.jpg"
    ]
    followed = json.loads((out / "lounge" / "0.boho.json").read_text())["reference"]
    assert followed["digest"] == anchor["digest"] and followed["anchor"] == str(inputs / "lounge/a.jpg")
    assert {p: p.read_bytes() for p in before} == before
