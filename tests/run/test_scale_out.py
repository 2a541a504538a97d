"""Scale-out at real size: devices inside a shard, one identity per input under every engine, every option
meaning the same in-process, with --devices and with --engine ray."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.options import TransformOptions
from pipeline.outputs.sinks import LocalSink
from pipeline.run.shards import shard_of
from tests.run.test_time_meaning import check_definition

PHOTO = "living-room-02-small.jpg"
ENGINES = {"modomo": [], "devices": ["--devices", "cpu,cpu"], "ray": ["--engine", "ray", "--actors", "2"]}


def transform(*args) -> tuple[int, dict | None, str]:
    """`modomo transform ...` in a process of its own, as a user runs it; (code, summary, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "modomo_cli", "transform", *map(str, args), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr


def invoke(*args) -> tuple[int, dict | None, str]:
    """`modomo transform ...` in this process (Ray runs in the suite's cluster; a --devices parent's workers are
    processes of their own anyway); (code, summary, stderr)."""
    result = CliRunner().invoke(app, ["transform", *map(str, args), "--json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None, result.stderr


def tiny(bundle: Path, out: Path, *extra) -> list:
    return ["--models", bundle, "--out", out, "--size", "128", "--steps", "2", "--retries", "0", *extra]


def photos(folder: Path, rooms: Path, count: int, flip_every: int = 2) -> Path:
    folder.mkdir(parents=True)
    photo = Image.open(rooms / PHOTO).convert("RGB")
    for i in range(count):
        (photo.transpose(Image.FLIP_LEFT_RIGHT) if i % flip_every else photo).save(folder / f"room-{i:02d}.jpg")
    return folder


def journal(out: Path) -> list[dict]:
    path = out / ".modomo" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_two_pods_with_two_devices_each_cover_every_input_once(tiny_bundle, rooms, tmp_path, monkeypatch):
    # Named relative to a fixed folder: identities, and so the shards they hash to, are the same in every session
    # (under the session's own temporary path, some sessions would hand one pod nothing to do).
    photos(tmp_path / "in", rooms, 8)
    monkeypatch.chdir(tmp_path)
    inputs, out = Path("in"), Path("out")
    seen = []
    for pod in ("0", "1"):  # a Kubernetes Indexed Job of two pods
        monkeypatch.setenv("JOB_COMPLETION_INDEX", pod)
        monkeypatch.setenv("JOB_COMPLETIONS", "2")
        events = tmp_path / f"events-{pod}.jsonl"
        extra = ["--devices", "cpu,cpu", "--steps", "1", "--events", events]
        code, summary, stderr = invoke(inputs, *tiny(tiny_bundle, out, *extra))
        assert code == 0, stderr
        assert [d["shard"] for d in summary["devices"]] == [f"{pod}/4", f"{int(pod) + 2}/4"]
        assert summary["engine"] == "devices" and all(d["returncode"] == 0 for d in summary["devices"])
        done = [r["key"] for r in summary["images"] if r["status"] == "ok"]
        assert done == sorted(done) and {r["status"] for r in summary["images"]} == {"ok"}
        lines = [json.loads(line) for line in events.read_text().splitlines()]  # as the workers finish
        assert sorted(Path(line["input"]).name for line in lines) == done
        assert [line["done"] for line in lines] == list(range(1, len(done) + 1))
        assert summary["batching"]["rendered"] >= len(done) and summary["batching"]["generate_calls"] >= 2
        seen += done
    assert sorted(seen) == [f"room-{i:02d}.jpg" for i in range(8)]  # each once, none twice
    assert sorted(e["key"] for e in journal(tmp_path / out)) == sorted(seen)
    assert len(list((tmp_path / out).glob("*.png"))) == 8
    assert summary["index"]["jobs"] == 8  # the index is rebuilt from the whole output


def two_roots(tmp_path: Path, rooms: Path) -> tuple[Path, Path]:
    """x/room.jpg and y/room.jpg: the same relative file in two roots, two different photos."""
    photo = Image.open(rooms / PHOTO).convert("RGB")
    for name, image in (("x", photo), ("y", photo.transpose(Image.FLIP_LEFT_RIGHT))):
        (tmp_path / name).mkdir()
        image.save(tmp_path / name / "room.jpg")
    return tmp_path / "x", tmp_path / "y"


@pytest.mark.parametrize("engine", list(ENGINES))
def test_two_roots_with_the_same_file_are_two_inputs_resumed_correctly(engine, tiny_bundle, rooms, tmp_path, request):
    if engine == "ray":
        request.getfixturevalue("ray_local")
    x, y = two_roots(tmp_path, rooms)
    out = tmp_path / "out"
    engine_args = ["--engine", "ray", "--actors", "1"] if engine == "ray" else ENGINES[engine]
    code, first, stderr = invoke(x, y, *tiny(tiny_bundle, out, *engine_args))
    assert code == 0, stderr
    assert [(r["id"], r["status"]) for r in first["images"]] == [(f"{x}/room.jpg", "ok"), (f"{y}/room.jpg", "ok")]
    assert len({r["seed"] for r in first["images"]}) == 2
    results = sorted(str(Path(r["outputs"]["result"]).relative_to(out)) for r in first["images"])
    assert results == ["x/room.modern.png", "y/room.modern.png"]
    assert sorted(e["id"] for e in journal(out)) == [f"{x}/room.jpg", f"{y}/room.jpg"]
    code, again, stderr = invoke(x, y, *tiny(tiny_bundle, out, *engine_args))
    assert code == 0, stderr
    assert [r["status"] for r in again["images"]] == ["skipped", "skipped"]
    assert len(journal(out)) == 2


# -- every option under every engine ----------------------------------------------------------------


@pytest.fixture(scope="module")
def option_inputs(tiny_bundle, rooms, tmp_path_factory):
    """Two photos, a keep mask for one, a LoRA and a single-file checkpoint made from the tiny models."""
    from tests.models.test_checkpoint import single_file
    from tests.models.test_lora import make_lora

    folder = tmp_path_factory.mktemp("options")
    inputs = photos(folder / "in", rooms, 2)
    (folder / "masks").mkdir()
    mask = Image.new("L", (600, 450), 0)
    mask.paste(255, (150, 100, 450, 350))
    mask.save(folder / "masks" / "room-01.png")
    checkpoint = single_file(tiny_bundle, folder / "tuned.safetensors", nudge=0.05)
    lora = make_lora(tiny_bundle, folder / "lora")
    hero = folder / "hero.jpg"
    Image.open(rooms / "living-room-01.jpg").convert("RGB").rotate(90, expand=True).save(hero)
    return inputs, folder / "masks", checkpoint, lora, hero


def all_options(bundle, inputs, masks, checkpoint, lora, hero, out, chain) -> list:
    return [
        inputs,
        *tiny(bundle, out),
        "--style",
        "boho,modern",
        "--report",
        "--checkpoint",
        checkpoint,
        "--lora",
        f"{lora}:0.8",
        "--preserve",
        "window",  # not sofa: the tiny SAM2's couch masks cover the photo, and such a job fails before generating
        "--mask-dir",
        masks,
        "--gpu-price",
        "3.6",
        "--sign-cert",
        chain.cert,
        "--sign-key",
        chain.key,
        "--dtype",
        "bf16",
        "--style-ref",
        hero,
        "--style-ref-scale",
        "0.5",
        "--publish-originals",
        "--disclose",
        "Virtually staged · {original}",
        "--disclose-qr",
    ]


@pytest.fixture(scope="module")
def option_runs(tiny_bundle, option_inputs, signing_chain, tmp_path_factory, ray_local):
    """The same command with every option, once per engine."""
    runs = {}
    for engine, extra in ENGINES.items():
        out = tmp_path_factory.mktemp(f"options-{engine}")
        args = [*all_options(tiny_bundle, *option_inputs, out, signing_chain), *extra]
        start = time.perf_counter()
        code, summary, stderr = transform(*args) if engine == "modomo" else invoke(*args)
        assert code == 0, stderr
        runs[engine] = (out, summary, time.perf_counter() - start)
    return runs


def metadata(summary: dict, key: str, style: str) -> dict:
    record = next(r for r in summary["images"] if r["key"] == key and r["style"] == style)
    return json.loads(Path(record["outputs"]["metadata"]).read_text())


def check_report(out, summary, inputs):
    page = (out / "report.html").read_text()
    assert "boho" in page and "modern" in page and "room-01.jpg" in page


def check_checkpoint(out, summary, inputs):
    assert summary["models"]["checkpoint"] == str(inputs[2])
    assert metadata(summary, "room-00.jpg", "boho")["models"]["checkpoint"] == str(inputs[2])


def check_lora(out, summary, inputs):
    loras = metadata(summary, "room-00.jpg", "modern")["settings"]["loras"]
    assert [(Path(entry["file"]).name, entry["scale"]) for entry in loras] == [(inputs[3].name, 0.8)]


def check_preserve(out, summary, inputs):
    meta = metadata(summary, "room-00.jpg", "boho")
    assert meta["preserve"]["labels"] == ["window"] and 0 < meta["preserve"]["kept_area"] < 0.5
    assert "scene" in meta["timings"]  # the scene segmentation ran in every engine


def check_mask_dir(out, summary, inputs):
    assert metadata(summary, "room-01.jpg", "boho")["preserve"]["mask"] == str(inputs[1] / "room-01.png")
    assert metadata(summary, "room-00.jpg", "boho")["preserve"]["mask"] is None


def check_styles(out, summary, inputs):
    assert [(r["key"], r["style"], r["status"]) for r in summary["images"]] == [
        ("room-00.jpg", "boho", "ok"),
        ("room-00.jpg", "modern", "ok"),
        ("room-01.jpg", "boho", "ok"),
        ("room-01.jpg", "modern", "ok"),
    ]


def check_cost(out, summary, inputs):
    held = {"modomo": 1, "devices": 2, "ray": 2}[summary["engine"]]
    cost = summary["cost"]
    assert cost["price_per_hour"] == pytest.approx(3.6 * held)
    assert cost["total"] == pytest.approx(3.6 * held * summary["seconds"] / 3600)


def check_signing(out, summary, inputs):
    import c2pa

    for record in summary["images"]:
        for kind, mime in (("result", "image/png"), ("thumbnail", "image/jpeg")):
            with c2pa.Reader(mime, io.BytesIO(Path(record["outputs"][kind]).read_bytes())) as reader:
                assert reader.get_validation_state() == "Valid", record["outputs"][kind]
                title = reader.get_active_manifest()["ingredients"][0]["title"]
                assert title == f"originals/{Path(record['key']).stem}.png"  # the published original


def check_dtype(out, summary, inputs):
    for record in summary["images"]:
        assert json.loads(Path(record["outputs"]["metadata"]).read_text())["settings"]["dtype"] == "bf16"


def check_style_ref(out, summary, inputs):
    from pipeline.inputs.references import digest_of

    digest = digest_of(inputs[4].read_bytes())
    for record in summary["images"]:
        meta = json.loads(Path(record["outputs"]["metadata"]).read_text())
        assert meta["reference"]["digest"] == meta["settings"]["style_ref"]["digest"] == digest
        assert meta["settings"]["style_ref"]["scale"] == 0.5


def check_originals(out, summary, inputs):
    """Each photo published once, without EXIF; the label's QR code and the index name it."""
    import cv2

    assert sorted(p.name for p in (out / "originals").iterdir()) == ["room-00.png", "room-01.png"]
    for record in summary["images"]:
        name = f"originals/{Path(record['key']).stem}.png"
        assert Path(record["outputs"]["original"]).read_bytes() == (out / name).read_bytes()
        assert not Image.open(out / name).getexif()
        picture = cv2.imread(record["outputs"]["thumbnail"])
        assert cv2.QRCodeDetector().detectAndDecode(picture)[0] == name
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert {row["original"] for row in rows} == {"originals/room-00.png", "originals/room-01.png"}


def check_compile(out, summary, inputs):
    """--compile auto (the default) in every process: each shape's first batch timed eager, none repaid a compile
    (tiny models), and the workers' or actors' reports summed into one."""
    made = summary["compile"]
    assert made["choice"] == "auto" and made["packages"] == {"compiled": 0, "loaded": 0}
    assert made["shapes"] and all(shape["decision"] == "eager" for shape in made["shapes"].values())
    assert sum(shape["images"] for shape in made["shapes"].values()) >= 4  # 2 photos x 2 styles, retries more


OPTION_CHECKS = {
    "--publish-originals": check_originals,
    "--style-ref": check_style_ref,
    "--dtype": check_dtype,
    "--report": check_report,
    "--checkpoint": check_checkpoint,
    "--lora": check_lora,
    "--preserve": check_preserve,
    "--mask-dir": check_mask_dir,
    "several styles": check_styles,
    "price and cost": check_cost,
    "--sign-cert": check_signing,
    "--compile": check_compile,
}


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("option", list(OPTION_CHECKS))
def test_option_means_the_same_under_every_engine(option_runs, option_inputs, option, engine):
    out, summary, _ = option_runs[engine]
    OPTION_CHECKS[option](out, summary, option_inputs)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_time_means_the_same_under_every_engine(option_runs, engine):
    """`seconds` is the processing after the models loaded, the load apart; images per minute and the cost follow
    (tests/run/test_time_meaning.py's definition; in-process it is also checked without a process start)."""
    _, summary, wall = option_runs[engine]
    check_definition(summary, wall, {"modomo": 1, "devices": 2, "ray": 2}[engine], price=3.6)


@pytest.mark.parametrize("engine", ["devices", "ray"])
def test_every_engine_makes_the_same_images(option_runs, engine):
    _, ours, _ = option_runs["modomo"]
    _, theirs, _ = option_runs[engine]
    for a, b in zip(ours["images"], theirs["images"], strict=True):
        assert (a["key"], a["style"], a["seed"]) == (b["key"], b["style"], b["seed"])
        x = np.asarray(Image.open(a["outputs"]["result"]), dtype=np.int16)
        y = np.asarray(Image.open(b["outputs"]["result"]), dtype=np.int16)
        assert np.abs(x - y).max() <= 2


# -- devices: dead workers and Ctrl-C ---------------------------------------------------------------


def test_dead_workers_images_are_ok_only_for_this_runs_settings_and_input_version(tiny_bundle, rooms, tmp_path):
    from pipeline.run.engines.devices import Worker, merge_records
    from pipeline.run.plan import build_plan
    from pipeline.run.shards import Shard

    inputs, out = photos(tmp_path / "in", rooms, 3), tmp_path / "out"
    plan = build_plan(
        TransformOptions(inputs=[str(inputs)], out=str(out), style="boho", models=str(tiny_bundle), size=128, steps=2)
    )
    digest = plan.result_hashes()["boho"]
    items = {item.key: item for item in plan.items}
    lines = [
        {"id": items["room-00.jpg"].identity, "settings": digest, "version": items["room-00.jpg"].version},
        {"id": items["room-01.jpg"].identity, "settings": "other-settings", "version": items["room-01.jpg"].version},
        {"id": items["room-02.jpg"].identity, "settings": digest, "version": "an-older-version"},
    ]
    for line in lines:
        LocalSink(out).append(".modomo/journal.jsonl", json.dumps({**line, "key": "k", "outputs": {}}))
    dead = Worker("cpu", Shard(0, 1), returncode=-9)
    status = {r.key: (r.status, r.error) for r in merge_records([dead], plan)}
    assert status["room-00.jpg"] == ("ok", None)
    assert status["room-01.jpg"][0] == status["room-02.jpg"][0] == "failed"
    assert "killed (SIGKILL)" in status["room-01.jpg"][1]


def test_ctrl_c_under_devices_reaches_every_worker_and_keeps_the_journal(tiny_bundle, rooms, tmp_path):
    # 12 photos a worker, two at a time; the signal goes once both have written a result (shard_of: which worker
    # a photo is), so it finds both at work: neither still starting up, neither done with its share
    inputs, out = photos(tmp_path / "in", rooms, 24), tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "modomo_cli",
        "transform",
        str(inputs),
        *map(str, tiny(tiny_bundle, out)),
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--devices",
        "cpu,cpu",
        "--json",
    ]
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len({shard_of(f"in/{e['key']}", 2) for e in journal(out)}) < 2:
        time.sleep(0.1)
    workers = psutil.Process(parent.pid).children()
    assert len(workers) == 2 and len({shard_of(f"in/{e['key']}", 2) for e in journal(out)}) == 2
    parent.send_signal(signal.SIGINT)
    stdout, stderr = parent.communicate(timeout=300)
    assert parent.returncode == 130, stderr
    summary = json.loads(stdout)
    assert summary["stopped"] == "interrupted"
    assert all(d["returncode"] == 130 for d in summary["devices"]), summary["devices"]
    done = journal(out)
    assert all((out / e["outputs"]["result"]).exists() and (out / e["outputs"]["metadata"]).exists() for e in done)
    assert not list((out / ".modomo" / "tmp").glob("*.tmp"))
    assert 0 < len(done) < 24
    # what a rerun would take up: the journal's every line done, the rest to do (a signalled run's rerun rendering
    # the rest: tests/run/test_reliability.py)
    code, rerun, stderr = invoke(inputs, *tiny(tiny_bundle, out, "--steps", "3", "--dry-run"))
    assert code == 0, stderr
    assert (rerun["done"], rerun["to_do"]) == (len(done), 24 - len(done))


@pytest.mark.parametrize(
    "extra",
    [
        ["--fail-fast", "--devices", "cpu,cpu"],
        ["--fail-fast", "--engine", "ray"],
        ["--device", "cpu", "--engine", "ray"],
        ["--device", "cpu", "--devices", "cpu,cpu"],
        ["--devices", "cpu", "--engine", "ray"],
        ["--actors", "2"],
        ["--engine", "spark"],
    ],
    ids=lambda extra: " ".join(extra),
)
def test_options_an_engine_cannot_honour_are_one_line_usage_errors(tiny_bundle, rooms, tmp_path, extra):
    result = CliRunner().invoke(
        app, ["transform", str(rooms / PHOTO), "--models", str(tiny_bundle), "--out", str(tmp_path / "out"), *extra]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
