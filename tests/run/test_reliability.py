"""Batch reliability: resume, interrupts (real signals), hostile inputs, out-of-memory, output trouble, fail-fast."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.frames import Frame, Item
from pipeline.stages.generate import GenerateSettings, Generator

PHOTO = "living-room-02-small.jpg"


def transform(*args):
    return CliRunner().invoke(app, ["transform", *map(str, args)])


def fast(bundle: Path, out: Path, *extra) -> list:
    return ["--models", bundle, "--out", out, "--size", "128", "--steps", "1", "--json", *extra]


def photos(folder: Path, rooms: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        shutil.copy(rooms / PHOTO, folder / f"room-{i:02d}.jpg")
    return folder


def journal_lines(out: Path) -> list[dict]:
    path = out / ".modomo" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_consistent(out: Path) -> None:
    """Every journaled input has all its outputs, and no temporary file is left anywhere."""
    for entry in journal_lines(out):
        for path in entry["outputs"].values():
            assert (out / path).is_file(), path  # relative to the output: it can move
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


# -- resume ----------------------------------------------------------------------------------------


def test_rerun_skips_done_inputs_and_overwrite_redoes_them(tiny_bundle, rooms, tmp_path):
    inputs, out = photos(tmp_path / "in", rooms, 3), tmp_path / "out"
    first = transform(inputs, *fast(tiny_bundle, out))
    assert first.exit_code == 0, first.output
    assert len(journal_lines(out)) == 3
    result_file = out / "room-00.modern.png"
    stamp = result_file.stat().st_mtime_ns

    again = transform(inputs, *fast(tiny_bundle, out))
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert [r["status"] for r in summary["images"]] == ["skipped"] * 3
    assert summary["counts"] == {"ok": 0, "failed": 0, "skipped": 3, "results": 0}
    assert all(r["outputs"]["result"].endswith(".modern.png") for r in summary["images"])
    assert result_file.stat().st_mtime_ns == stamp  # nothing redone

    redo = transform(inputs, *fast(tiny_bundle, out, "--overwrite"))
    assert [r["status"] for r in json.loads(redo.stdout)["images"]] == ["ok"] * 3
    assert_consistent(out)


def test_changed_settings_or_changed_input_are_redone(tiny_bundle, rooms, tmp_path):
    inputs, out = photos(tmp_path / "in", rooms, 2), tmp_path / "out"
    assert transform(inputs, *fast(tiny_bundle, out)).exit_code == 0
    other_steps = transform(inputs, *fast(tiny_bundle, out, "--steps", "2"))
    assert [r["status"] for r in json.loads(other_steps.stdout)["images"]] == ["ok", "ok"]
    Image.open(rooms / PHOTO).transpose(Image.FLIP_LEFT_RIGHT).save(inputs / "room-01.jpg")
    changed = transform(inputs, *fast(tiny_bundle, out, "--steps", "2"))
    assert [r["status"] for r in json.loads(changed.stdout)["images"]] == ["skipped", "ok"]
    no_resume = transform(inputs, *fast(tiny_bundle, out, "--steps", "2", "--no-resume"))
    assert [r["status"] for r in json.loads(no_resume.stdout)["images"]] == ["ok", "ok"]


def test_torn_journal_line_is_ignored(tiny_bundle, rooms, tmp_path):
    inputs, out = photos(tmp_path / "in", rooms, 2), tmp_path / "out"
    assert transform(inputs, *fast(tiny_bundle, out)).exit_code == 0
    with (out / ".modomo" / "journal.jsonl").open("a") as handle:
        handle.write('{"key": "room-01.jpg", "sett')  # a crash mid-line
    again = transform(inputs, *fast(tiny_bundle, out))
    assert again.exit_code == 0 and json.loads(again.stdout)["counts"]["skipped"] == 2


def test_r2_journal_resumes(tiny_bundle, rooms, moto_server, r2_env):
    client = moto_server.client()
    for i in range(2):
        client.put_object(Bucket=r2_env, Key=f"in/r{i}.jpg", Body=(rooms / PHOTO).read_bytes())
    args = [
        f"r2://{r2_env}/in/",
        "--models",
        tiny_bundle,
        "--out",
        f"r2://{r2_env}/out/",
        "--size",
        "128",
        "--steps",
        "1",
        "--json",
    ]
    assert transform(*args).exit_code == 0
    again = transform(*args)
    assert again.exit_code == 0
    assert json.loads(again.stdout)["counts"] == {"ok": 0, "failed": 0, "skipped": 2, "results": 0}


# -- interrupts: real signals to a real process ---------------------------------------------------------


def start_run(bundle: Path, inputs: Path, out: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "modomo_cli",
        "transform",
        str(inputs),
        "--models",
        str(bundle),
        "--out",
        str(out),
        "--size",
        "256",
        "--steps",
        "4",
        "--json",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_journal(out: Path, process: subprocess.Popen, lines: int = 1, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(journal_lines(out)) < lines:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never finished an image"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_a_rerun_completes(tiny_bundle, rooms, tmp_path, sig):
    inputs, out = photos(tmp_path / "in", rooms, 5), tmp_path / "out"  # one at a time: the signal finds one at work
    process = start_run(tiny_bundle, inputs, out)
    wait_for_journal(out, process)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    summary = json.loads(stdout)
    assert summary["stopped"] == "interrupted" and "Traceback" not in stderr
    done = len(journal_lines(out))
    assert 1 <= done < 5 and summary["counts"]["ok"] == done
    assert_consistent(out)
    if sig == signal.SIGINT:  # the journal either signal leaves is the same: one rerun shows it resumes
        return

    rerun = transform(inputs, *fast(tiny_bundle, out, "--size", "256", "--steps", "4"))
    assert rerun.exit_code == 0, rerun.output
    counts = json.loads(rerun.stdout)["counts"]
    assert counts == {"ok": 5 - done, "failed": 0, "skipped": done, "results": 5 - done}
    assert len(journal_lines(out)) == 5
    assert_consistent(out)


def test_second_signal_stops_at_once(tiny_bundle, rooms, tmp_path):
    inputs, out = photos(tmp_path / "in", rooms, 8), tmp_path / "out"
    process = start_run(tiny_bundle, inputs, out)
    wait_for_journal(out, process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert_consistent(out)


# -- hostile inputs ---------------------------------------------------------------------------------


def hostile_folder(root: Path, rooms: Path) -> dict[str, str]:
    """Every awkward input at once; returns name -> expected outcome (ok, or a word of the reason)."""
    room = Image.open(rooms / PHOTO).convert("RGB")
    root.mkdir()
    (root / "a").mkdir()
    (root / "b").mkdir()
    (root / "empty").mkdir()
    expected = {}

    (root / "zero.jpg").write_bytes(b"")
    expected["zero.jpg"] = "empty"
    (root / "text.jpg").write_text("hello, not a photo")
    expected["text.jpg"] = "not an image"
    data = (rooms / PHOTO).read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    expected["truncated.jpg"] = "truncated"
    Image.new("1", (20000, 20000)).save(root / "bomb.png")
    expected["bomb.png"] = "too large"
    Image.new("RGB", (8, 8), "red").save(root / "tiny.png")
    expected["tiny.png"] = "too small"
    os.symlink(root / "missing.jpg", root / "gone.jpg")
    expected["gone.jpg"] = "cannot read"

    room.resize((1600, 200)).save(root / "panorama.jpg")
    expected["panorama.jpg"] = "ok"
    room.convert("CMYK").save(root / "cmyk.jpg")
    expected["cmyk.jpg"] = "ok"
    grey16 = (np.asarray(room.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(root / "sixteen.png")
    expected["sixteen.png"] = "ok"
    rgba = room.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(root / "alpha.png")
    expected["alpha.png"] = "ok"
    room.convert("P", palette=Image.ADAPTIVE).save(root / "palette.gif")
    expected["palette.gif"] = "ok"
    room.save(root / "photo.webp")
    expected["photo.webp"] = "ok"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    room.save(root / "rotated.jpg", exif=exif)
    expected["rotated.jpg"] = "ok"
    room.save(root / "salon d'été à Zürich.jpg")
    expected["salon d'été à Zürich.jpg"] = "ok"
    room.save(root / "a" / "same.jpg")
    room.save(root / "b" / "same.jpg")
    expected["a/same.jpg"] = expected["b/same.jpg"] = "ok"
    (root / ".DS_Store").write_bytes(b"\0\1binary")
    room.save(root / ".hidden.jpg")
    os.symlink(root, root / "a" / "loop")
    return expected


def test_hostile_inputs_each_get_their_outcome(tiny_bundle, rooms, tmp_path):
    expected = hostile_folder(tmp_path / "in", rooms)
    out = tmp_path / "out"
    result = transform(tmp_path / "in", *fast(tiny_bundle, out))
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    records = {r["key"]: r for r in json.loads(result.stdout)["images"]}
    assert set(records) == set(expected)  # hidden files ignored, the link loop listed nothing twice
    for key, outcome in expected.items():
        record = records[key]
        if outcome == "ok":
            assert record["status"] == "ok", (key, record["error"])
        else:
            assert record["status"] == "failed" and outcome in record["error"], (key, record["error"])
            [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("failed") and key in ln]
            assert outcome in line
    with Image.open(out / "rotated.modern.png") as rotated:
        assert rotated.height > rotated.width  # upright: the landscape photo stored rotated comes out portrait
    with Image.open(out / "panorama.modern.png") as panorama:
        assert panorama.size == (128, 16)
    assert (out / "a" / "same.modern.png").is_file() and (out / "b" / "same.modern.png").is_file()
    assert (out / "salon d'été à Zürich.modern.png").is_file()
    assert_consistent(out)


def test_unreadable_file_fails_alone(tiny_bundle, rooms, tmp_path, monkeypatch):
    inputs = photos(tmp_path / "in", rooms, 2)
    real_read = Item.read

    def read(item):
        if item.key == "room-00.jpg":
            raise PermissionError(13, "Permission denied")
        return real_read(item)

    monkeypatch.setattr(Item, "read", read)
    result = transform(inputs, *fast(tiny_bundle, tmp_path / "out"))
    assert result.exit_code == 3
    records = json.loads(result.stdout)["images"]
    assert records[0]["error"] == "cannot read: Permission denied" and records[1]["status"] == "ok"


def test_folder_without_images_is_a_clear_error(tiny_bundle, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("x")
    (tmp_path / "in" / ".DS_Store").write_bytes(b"x")
    result = transform(tmp_path / "in", "--models", tiny_bundle, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "no images found" in result.stderr and "Traceback" not in result.output


# -- out of memory ----------------------------------------------------------------------------------


def frames(count: int) -> list[Frame]:
    image = Image.new("RGB", (64, 64))
    return [Frame(Item(f"f{i}.jpg", Path(f"f{i}.jpg"), Path(".")), seed=i, image=image) for i in range(count)]


class FakeGPU:
    """Stands in for a card: rejects batches above `fits` with CUDA's own error, until offload frees room."""

    def __init__(self, fits: int, fits_after_offload: int | None = None):
        self.fits, self.after_offload, self.calls = fits, fits_after_offload, []

    def render(self, generator: Generator, group: list[Frame]):
        self.calls.append(len(group))
        limit = self.after_offload if generator.offloaded and self.after_offload is not None else self.fits
        if len(group) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [Image.new("RGB", (64, 64), (f.seed, 0, 0)) for f in group]


def generator_with(gpu: FakeGPU, monkeypatch) -> Generator:
    settings = GenerateSettings("p", "n", 1, 7.5, (1.0, 0.5), (0.0, 0.0), (1.0, 0.6))
    generator = Generator(pipe=None, settings=settings, device="cpu")
    monkeypatch.setattr(generator, "render", lambda group: gpu.render(generator, group))
    return generator


def test_oom_halves_the_batch_and_keeps_every_frame(monkeypatch):
    gpu = FakeGPU(fits=2)
    generator = generator_with(gpu, monkeypatch)
    batch = frames(8)
    generator(batch)
    assert [f.result.getpixel((0, 0))[0] for f in batch] == list(range(8))  # each frame its own image
    assert gpu.calls[:3] == [8, 4, 2] and generator.max_batch == 2
    assert [e["batch"] for e in generator.events] == [8, 4]
    gpu.calls.clear()
    generator(frames(4))  # the next batch starts at the size that fitted
    assert gpu.calls == [2, 2]


def test_oom_at_batch_one_offloads_and_retries(monkeypatch):
    gpu = FakeGPU(fits=0, fits_after_offload=1)
    generator = generator_with(gpu, monkeypatch)
    batch = frames(2)
    generator(batch)
    assert all(f.result is not None for f in batch) and generator.offloaded
    assert generator.events[-1] == {"event": "out_of_memory", "batch": 1, "action": "model cpu offload"}


def test_oom_that_offload_cannot_fix_fails_only_that_batch(monkeypatch):
    generator = generator_with(FakeGPU(fits=0, fits_after_offload=0), monkeypatch)
    with pytest.raises(torch.OutOfMemoryError):
        generator(frames(1))


class CardThatFitsOnlyOffloaded:
    """Stands in for a full card in front of the real tiny UNet: every UNet forward raises CUDA's own
    out-of-memory error until the run has switched to offload; then the real UNet runs."""

    def __init__(self, unet, memory):
        self.forward, self.memory, self.refused = unet.forward, memory, 0

    def __call__(self, *args, **kwargs):
        if not self.memory.offloaded:
            self.refused += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        return self.forward(*args, **kwargs)


def test_offload_after_oom_renders_the_same_images_with_the_real_models(tiny_stack, rooms, monkeypatch):
    from pipeline.stages.offload import MemoryState, ModelPlacer
    from tests.stages.test_sampling import SETTINGS, make_frames

    expected = make_frames(rooms, 2)
    Generator(tiny_stack.pipe, SETTINGS, tiny_stack.device)(expected)
    memory = MemoryState(placer=ModelPlacer(tiny_stack.pipe, tiny_stack.device))
    card = CardThatFitsOnlyOffloaded(tiny_stack.pipe.unet, memory)
    monkeypatch.setattr(tiny_stack.pipe.unet, "forward", card)
    batch = make_frames(rooms, 2)
    Generator(tiny_stack.pipe, SETTINGS, tiny_stack.device, memory=memory)(batch)
    assert [e["action"] for e in memory.events] == ["batch 1", "model cpu offload"] and card.refused == 2
    for frame, reference in zip(batch, expected, strict=True):
        assert np.abs(np.asarray(frame.result, np.int16) - np.asarray(reference.result, np.int16)).max() <= 2
    # each phase brought its models to the device: prompt, denoise, decode per image; encode never (no mask)
    assert memory.placer.moves >= 4 and memory.placer.resident == {"vae"}


def fits_one_image(monkeypatch) -> None:
    """Every render of more than one image fails with CUDA's out-of-memory error."""
    real_render = Generator.render

    def render(self, group):
        if len(group) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real_render(self, group)

    monkeypatch.setattr(Generator, "render", render)


def test_one_out_of_memory_state_for_every_style(tiny_bundle, rooms, tmp_path, monkeypatch):
    """The batch limit one style learns is where the next style starts: one event, not one per style."""
    fits_one_image(monkeypatch)
    result = transform(
        photos(tmp_path / "in", rooms, 2),
        *fast(tiny_bundle, tmp_path / "out", "--batch-size", "2", "--style", "boho,modern", "--retries", "0"),
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["ok"] == 4
    assert [e["action"] for e in summary["oom"]] == ["batch 1"]
    assert summary["batching"] == {"batch_size": 2, "generate_calls": 4, "rendered": 4, "mean_batch": 1.0}


def test_oom_reported_in_the_summary(tiny_bundle, rooms, tmp_path, monkeypatch):
    fits_one_image(monkeypatch)
    result = transform(photos(tmp_path / "in", rooms, 4), *fast(tiny_bundle, tmp_path / "out", "--batch-size", "4"))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["ok"] == 4
    assert [e["action"] for e in summary["oom"]] == ["batch 2", "batch 1"]
    assert "out of memory" in result.stderr


# -- output trouble ---------------------------------------------------------------------------------


def test_disk_full_stops_with_exit_1_and_a_consistent_journal(tiny_bundle, rooms, tmp_path, monkeypatch):
    real_replace, writes = os.replace, []

    def replace(src, dst):
        writes.append(dst)
        if len(writes) > 4:  # room for one input's three files and a bit
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "out"
    result = transform(photos(tmp_path / "in", rooms, 4), *fast(tiny_bundle, out))
    assert result.exit_code == 1, result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and str(out) in errors[0]
    assert "Traceback" not in result.output
    assert len(journal_lines(out)) == 1
    assert_consistent(out)


def test_unwritable_output_fails_before_models_load(tiny_bundle, rooms, tmp_path):
    (tmp_path / "file").write_text("x")
    result = transform(rooms / PHOTO, "--models", tiny_bundle, "--out", tmp_path / "file" / "out")
    assert result.exit_code == 1 and "not writable" in result.stderr and "generate" not in result.stderr


def test_stale_temporary_files_are_swept(tiny_bundle, rooms, tmp_path):
    from pipeline.outputs.sinks import LocalSink

    out = tmp_path / "out"
    LocalSink(out).prepare()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / ".modomo" / "tmp" / f".room.modern.png~{LocalSink(out).owner.split('~')[0]}~{dead.pid}~ab12.tmp"
    stale.write_bytes(b"half")
    assert transform(rooms / PHOTO, *fast(tiny_bundle, out)).exit_code == 0
    assert not stale.exists()


# -- fail fast --------------------------------------------------------------------------------------


def test_fail_fast_stops_at_the_first_failure(tiny_bundle, rooms, tmp_path):
    inputs = photos(tmp_path / "in", rooms, 4)
    (inputs / "room-01.jpg").write_bytes(b"")
    result = transform(inputs, *fast(tiny_bundle, tmp_path / "out", "--fail-fast"))
    assert result.exit_code == 3
    summary = json.loads(result.stdout)
    assert summary["stopped"] == "fail-fast"
    assert [r["key"] for r in summary["images"]] == ["room-00.jpg", "room-01.jpg"]
    assert [r["status"] for r in summary["images"]] == ["ok", "failed"]
