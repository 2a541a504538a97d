"""What a catalogue team imports: the output's index, self-describing R2 objects, named outputs, live events."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.outputs.index import safe_cell, to_csv

PHOTO = "living-room-02-small.jpg"


def transform(*args) -> tuple[int, dict | None, str]:
    result = CliRunner().invoke(app, ["transform", *map(str, args), "--json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None, result.stderr


def tiny(bundle: Path, out, *extra) -> list:
    return [
        "--models",
        bundle,
        "--out",
        out,
        "--size",
        "128",
        "--steps",
        "1",
        "--retries",
        "0",
        "--room",
        "living room",
        *extra,
    ]


def photos(folder: Path, rooms: Path, names: list[str]) -> Path:
    photo = Image.open(rooms / PHOTO).convert("RGB")
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (photo.transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else photo).save(folder / name)
    return folder


def index_rows(out: Path) -> list[dict]:
    text = (out / "index.csv").read_bytes().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_index_after_two_runs_lists_both_runs_jobs(tiny_bundle, rooms, tmp_path):
    inputs, out = photos(tmp_path / "in", rooms, ["a.jpg", "b.jpg"]), tmp_path / "out"
    assert transform(inputs / "a.jpg", *tiny(tiny_bundle, out))[0] == 0
    (inputs / "broken.jpg").write_bytes(b"not an image")
    code, summary, _ = transform(inputs, *tiny(tiny_bundle, out))  # a.jpg resumed, b.jpg new, broken fails
    assert code == 3 and [r["status"] for r in summary["images"]] == ["skipped", "ok", "failed"]
    rows = {Path(r["input"]).name: r for r in index_rows(out)}
    assert set(rows) == {"a.jpg", "b.jpg", "broken.jpg"}
    assert rows["a.jpg"]["status"] == "ok" and rows["a.jpg"]["result"] == "a.modern.png"
    assert rows["b.jpg"]["thumbnail"] == "b.modern.thumb.jpg" and rows["b.jpg"]["room"] == "living room"
    assert rows["broken.jpg"]["status"] == "failed" and rows["broken.jpg"]["result"] == ""
    assert all(r["settings"] and r["finished"] and r["seed"] for r in rows.values())
    jsonl = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert [Path(r["input"]).name for r in jsonl] == [Path(r["input"]).name for r in index_rows(out)]
    assert summary["index"]["jobs"] == 3 and summary["index"]["failed"] == 1


def test_index_after_two_shards_lists_every_job_once(tiny_bundle, rooms, tmp_path):
    inputs = photos(tmp_path / "in", rooms, [f"room-{i}.jpg" for i in range(5)])
    out = tmp_path / "out"
    for shard in ("0/2", "1/2"):
        assert transform(inputs, *tiny(tiny_bundle, out, "--shard", shard))[0] == 0
    assert sorted(Path(r["input"]).name for r in index_rows(out)) == [f"room-{i}.jpg" for i in range(5)]
    (out / "index.csv").unlink()
    result = CliRunner().invoke(app, ["index", str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["jobs"] == 5 and len(index_rows(out)) == 5


def test_csv_is_safe_in_a_spreadsheet():
    for risky in ('=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx"):
        assert safe_cell(risky).startswith("'")
    assert safe_cell("salon d'été — 客厅.jpg") == "salon d'été — 客厅.jpg" and safe_cell(0.5) == 0.5
    row = dict.fromkeys(
        (
            "input",
            "style",
            "room",
            "room_probability",
            "status",
            "error",
            "result",
            "thumbnail",
            "result_url",
            "thumbnail_url",
            "seed",
            "quality",
            "passed",
            "settings",
            "finished",
            "manifest_line",
            "id",
        ),
        None,
    )
    row.update(input="=cmd|' /C calc'!A0.jpg", error='says "no", then, stops', quality=0.25, id="客厅.jpg")
    data = to_csv([row])
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with a byte-order mark: spreadsheets read it as UTF-8
    parsed = next(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert parsed["input"] == "'=cmd|' /C calc'!A0.jpg" and parsed["error"] == 'says "no", then, stops'
    assert parsed["id"] == "客厅.jpg" and parsed["quality"] == "0.25"


def test_r2_results_carry_their_metadata(tiny_bundle, rooms, moto_server, r2_env, monkeypatch):
    monkeypatch.setenv("CDN_DOMAIN", "cdn.example.com")
    client = moto_server.client()
    client.put_object(Bucket=r2_env, Key="in/salon d'été.jpg", Body=(rooms / PHOTO).read_bytes())
    code, summary, stderr = transform(f"r2://{r2_env}/in", *tiny(tiny_bundle, f"r2://{r2_env}/out/"))
    assert code == 0, stderr
    record = summary["images"][0]
    for kind in ("result", "thumbnail"):
        key = record["outputs"][kind].removeprefix(f"r2://{r2_env}/")
        meta = client.head_object(Bucket=r2_env, Key=key)["Metadata"]
        assert meta["style"] == "modern" and meta["room"] == "living room" and meta["seed"] == str(record["seed"])
        assert meta["source"] == f"r2://{r2_env}/in/salon d%27%C3%A9t%C3%A9.jpg".replace("%27", "'")
        assert float(meta["quality"]) == pytest.approx(record["quality"], abs=1e-4) and meta["modomo-version"]
    index = client.get_object(Bucket=r2_env, Key="out/index.csv")["Body"].read().decode("utf-8-sig")
    row = next(csv.DictReader(io.StringIO(index)))
    assert row["result"] == "salon d'été.modern.png"
    assert row["result_url"] == "https://cdn.example.com/out/salon%20d%27%C3%A9t%C3%A9.modern.png"


def test_name_template_names_and_refuses_collisions(tiny_bundle, rooms, tmp_path):
    inputs = photos(tmp_path / "in", rooms, ["x/a.jpg", "y/b.jpg"])
    code, summary, stderr = transform(
        inputs,
        *tiny(
            tiny_bundle, tmp_path / "out", "--style", "boho,modern", "--name", "{style}/{parent}-{stem}-{room}-{seed}"
        ),
    )
    assert code == 0, stderr
    names = sorted(str(Path(r["outputs"]["result"]).relative_to(tmp_path / "out")) for r in summary["images"])
    seeds = {r["key"]: r["seed"] for r in summary["images"]}
    assert names == [
        f"boho/x-a-living room-{seeds['x/a.jpg']}.png",
        f"boho/y-b-living room-{seeds['y/b.jpg']}.png",
        f"modern/x-a-living room-{seeds['x/a.jpg']}.png",
        f"modern/y-b-living room-{seeds['y/b.jpg']}.png",
    ]
    for template, reason in (
        ("{stem}", "would both be written as 'a'"),
        ("../{stem}", "outside the output"),
        ("/srv/{stem}", "leave out the leading '/'"),
        ("{colour}", "unknown field {colour}"),
    ):
        shutil.copy(inputs / "x" / "a.jpg", inputs / "y" / "a.jpg")
        result = CliRunner().invoke(
            app, ["transform", str(inputs), *map(str, tiny(tiny_bundle, tmp_path / "o2")), "--name", template]
        )
        assert result.exit_code == 2 and reason in result.stderr, result.stderr
        assert "loading" not in result.stderr


def test_events_file_follows_the_run(tiny_bundle, rooms, tmp_path):
    inputs = photos(tmp_path / "in", rooms, ["a.jpg", "b.jpg", "c.jpg"])
    (inputs / "d.jpg").write_bytes(b"")
    events = tmp_path / "events.jsonl"
    code, summary, _ = transform(inputs, *tiny(tiny_bundle, tmp_path / "out", "--events", events))
    assert code == 3
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [line["done"] for line in lines] == [1, 2, 3, 4] and {line["total"] for line in lines} == {4}
    assert [line["status"] for line in lines].count("failed") == 1 and lines[-1]["eta_seconds"] == 0
    ok = next(line for line in lines if line["status"] == "ok")
    assert ok["outputs"]["result"].endswith(".modern.png") and ok["seconds"] > 0 and ok["style"] == "modern"
    result = CliRunner().invoke(app, ["transform", str(inputs), "--events", "-", "--json"])
    assert result.exit_code == 2 and "stdout" in result.stderr
