"""`modomo transform` end to end through the CLI, on real room photos and the tiny bundle loaded from disk."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from styles import ROOMS

STAGES = ["read", "detect", "segment", "depth", "room", "edges", "generate", "validate", "write"]


def transform(*args: str):
    return CliRunner().invoke(app, ["transform", *map(str, args)])


def fast(bundle: Path, out: Path, *extra: str) -> list[str]:
    return ["--models", str(bundle), "--out", str(out), "--size", "320", "--steps", "2", *extra]


@pytest.fixture(scope="module")
def run(tiny_bundle, rooms, tmp_path_factory):
    """One run over both real photos with a set GPU price, shared by the shape tests."""
    out = tmp_path_factory.mktemp("run")
    inputs = [rooms / "living-room-02-small.jpg", rooms / "living-room-01.jpg"]
    result = transform(*inputs, *fast(tiny_bundle, out, "--json", "--gpu-price", "2.0", "--currency", "GBP"))
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout), result


def test_outputs_exist_with_thumbnail_and_metadata(run):
    out, summary, _ = run
    assert [r["status"] for r in summary["images"]] == ["ok", "ok"]
    for record in summary["images"]:
        paths = {k: Path(v) for k, v in record["outputs"].items()}
        assert set(paths) == {"result", "thumbnail", "metadata"}
        assert all(p.is_file() and p.parent == out for p in paths.values())
        assert paths["result"].name.endswith(".modern.png")
        with Image.open(paths["result"]) as result, Image.open(paths["thumbnail"]) as thumb:
            assert max(result.size) == 320 and result.size[0] % 8 == 0 and result.size[1] % 8 == 0
            assert max(thumb.size) == 256
        meta = json.loads(paths["metadata"].read_text())
        for key in (
            "input",
            "style",
            "prompt",
            "negative_prompt",
            "seed",
            "models",
            "settings",
            "objects",
            "timings",
            "quality",
        ):
            assert key in meta, key
        assert meta["seed"] == record["seed"] and meta["style"] == "modern"
        assert meta["room"] in ROOMS and f"a modern {meta['room']}," in meta["prompt"]  # --room auto, by CLIP
        assert meta["models"]["stable_diffusion"].endswith("stable-diffusion")
        assert 0.0 <= meta["quality"]["score"] <= 1.0
    assert not list(out.rglob("*.tmp"))


def test_summary_shape_and_numbers(run):
    _, summary, _ = run
    assert set(summary) >= {"images", "stages", "settings", "load_seconds", "images_per_minute", "cost"}
    for record in summary["images"]:
        assert set(record) >= {"input", "status", "error", "outputs", "seed", "quality", "timings"}
        assert list(record["timings"]) == STAGES
        assert all(v > 0 for v in record["timings"].values())
    assert list(summary["stages"]) == STAGES
    assert sum(s["share"] for s in summary["stages"].values()) == pytest.approx(1.0)
    for row in summary["stages"].values():
        assert 0 < row["p50"] <= row["p95"] and row["mean"] > 0
    settings = summary["settings"]
    for key in (
        "size",
        "steps",
        "guidance_scale",
        "controlnet_conditioning_scale",
        "control_guidance_start",
        "control_guidance_end",
    ):
        assert key in settings
    assert settings["steps"] == 2 and settings["size"] == 320
    assert summary["load_seconds"] > 0 and summary["images_per_minute"] > 0
    cost = summary["cost"]
    assert cost["currency"] == "GBP" and cost["price_per_hour"] == 2.0
    assert cost["total"] == pytest.approx(2.0 * summary["seconds"] / 3600)
    assert cost["per_image"] == pytest.approx(cost["total"] / 2)


def test_table_is_printed_on_stderr(run):
    _, _, result = run
    for word in ("generate", "p95", "share", "model load", "results/minute", "GBP/image"):
        assert word in result.stderr


def test_bad_images_fail_alone(tiny_bundle, rooms, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(rooms / "living-room-02-small.jpg", inputs / "good.jpg")
    (inputs / "empty.jpg").write_bytes(b"")
    (inputs / "notes.jpg").write_text("not a picture")
    truncated = (rooms / "living-room-02-small.jpg").read_bytes()
    (inputs / "truncated.jpg").write_bytes(truncated[: len(truncated) // 2])
    Image.new("RGB", (8, 8)).save(inputs / "tiny.png")
    result = transform(inputs, *fast(tiny_bundle, tmp_path / "out", "--json"))
    assert result.exit_code == 3, result.output
    records = {Path(r["input"]).name: r for r in json.loads(result.stdout)["images"]}
    assert records["good.jpg"]["status"] == "ok"
    reasons = {"empty.jpg": "empty", "notes.jpg": "not an image", "truncated.jpg": "truncated", "tiny.png": "small"}
    for name, word in reasons.items():
        assert records[name]["status"] == "failed" and word in records[name]["error"], records[name]
        line = next(ln for ln in result.stderr.splitlines() if name in ln)
        assert word in line and str(inputs) in line
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".modomo") == [
        "good.modern.json",
        "good.modern.png",
        "good.modern.thumb.jpg",
        "index.csv",
        "index.jsonl",
    ]
    journal = [json.loads(line) for line in (tmp_path / "out" / ".modomo" / "journal.jsonl").read_text().splitlines()]
    assert [e["key"] for e in journal if e["status"] == "ok"] == ["good.jpg"]  # failed inputs are not done


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--style", "baroque"], "unknown style"),
        (["--size", "10"], "--size"),
        (["--room", "garage"], "--room"),
        (["--batch-size", "0"], "--batch-size"),
        (["--models", "no-such-preset"], "--models"),
    ],
)
def test_usage_errors_exit_2(tiny_bundle, rooms, tmp_path, args, message):
    base = ["transform", str(rooms / "living-room-02-small.jpg"), "--out", str(tmp_path), "--models", str(tiny_bundle)]
    result = CliRunner().invoke(app, base + args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_missing_input_and_empty_folder_exit_2(tmp_path, tiny_bundle):
    result = transform(tmp_path / "nope", "--models", tiny_bundle, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "no such file" in result.stderr
    (tmp_path / "empty").mkdir()
    result = transform(tmp_path / "empty", "--models", tiny_bundle, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "no images found" in result.stderr


def test_same_name_in_two_folders_both_survive(tiny_bundle, rooms, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        shutil.copy(rooms / "living-room-02-small.jpg", tmp_path / "in" / sub / "room.jpg")
    result = transform(tmp_path / "in", *fast(tiny_bundle, tmp_path / "out", "--style", "boho"))
    assert result.exit_code == 0, result.output
    for sub in ("a", "b"):
        assert (tmp_path / "out" / sub / "room.boho.png").is_file()
        assert (tmp_path / "out" / sub / "room.boho.json").is_file()


def test_seeds_do_not_depend_on_order_or_batch(tiny_bundle, rooms, tmp_path):
    photos = [rooms / "living-room-02-small.jpg", rooms / "living-room-01.jpg"]
    first = transform(*photos, *fast(tiny_bundle, tmp_path / "one", "--json"))
    second = transform(*reversed(photos), *fast(tiny_bundle, tmp_path / "two", "--json", "--batch-size", "2"))
    assert first.exit_code == second.exit_code == 0
    seeds_one = {r["key"]: r["seed"] for r in json.loads(first.stdout)["images"]}
    seeds_two = {r["key"]: r["seed"] for r in json.loads(second.stdout)["images"]}
    assert seeds_one == seeds_two and len(set(seeds_one.values())) == 2
    import numpy as np

    for name in ("living-room-02-small.modern.png", "living-room-01.modern.png"):
        a = np.asarray(Image.open(tmp_path / "one" / name), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "two" / name), dtype=np.int16)
        assert np.abs(a - b).max() <= 2, name


def test_sd15_preset_offline_is_one_clear_line(rooms, tmp_path):
    result = transform(rooms / "living-room-02-small.jpg", "--out", tmp_path, "--models", "sd15")
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "not found" in lines[0] or "not in the local" in lines[0]
    assert "Traceback" not in result.output


def test_styles_command_lists_the_five():
    result = CliRunner().invoke(app, ["styles", "--json"])
    assert result.exit_code == 0
    names = [s["name"] for s in json.loads(result.stdout)]
    assert names == ["boho", "industrial", "minimalist", "modern", "scandinavian"]


def test_console_script_with_the_tiny_preset(rooms, tmp_path):
    """The installed entry point and the built-in tiny preset (built into the cache on first use)."""
    cmd = [
        sys.executable,
        "-m",
        "modomo_cli",
        "transform",
        str(rooms / "living-room-02-small.jpg"),
        "--models",
        "tiny",
        "--out",
        str(tmp_path),
        "--size",
        "128",
        "--steps",
        "1",
        "--json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["models"]["preset"] == "tiny" and summary["counts"]["ok"] == 1
    assert "generate" in done.stderr


def test_a_currency_without_a_price_is_refused_before_anything_is_written(tiny_bundle, rooms, tmp_path):
    photo = tmp_path / "room.jpg"
    shutil.copy(rooms / "living-room-02-small.jpg", photo)
    result = transform(str(photo), *fast(tiny_bundle, tmp_path / "out", "--currency", "GBP"))
    assert result.exit_code == 2
    assert "--currency GBP needs --gpu-price" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
