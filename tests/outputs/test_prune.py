"""`modomo prune`: what earlier settings left in an output (3 variations, then 1), listed, deleted, locally and on
R2, with nothing else touched; and the run's last lines saying how many there are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.outputs.journal import LOCAL_JOURNAL
from pipeline.outputs.prune import stale_files, stale_paths
from pipeline.outputs.sinks import LocalSink

STEM = "room.boho"
EARLIER = sorted(f"{STEM}.v{n}{suffix}" for n in (1, 2, 3) for suffix in (".png", ".thumb.jpg", ".json"))
CURRENT = [f"{STEM}.png", f"{STEM}.thumb.jpg", f"{STEM}.json"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def transform(bundle: Path, photo: Path, out: str, *extra):
    """One photo in boho on the tiny models; the CLI's result (its --json summary on stdout)."""
    result = invoke(
        "transform", photo, "--models", bundle, "--out", out, "--style", "boho", "--size", "128", "--steps", "2",
        "--retries", "0", "--json", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result


def prune(out: str, *extra) -> dict:
    result = invoke("prune", out, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def photo(tmp_path_factory, rooms) -> Path:
    folder = tmp_path_factory.mktemp("photo")
    shutil.copy(rooms / "living-room-02-small.jpg", folder / "room.jpg")
    return folder / "room.jpg"


def test_three_variations_then_one_locally(tiny_bundle, photo, tmp_path):
    """3 -> 1: prune lists exactly v1-v3's results, thumbnails and metadata; --yes removes them and nothing else;
    the output still verifies and its report still renders."""
    out = tmp_path / "out"
    views = ("--report", "--contact-sheet")
    first = json.loads(transform(tiny_bundle, photo, str(out), "--variations", "3", *views).stdout)
    assert first["stale"]["files"] == 0 and all((out / name).is_file() for name in EARLIER)
    (out / "notes.txt").write_text("mine\n")
    (out / f"{STEM}.v4.png").write_bytes(b"not modomo's")  # named like a result, but no journal line names it
    second = transform(tiny_bundle, photo, str(out), "--variations", "1", *views)
    summary = json.loads(second.stdout)
    assert summary["stale"] == {"files": 9, "bytes": sum((out / n).stat().st_size for n in EARLIER), "out": str(out)}
    assert f"9 files from earlier settings are no longer in the index (modomo prune {out} lists them)" in second.stderr

    listed = prune(str(out))
    assert [f["file"] for f in listed["files"]] == EARLIER and not listed["deleted"]
    assert {f["kind"] for f in listed["files"]} == {"result", "thumbnail", "metadata"}
    assert all(f["bytes"] == (out / f["file"]).stat().st_size for f in listed["files"])
    assert listed["count"] == 9 and listed["bytes"] == summary["stale"]["bytes"]

    before = files_of(out)
    pruned = prune(str(out), "--yes")
    assert pruned["deleted"] and pruned["failed"] == [] and [f["file"] for f in pruned["files"]] == EARLIER
    after = files_of(out)
    assert set(before) - set(after) == set(EARLIER)  # those and only those are gone
    assert all(after[name] == data for name, data in before.items() if name not in EARLIER)  # the rest unchanged
    for kept in ("index.csv", "index.jsonl", "report.html", "contact-sheet.jpg", "notes.txt", f"{STEM}.v4.png"):
        assert kept in after, kept
    assert all(name in after for name in CURRENT)

    assert invoke("verify", out).exit_code == 0
    assert prune(str(out))["files"] == []
    (out / "report.html").unlink()
    rerun = transform(tiny_bundle, photo, str(out), "--variations", "1", "--report")
    report = (out / "report.html").read_text()
    assert "report " in rerun.stderr and f"{STEM}.png" in report and ".v1." not in report


def test_three_variations_then_one_on_r2(tiny_bundle, photo, moto_server, r2_env):
    """The same on R2: the earlier objects listed and deleted, the index and an unrelated object kept."""
    out = f"r2://{r2_env}/out/"
    client = moto_server.client()
    transform(tiny_bundle, photo, out, "--variations", "3")
    client.put_object(Bucket=r2_env, Key="out/notes.txt", Body=b"mine\n")
    second = transform(tiny_bundle, photo, out, "--variations", "1")
    assert json.loads(second.stdout)["stale"]["files"] == 9
    assert f"9 files from earlier settings are no longer in the index (modomo prune {out} lists them)" in second.stderr

    listed = prune(out)
    assert [f["file"] for f in listed["files"]] == EARLIER
    assert [f["location"] for f in listed["files"]] == [f"r2://{r2_env}/out/{name}" for name in EARLIER]
    sizes = {name: client.head_object(Bucket=r2_env, Key=f"out/{name}")["ContentLength"] for name in EARLIER}
    assert {f["file"]: f["bytes"] for f in listed["files"]} == sizes

    pruned = prune(out, "--yes")
    assert pruned["deleted"] and pruned["failed"] == []
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=r2_env, Prefix="out/")
    keys = {o["Key"][len("out/") :] for page in pages for o in page.get("Contents", [])}
    assert not keys & set(EARLIER)
    assert {"index.csv", "index.jsonl", "notes.txt", *CURRENT} <= keys
    assert any(key.startswith(".modomo/journal/") for key in keys)
    assert invoke("verify", out).exit_code == 0
    assert prune(out)["files"] == []


def line(job: str, style: str, *variations: str, status: str = "ok", **outputs) -> dict:
    """A journal line naming `outputs` for the job and each variation stem's three files."""
    return {
        "id": job,
        "style": style,
        "settings": "s",
        "status": status,
        "outputs": outputs,
        "variations": [
            {"n": n, "outputs": {"result": f"{v}.png", "thumbnail": f"{v}.thumb.jpg", "metadata": f"{v}.json"}}
            for n, v in enumerate(variations, 1)
        ],
    }


def test_only_files_no_current_line_names_and_that_are_there(tmp_path):
    """A name the current line of any job still uses, a view, a reference preview, the journal or a control map is
    never listed, nor a stale name whose file is gone."""
    entries = [
        line("a", "boho", "a.boho"),
        line("a", "boho", "a.boho.v1", "a.boho.v2"),
        line("a", "boho", "a.boho"),  # back to one: a.boho.* is current again, v1/v2 are not
        line("b", "boho", "b.boho.v1", input="b.boho.input.jpg", depth="b.boho.depth.png"),
        line("b", "boho", "b.boho"),  # its control maps stay: not a result of earlier settings
        line("c", "boho", "c.boho", "a.boho.v2"),  # another job now owns a.boho.v2 (an edited manifest row)
        line("d", "boho", result="index.csv", thumbnail="references/x.jpg", metadata=".modomo/journal.jsonl"),
        line("d", "boho", "d.boho"),
        line("a", "modern", "a.modern.v1"),  # a style of its own: current
    ]
    found = stale_paths(entries)
    assert sorted(found) == ["a.boho.v1.json", "a.boho.v1.png", "a.boho.v1.thumb.jpg", *sorted(
        f"b.boho.v1{s}" for s in (".json", ".png", ".thumb.jpg")
    )]  # fmt: skip
    assert found["a.boho.v1.png"] == {"kind": "result", "input": None, "style": "boho"}

    sink = LocalSink(tmp_path)
    for name in [*found, "index.jsonl", "a.boho.v2.png", "b.boho.input.jpg"]:
        (tmp_path / name).write_bytes(b"x" * 3)
    (tmp_path / "a.boho.v1.json").unlink()  # gone already: not listed
    (tmp_path / ".modomo").mkdir()
    (tmp_path / LOCAL_JOURNAL).write_text("".join(json.dumps(e) + "\n" for e in entries))
    listed = stale_files(sink)
    assert [f["file"] for f in listed] == [n for n in sorted(found) if n != "a.boho.v1.json"]
    assert all(f["bytes"] == 3 for f in listed)


def test_a_job_whose_rerun_failed_keeps_its_results_and_a_folder_without_journal_is_refused(tmp_path):
    entries = [line("a", "boho", "a.boho"), line("a", "boho", "a.boho.v1", "a.boho.v2")]
    failed = [*entries, line("a", "boho", status="failed")]
    assert sorted(stale_paths(failed)) == ["a.boho.json", "a.boho.png", "a.boho.thumb.jpg"]  # v1, v2 are its last
    result = invoke("prune", tmp_path)
    assert result.exit_code == 2 and "not a modomo output" in result.stderr
