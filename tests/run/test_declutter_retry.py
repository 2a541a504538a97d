"""A declutter that left an object is retried with a new seed and a grown removal mask, filled again, and the better
attempt is kept (pipeline/run/runner.py `retry`, pipeline/run/style_run.py `regrow`).

`modomo transform --mode declutter` end to end on the tiny models, with the run's own detector, segmenter and scene
segmenter replaced by stand-ins (the random ones find random things): on the photo they find a chair and a tv
(--preserve tv keeps it); on each result, what the test's script says. The check that a result left an object is
made with those same stages: the script's chair on a result is an object left."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.frames import DetectedObject
from pipeline.models.ade20k import ade20k_labels

CHAIR = (40, 30, 70, 70)  # x0, y0, x1, y1 at the working size (128 x 96)
TV = (72, 30, 100, 70)  # right of the chair: kept (--preserve tv)
GHOST = (45, 35, 65, 65)  # a chair the result still shows, inside what was taken out


def box_mask(box, shape) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


class Detections:
    """The run's detector: each call takes the next list of (label, box) from the script (the photo's first, then
    one per result checked); nothing once the script is done."""

    def __init__(self, script):
        self.script = list(script)

    def __call__(self, frames):
        found = self.script.pop(0) if self.script else []
        for frame in frames:
            frame.objects = [DetectedObject(label, 0.9, tuple(map(float, box))) for label, box in found]
        return frames


class Outlines:
    """The run's segmenter: each detection's mask is its box."""

    def __call__(self, frames):
        for frame in frames:
            for obj in frame.objects:
                obj.mask = box_mask(tuple(map(int, obj.box)), frame.image.size[::-1])
        return frames


class Walls:
    """The run's scene segmenter: wall above, floor below the middle (the room itself, nothing movable)."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, frames):
        labels = ade20k_labels()
        for frame in frames:
            width, height = frame.image.size
            scene = np.full((height, width), labels.index("wall"), dtype=np.uint8)
            scene[height // 2 :] = labels.index("floor")
            frame.scene = scene
        return frames


@pytest.fixture
def declutter(tiny_bundle, rooms, tmp_path, monkeypatch):
    """Runs a declutter of one real photo with the scripted detector; returns (summary, metadata, fill masks):
    the removal mask's size each time LaMa filled it."""
    from pipeline.stages.fill import Filler

    fills, real_fill = [], Filler.fill

    def fill(self, image, removal):
        fills.append(int(removal.sum()))
        return real_fill(self, image, removal)

    monkeypatch.setattr(Filler, "fill", fill)
    monkeypatch.setattr("pipeline.run.runner.Segmenter", lambda *args, **kwargs: Outlines())
    monkeypatch.setattr("pipeline.stages.architecture.SceneSegmenter", Walls)
    photo = tmp_path / "in" / "room.jpg"
    photo.parent.mkdir()
    shutil.copy(rooms / "living-room-02-small.jpg", photo)

    def run(script, retries: int, min_quality: float):
        monkeypatch.setattr("pipeline.run.runner.Detector", lambda *args, **kwargs: Detections(script))
        result = CliRunner().invoke(
            app,
            ["transform", str(photo), "--models", str(tiny_bundle), "--out", str(tmp_path / "out"), "--size", "128",
             "--steps", "2", "--mode", "declutter", "--preserve", "tv", "--room", "living room", "--retries",
             str(retries), "--min-quality", str(min_quality), "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        (record,) = summary["images"]
        assert record["status"] == "ok", record
        return record, json.loads(open(record["outputs"]["metadata"]).read()), fills

    return run


PHOTO = [("chair", CHAIR), ("tv", TV)]


def test_a_declutter_that_left_an_object_is_retried_with_a_new_seed_and_a_grown_mask(declutter):
    record, meta, fills = declutter([PHOTO, [("chair", GHOST)], []], retries=2, min_quality=0.001)
    attempts = meta["quality"]["attempts"]
    assert len(attempts) >= 2, attempts  # the first left a chair: retried
    first, second = attempts[:2]
    assert first["objects_left"] == 1 and first["score"] == 0.0 and first["clear"] == 0.0  # failed: left a chair
    assert second["objects_left"] == 0 and second["seed"] != first["seed"]
    assert second["removed_area"] > first["removed_area"]  # a grown mask
    assert len(fills) >= 2 and fills[1] > fills[0]  # and LaMa filled the grown mask before generating again
    assert record["fidelity"]["objects_left"] == 0 and record["quality"] == second["score"] > 0  # the better kept
    assert record["seed"] == second["seed"] and meta["declutter"]["removed_area"] == second["removed_area"]
    assert "seam_delta_e" in record["fidelity"] and record["fidelity"]["kept_delta_e"]["max"] < 3


def test_a_worse_retry_is_not_kept(declutter):
    """The retry left two objects where the first attempt left one: both fail at 0, and the first is kept, with its
    own (smaller) mask."""
    record, meta, fills = declutter([PHOTO, [("chair", GHOST)], [("chair", GHOST), ("person", GHOST)]], 1, 0.001)
    first, second = meta["quality"]["attempts"]
    assert first["objects_left"] == 1 and second["objects_left"] == 2 and first["score"] == second["score"] == 0.0
    assert record["seed"] == first["seed"] and record["fidelity"]["objects_left"] == 1  # the first attempt, kept
    assert meta["declutter"]["removed_area"] == first["removed_area"] < second["removed_area"]  # with its own mask


def test_a_low_score_with_nothing_left_is_retried_with_its_own_mask(declutter):
    record, meta, fills = declutter([PHOTO, [], []], retries=1, min_quality=0.99)
    first, second = meta["quality"]["attempts"]
    assert first["objects_left"] == second["objects_left"] == 0 and second["seed"] != first["seed"]
    assert first["removed_area"] == second["removed_area"] and len(fills) == 1  # no growth, no new fill


def test_among_failed_attempts_the_one_that_left_fewer_objects_ranks_higher():
    from pipeline.run.style_run import rank

    def state(score, left=None):
        return {"quality": score, "fidelity": {} if left is None else {"objects_left": left}}

    assert rank(state(0.0, 1)) > rank(state(0.0, 2))  # both failed at 0: fewer left is better
    assert rank(state(0.3, 0)) > rank(state(0.0, 1)) and rank(state(0.5)) > rank(state(0.4))  # else by score


def test_a_retry_keeps_a_declutters_fill_and_restarts_a_staging():
    """Before a retry: a declutter that only scored low starts again from the same LaMa fill; a staging's second pass
    state (its start, its added furniture, its look) is let go, so its first pass starts from the empty room."""
    from PIL import Image

    from pipeline.frames import Frame, Item
    from pipeline.run.style_run import StyleRun

    fill = Image.new("RGB", (8, 8))
    emptied = Frame(Item("a.jpg", None, "."), seed=0, start=fill, removal=np.ones((8, 8), bool))
    staged = Frame(Item("b.jpg", None, "."), seed=0, start=fill, region=np.ones((8, 8), bool))
    staged.added, staged.painted = np.ones((8, 8), bool), Frame(Item("b.jpg", None, "."), seed=0)
    run = StyleRun(None, None, "", 0.0, (("mask", object()),), None, {}, [])
    run.regrow([emptied, staged])
    assert emptied.start is fill
    assert staged.start is None and staged.added is None and staged.painted is None
