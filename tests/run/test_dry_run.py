"""`--dry-run` tells the truth: each variation's name, every local photo decoded as the run would (an unreadable or
truncated one is a problem, exit 3, as the real run fails it), R2 objects known by their headers only, and it says
so. No model loads."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app

BASE = ["--style", "boho", "--size", "64", "--steps", "2", "--retries", "0"]


def dry(bundle: Path, *args) -> tuple[int, dict, str]:
    result = CliRunner().invoke(
        app, ["transform", *map(str, args), "--models", str(bundle), *BASE, "--dry-run", "--json"]
    )
    text = result.stdout
    return result.exit_code, json.loads(text[text.index("{") :]), result.output


def test_dry_run_names_every_variation(tiny_bundle, rooms, tmp_path):
    (tmp_path / "in").mkdir()
    Image.open(rooms / "living-room-02-small.jpg").save(tmp_path / "in" / "x.jpg")
    code, found, _ = dry(tiny_bundle, tmp_path / "in", "--out", tmp_path / "out", "--variations", "3")
    assert code == 0 and found["problems"] == []
    assert found["examples"] == [f"{tmp_path / 'in' / 'x.jpg'} -> x.boho.v1.png ... x.boho.v3.png"]


def test_an_unreadable_or_truncated_photo_is_a_problem_as_the_run_finds_it(tiny_bundle, rooms, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    whole = (rooms / "living-room-02-small.jpg").read_bytes()
    (folder / "good.jpg").write_bytes(whole)
    (folder / "half.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "notes.jpg").write_text("not a picture")
    code, found, output = dry(tiny_bundle, folder, "--out", tmp_path / "out")
    assert code == 3 and "3 local photo(s) decoded in full" in found["checked"]
    assert sorted(p.split(":")[0] for p in found["problems"]) == [str(folder / "half.jpg"), str(folder / "notes.jpg")]
    assert not (tmp_path / "out" / "good.boho.png").exists()  # a dry run writes no result

    run = CliRunner().invoke(
        app, ["transform", str(folder), "--out", str(tmp_path / "out"), "--models", str(tiny_bundle), *BASE, "--json"]
    )
    failed = sorted(image["key"] for image in json.loads(run.stdout)["images"] if image["status"] == "failed")
    assert failed == ["half.jpg", "notes.jpg"]  # the real run fails the same photos


def test_r2_inputs_are_checked_by_their_headers_and_the_dry_run_says_so(tiny_bundle, rooms, moto_server, r2_env):
    client = moto_server.client()
    client.put_object(Bucket=r2_env, Key="in/a.jpg", Body=(rooms / "living-room-02-small.jpg").read_bytes())
    client.put_object(Bucket=r2_env, Key="in/broken.jpg", Body=b"not a picture")
    code, found, output = dry(tiny_bundle, f"r2://{r2_env}/in/", "--out", f"r2://{r2_env}/out/")
    assert code == 0 and found["problems"] == []  # not downloaded, so not known to be broken
    assert found["checked"] == "2 R2 object(s) checked by their headers only, not downloaded"
    assert "checked by their headers only" in " ".join(output.split())


def test_a_plan_without_its_weights_ends_as_the_real_run_does(rooms, tmp_path):
    """sd15 with no weights on this machine: the dry run names them as a problem and exits 1, the real run's code
    (it stops loading before any job), rather than planning a run that cannot start."""
    photo = rooms / "living-room-02-small.jpg"
    args = ["transform", str(photo), "--out", str(tmp_path / "out"), "--models", "sd15", *BASE]
    planned = CliRunner().invoke(app, [*args, "--dry-run", "--json"])
    real = CliRunner().invoke(app, args)
    assert planned.exit_code == real.exit_code == 1
    found = json.loads(planned.stdout[planned.stdout.index("{") :])
    assert found["weights"].startswith("model weights not found for sd15: stable diffusion")
    assert "model weights not found for sd15" in " ".join(real.stderr.split())
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))
