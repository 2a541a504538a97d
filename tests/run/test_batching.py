"""Mixed catalogues keep their batch: frames grouped by working size across a bounded window."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.frames import Frame, Item
from pipeline.run.batching import size_batches

SHAPES = {"landscape": (1200, 900), "portrait": (900, 1200), "square": (1000, 1000)}


def frame(i: int, size: tuple[int, int] | None) -> Frame:
    f = Frame(Item(f"f{i}.jpg", None, "."), seed=i, image=Image.new("RGB", size) if size else None)
    if size is None:
        f.fail("cannot read")
    return f


@given(st.lists(st.sampled_from([(8, 6), (6, 8), (8, 8), None]), max_size=40), st.integers(1, 6))
def test_every_frame_once_in_batches_of_one_size_within_the_window(sizes, batch_size):
    frames = [frame(i, size) for i, size in enumerate(sizes)]
    window = batch_size * 4
    seen = []
    for batch in size_batches(iter(frames), batch_size, window):
        assert 1 <= len(batch) <= batch_size
        assert len({f.image.size if f.ok else None for f in batch}) == 1
        seen += batch
    assert sorted(f.seed for f in seen) == list(range(len(frames)))


def test_the_window_bounds_what_is_held():
    """Sizes that never fill a batch go out when the window is full, oldest fullest first."""
    pulled = []

    def stream():
        for i in range(9):
            pulled.append(i)
            yield frame(i, [(8, 6), (6, 8), (8, 8)][i % 3])

    batches = []
    for batch in size_batches(stream(), batch_size=4, window=6):
        batches.append(([f.seed for f in batch], len(pulled)))
    assert batches[0] == ([0, 3], 6)  # the window filled at the sixth frame: the oldest size went out
    assert sorted(s for b, _ in batches for s in b) == list(range(9))


def test_failed_frames_go_out_at_once():
    frames = [frame(0, (8, 6)), frame(1, None), frame(2, (8, 6))]
    batches = [[f.seed for f in b] for b in size_batches(iter(frames), batch_size=4)]
    assert batches == [[1], [0, 2]]


def interleaved_photos(folder: Path, rooms: Path, count: int) -> Path:
    """Real room crops in three aspect ratios, in interleaved order: landscape, portrait, square, ..."""
    folder.mkdir(parents=True)
    photo = Image.open(rooms / "living-room-02-small.jpg").convert("RGB")
    for i in range(count):
        name = list(SHAPES)[i % 3]
        photo.resize(SHAPES[name]).save(folder / f"{i:02d}-{name}.jpg", quality=90)
    return folder


def test_mixed_aspect_ratios_run_at_the_requested_batch(tiny_bundle, rooms, tmp_path):
    inputs = interleaved_photos(tmp_path / "in", rooms, 12)
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(inputs),
            "--models",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "out"),
            "--size",
            "128",
            "--steps",
            "1",
            "--retries",
            "0",
            "--batch-size",
            "4",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["ok"] == 12
    assert summary["batching"]["batch_size"] == 4
    assert summary["batching"]["mean_batch"] >= 3.5, summary["batching"]
    assert [r["key"] for r in summary["images"]] == sorted(p.name for p in inputs.iterdir())
