"""Room sets and style references through `modomo transform`, on the tiny models (their IP-Adapter is random, in
the published layout, loaded through diffusers' `load_ip_adapter`).

A set's first photo (its anchor) renders first; its written result is the reference of the set's other photos.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.inputs.references import digest_of
from pipeline.options import TransformOptions
from pipeline.run.plan import build_plan

BASE = ["--size", "128", "--steps", "2", "--retries", "0", "--json"]


def photo(rooms: Path, target: Path, turn: int = 0) -> Path:
    """A room photo, mirrored and rotated by `turn` so each file is its own picture."""
    image = Image.open(rooms / "living-room-02-small.jpg").convert("RGB")
    image = image.rotate(turn * 7) if turn % 2 == 0 else image.transpose(Image.FLIP_LEFT_RIGHT).rotate(turn * 7)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, quality=92)
    return target


def a_set(rooms: Path, folder: Path, rooms_count: int = 1, photos: int = 3) -> Path:
    """`folder/room-K/N.jpg`: one folder per room."""
    for k in range(rooms_count):
        for n in range(1, photos + 1):
            photo(rooms, folder / f"room-{k}" / f"{n}.jpg", turn=k * 10 + n)
    return folder


def transform(bundle, *args, code: int = 0):
    result = CliRunner().invoke(app, ["transform", *map(str, args), "--models", str(bundle), *BASE])
    assert result.exit_code == code, result.output
    return result


def journal(out: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in (out / ".modomo" / "journal.jsonl").read_text().splitlines()]
    return {entry["key"]: entry for entry in lines}


def spy_references(monkeypatch) -> list[list[str | None]]:
    """Every sampler call's references (their digests, None for an image without one), in call order."""
    from pipeline.stages.sampling import Sampler

    calls: list[list[str | None]] = []
    real = Sampler.reference_batch

    def spy(self, references, count, guided, dtype):
        calls.append([r.digest if r is not None else None for r in references or [None] * count])
        return real(self, references, count, guided, dtype)

    monkeypatch.setattr(Sampler, "reference_batch", spy)
    return calls


def test_the_anchor_renders_first_and_the_set_follows_its_result(tiny_bundle, rooms, tmp_path, monkeypatch):
    inputs = a_set(rooms, tmp_path / "in")
    hero = photo(rooms, tmp_path / "hero.jpg", turn=5)
    calls = spy_references(monkeypatch)
    transform(tiny_bundle, inputs, "--sets-by", "parent", "--style-ref", hero, "--out", tmp_path / "out")
    done = journal(tmp_path / "out")
    anchor = done["room-0/1.jpg"]
    result = (tmp_path / "out" / anchor["outputs"]["result"]).read_bytes()
    assert anchor["anchor"] is True and anchor["set"] == done["room-0/2.jpg"]["set"]
    assert anchor["reference"]["digest"] == digest_of(hero.read_bytes())  # the run's reference: for the anchor
    assert anchor["digest"] == digest_of(result)
    for key in ("room-0/2.jpg", "room-0/3.jpg"):
        assert done[key]["reference"]["digest"] == digest_of(result)  # the others: the anchor's written result
        assert done[key]["seed"] == anchor["seed"]  # one seed for the set
    # What the sampler was given: the hero for the first call (the anchor), the anchor's result after it.
    assert calls[0] == [digest_of(hero.read_bytes())]
    assert {d for call in calls[1:] for d in call} == {digest_of(result)}


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def set_manifest(path: Path, rows: list[str], extra: str = "") -> Path:
    """A manifest of one room set, 'lounge', in the rows' order (the first is its anchor)."""
    path.write_text(f"input,set{extra}\n" + "".join(f"{row},lounge\n" for row in rows))
    return path


def test_the_set_follows_its_anchor(tiny_bundle, rooms, tmp_path):
    """Two runs of one set (one name, so one seed) that differ only in the anchor photo: the other photos' results
    differ too. Rendered with the run's reference instead of the anchor's result, they would be the same."""
    hero = photo(rooms, tmp_path / "hero.jpg", turn=5)
    members = [str(photo(rooms, tmp_path / "in" / f"{n}.jpg", turn=n)) for n in (2, 3)]
    for name, turn in (("a", 1), ("b", 9)):
        anchor = photo(rooms, tmp_path / name / "anchor.jpg", turn=turn)
        manifest = set_manifest(tmp_path / f"{name}.csv", [str(anchor), *members])
        transform(tiny_bundle, "--manifest", manifest, "--style-ref", hero, "--out", tmp_path / f"out-{name}")
    a, b = journal(tmp_path / "out-a"), journal(tmp_path / "out-b")
    for key in ("2.jpg", "3.jpg"):
        assert a[key]["seed"] == b[key]["seed"]
        assert a[key]["reference"]["digest"] != b[key]["reference"]["digest"]
        difference = np.abs(
            pixels(tmp_path / "out-a" / a[key]["outputs"]["result"])
            - pixels(tmp_path / "out-b" / b[key]["outputs"]["result"])
        )
        assert difference.max() > 8


def test_a_member_follows_the_anchor_not_the_run_reference(tiny_bundle, rooms, tmp_path):
    """The same member photo, seed and run reference: rendered in a set it differs from rendered alone."""
    hero = photo(rooms, tmp_path / "hero.jpg", turn=5)
    anchor, member = photo(rooms, tmp_path / "in" / "1.jpg", turn=1), photo(rooms, tmp_path / "in" / "2.jpg", turn=2)
    transform(
        tiny_bundle,
        "--manifest",
        set_manifest(tmp_path / "set.csv", [str(anchor), str(member)]),
        "--style-ref",
        hero,
        "--out",
        tmp_path / "set",
    )
    in_set = journal(tmp_path / "set")["2.jpg"]
    alone = tmp_path / "alone.csv"
    alone.write_text(f"input,seed\n{member},{in_set['seed']}\n")
    transform(tiny_bundle, "--manifest", alone, "--style-ref", hero, "--out", tmp_path / "alone")
    by_itself = journal(tmp_path / "alone")["2.jpg"]
    assert by_itself["seed"] == in_set["seed"]
    assert by_itself["reference"]["digest"] == digest_of(hero.read_bytes())
    difference = np.abs(
        pixels(tmp_path / "set" / in_set["outputs"]["result"])
        - pixels(tmp_path / "alone" / by_itself["outputs"]["result"])
    )
    assert difference.max() > 8


def test_a_changed_anchor_redoes_its_set_and_nothing_else(tiny_bundle, rooms, tmp_path):
    inputs = a_set(rooms, tmp_path / "in", rooms_count=2, photos=2)
    args = (inputs, "--sets-by", "parent", "--out", tmp_path / "out")
    transform(tiny_bundle, *args)
    again = json.loads(transform(tiny_bundle, *args).stdout)
    assert {image["status"] for image in again["images"]} == {"skipped"}
    photo(rooms, inputs / "room-1" / "1.jpg", turn=33)
    third = json.loads(transform(tiny_bundle, *args).stdout)
    status = {image["key"]: image["status"] for image in third["images"]}
    assert status == {"room-0/1.jpg": "skipped", "room-0/2.jpg": "skipped", "room-1/1.jpg": "ok", "room-1/2.jpg": "ok"}


def test_a_set_is_never_split_across_shards(rooms, tmp_path, monkeypatch):
    # Named relative to a fixed folder, so the shards the sets hash to are the same in every session.
    a_set(rooms, tmp_path / "photos", rooms_count=6, photos=3)
    monkeypatch.chdir(tmp_path)
    owners: dict[str, set[int]] = {}
    for index in range(3):
        plan = build_plan(
            TransformOptions(inputs=["photos"], out="out", models="tiny", sets_by="parent", shard=f"{index}/3")
        )
        for item in plan.items:
            owners.setdefault(item.group, set()).add(index)
        assert all(item.group for item in plan.items)
    assert len(owners) == 6
    assert all(len(shards) == 1 for shards in owners.values())
    assert len({next(iter(s)) for s in owners.values()}) > 1  # the sets themselves are spread


def test_a_bad_reference_is_one_line_before_any_model_loads(tiny_bundle, rooms, tmp_path, monkeypatch):
    import pipeline.run.engines.local as local

    monkeypatch.setattr(local, "load_stack", lambda *a, **k: pytest.fail("models loaded"))
    inputs = a_set(rooms, tmp_path / "in", photos=1)
    (tmp_path / "notes.jpg").write_text("not a picture")
    for bad, reason in (
        (tmp_path / "missing.jpg", "no such file"),
        (tmp_path / "notes.jpg", "not a usable image"),
        (tmp_path, "folder"),
    ):
        result = transform(tiny_bundle, inputs, "--style-ref", bad, "--out", tmp_path / "out", code=2)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert str(bad) in result.stderr and reason in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_missing_r2_reference_is_one_line(tiny_bundle, rooms, tmp_path, r2_env, bucket, monkeypatch):
    import pipeline.run.engines.local as local

    monkeypatch.setattr(local, "load_stack", lambda *a, **k: pytest.fail("models loaded"))
    inputs = a_set(rooms, tmp_path / "in", photos=1)
    result = transform(
        tiny_bundle, inputs, "--style-ref", f"r2://{bucket}/refs/hero.jpg", "--out", tmp_path / "o", code=2
    )
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"r2://{bucket}/refs/hero.jpg" in result.stderr and "cannot read" in result.stderr


def test_an_r2_reference_is_read_once_and_recorded(tiny_bundle, rooms, tmp_path, r2_env, bucket, moto_server):
    hero = photo(rooms, tmp_path / "hero.jpg", turn=3)
    moto_server.client().put_object(Bucket=bucket, Key="refs/hero.jpg", Body=hero.read_bytes())
    inputs = a_set(rooms, tmp_path / "in", photos=2)
    transform(tiny_bundle, inputs, "--style-ref", f"r2://{bucket}/refs/hero.jpg", "--out", tmp_path / "out")
    for entry in journal(tmp_path / "out").values():
        assert entry["reference"]["digest"] == digest_of(hero.read_bytes())
        assert (tmp_path / "out" / entry["reference"]["preview"]).is_file()  # a copy the report can show


def test_manifest_style_ref_and_set_columns(tiny_bundle, rooms, tmp_path, monkeypatch):
    hero, other = photo(rooms, tmp_path / "refs" / "hero.jpg", turn=3), photo(rooms, tmp_path / "refs" / "b.jpg", 4)
    for n in range(1, 5):
        photo(rooms, tmp_path / "photos" / f"{n}.jpg", turn=n)
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(
        "input,style_ref,set\n"
        "photos/1.jpg,refs/hero.jpg,\n"
        "photos/2.jpg,refs/b.jpg,lounge\n"
        "photos/3.jpg,,lounge\n"
        "photos/4.jpg,refs/hero.jpg,lounge\n"
        "photos/1.jpg,refs/missing.jpg,\n"
    )
    calls = spy_references(monkeypatch)
    result = transform(tiny_bundle, "--manifest", manifest, "--out", tmp_path / "out", code=3)
    images = {(i["key"], i["status"]): i for i in json.loads(result.stdout)["images"]}
    failed = [i["error"] for (_, status), i in images.items() if status == "failed"]
    assert sorted(failed) == [
        f"manifest line 5: style_ref {tmp_path / 'refs' / 'hero.jpg'}: room set 'lounge' follows its first photo "
        "(line 3), which has another style_ref; leave it empty or repeat the set's own",
        f"manifest line 6: style_ref {tmp_path / 'refs' / 'missing.jpg'}: cannot read: no such file",
    ]
    done = [
        json.loads(line)
        for line in (tmp_path / "out" / ".modomo" / "journal.jsonl").read_text().splitlines()
        if json.loads(line)["status"] == "ok"
    ]
    by_key = {e["key"]: e for e in done}
    assert by_key["photos/1.jpg"]["reference"]["digest"] == digest_of(hero.read_bytes())
    assert by_key["photos/2.jpg"]["reference"]["digest"] == digest_of(other.read_bytes())
    assert by_key["photos/2.jpg"]["anchor"] is True
    assert by_key["photos/3.jpg"]["reference"]["digest"] == by_key["photos/2.jpg"]["digest"]
    assert len({d for call in calls for d in call}) == 3  # hero, b, the lounge anchor's result


def test_style_file_reference_is_relative_to_the_file(tmp_path):
    from styles import load_style

    text = (Path(__file__).resolve().parents[2] / "styles" / "boho.toml").read_text()
    (tmp_path / "looks").mkdir()
    file = tmp_path / "looks" / "collection.toml"
    file.write_text(text.replace('name = "boho"', 'name = "collection"\nstyle_ref = "hero.jpg"\nstyle_ref_scale = 0.8'))
    style = load_style(path=file)
    assert style.style_ref == str(tmp_path / "looks" / "hero.jpg")
    assert style.style_ref_scale == 0.8


def test_a_reference_is_known_by_its_content(tiny_bundle, rooms, tmp_path):
    """The same file named another way is the same reference (nothing redone); new content under the same name is
    another (its results redone)."""
    inputs = a_set(rooms, tmp_path / "in", photos=1)
    hero = photo(rooms, tmp_path / "hero.jpg", turn=5)
    transform(tiny_bundle, inputs, "--style-ref", hero, "--out", tmp_path / "out")
    copy = tmp_path / "elsewhere" / "same.jpg"
    copy.parent.mkdir()
    copy.write_bytes(hero.read_bytes())
    again = json.loads(transform(tiny_bundle, inputs, "--style-ref", copy, "--out", tmp_path / "out").stdout)
    assert {image["status"] for image in again["images"]} == {"skipped"}
    photo(rooms, hero, turn=6)
    third = json.loads(transform(tiny_bundle, inputs, "--style-ref", hero, "--out", tmp_path / "out").stdout)
    assert {image["status"] for image in third["images"]} == {"ok"}


def test_a_room_set_written_to_r2(tiny_bundle, rooms, tmp_path, r2_env, bucket, moto_server):
    """The later photos follow the anchor's result as uploaded: read back from the bucket."""
    inputs = a_set(rooms, tmp_path / "in", photos=2)
    summary = json.loads(transform(tiny_bundle, inputs, "--sets-by", "parent", "--out", f"r2://{bucket}/out/").stdout)
    records = {r["key"]: r for r in summary["images"]}
    anchor, member = records["room-0/1.jpg"], records["room-0/2.jpg"]
    key = anchor["outputs"]["result"].removeprefix(f"r2://{bucket}/")
    uploaded = moto_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert anchor["anchor"] is True and member["set"] == anchor["set"]
    assert member["reference"]["digest"] == digest_of(uploaded)
    assert member["reference"]["preview"] == anchor["outputs"]["thumbnail"]


def test_missing_adapter_weights_are_one_line_with_the_download_command(tiny_bundle, rooms, tmp_path, monkeypatch):
    """A bundle without ip-adapter/, asked for a reference or a room set: refused before models load."""
    import pipeline.run.engines.local as local

    monkeypatch.setattr(local, "load_stack", lambda *a, **k: pytest.fail("models loaded"))
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle, ignore=shutil.ignore_patterns("ip-adapter"))
    inputs = a_set(rooms, tmp_path / "in", photos=2)
    hero = photo(rooms, tmp_path / "hero.jpg", turn=5)
    for extra in (["--style-ref", hero], ["--sets-by", "parent"]):
        result = transform(bundle, inputs, *extra, "--out", tmp_path / "out", code=2)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "IP-Adapter" in result.stderr and "modomo models download" in result.stderr


def test_one_reference_is_encoded_once_for_every_style(tiny_bundle, rooms, tmp_path, monkeypatch):
    """Three photos in two styles, one --style-ref: the image encoder runs once in the whole run."""
    from transformers import CLIPVisionModelWithProjection

    calls = []
    real = CLIPVisionModelWithProjection.forward

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CLIPVisionModelWithProjection, "forward", counted)
    inputs = a_set(rooms, tmp_path / "in", photos=3)
    hero = photo(rooms, tmp_path / "hero.jpg", turn=5)
    summary = json.loads(
        transform(
            tiny_bundle,
            inputs,
            "--style",
            "boho,modern",
            "--style-ref",
            hero,
            "--batch-size",
            "2",
            "--out",
            tmp_path / "out",
        ).stdout
    )
    assert [image["status"] for image in summary["images"]] == ["ok"] * 6
    assert len(calls) == 1


def test_dry_run_names_the_references_and_the_sets(rooms, tmp_path):
    from typer.testing import CliRunner as Runner

    inputs = a_set(rooms, tmp_path / "in", rooms_count=2, photos=2)
    hero = photo(rooms, tmp_path / "hero.jpg", turn=5)
    result = Runner().invoke(
        app,
        [
            "transform",
            str(inputs),
            "--models",
            "tiny",
            "--sets-by",
            "parent",
            "--style-ref",
            str(hero),
            "--out",
            str(tmp_path / "out"),
            "--dry-run",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["references"] == [str(hero)]
    assert list(found["sets"].values()) == [["room-0/1.jpg", "room-0/2.jpg"], ["room-1/1.jpg", "room-1/2.jpg"]]
    assert "room set" in result.stderr and "(anchor)" in result.stderr
