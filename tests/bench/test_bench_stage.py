"""`modomo bench --mode stage` on the tiny models whose scene segmentation knows the test rooms' floor: the
staging's stages timed (a furnished photo emptied first, the region, both passes), and with --compare-diffusers a
baseline whose every pass is diffusers' `StableDiffusionControlNetInpaintPipeline`, one call per image and pass, at
each pass's strength (spied on, not read from a label); --no-second-pass times the first pass alone. No timing is
asserted: timings are the bench's output."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from diffusers import StableDiffusionControlNetInpaintPipeline
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.bench.stage import StageLog, iou, stage_summary
from pipeline.stages.sampling import Sampler

IMAGES, WARMUP = 2, 0  # no warm-up: every timed run's own image count is asserted
PHOTOS = ("living-room-01.jpg", "living-room-02-small.jpg")
DECLUTTER, FIRST, SECOND = 0.6, 1.0, 0.5  # each pass's strength: the declutter's, the staging's two


@pytest.fixture(scope="module")
def photos(rooms, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-stage") / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(rooms / name, folder / name)
    return folder


def bench(models, *extra: str) -> SimpleNamespace:
    """The bench as a user runs it, with spies on what every pass called: (summary, stderr, the inpaint pipeline's
    strengths in call order, the sampler's)."""
    inpaint_calls, sampler_calls = [], []
    real_pipe, real_sampler = StableDiffusionControlNetInpaintPipeline.__call__, Sampler.__call__

    def pipe_spy(self, *args, **kwargs):
        inpaint_calls.append(kwargs["strength"])
        return real_pipe(self, *args, **kwargs)

    def sampler_spy(self, settings, *args, **kwargs):
        sampler_calls.append(settings.strength)
        return real_sampler(self, settings, *args, **kwargs)

    args = ["bench", *extra, "--models", str(models), "--mode", "stage", "--size", "128", "--steps", "2",
            "--dtype", "fp32", "--json"]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StableDiffusionControlNetInpaintPipeline, "__call__", pipe_spy)
        patch.setattr(Sampler, "__call__", sampler_spy)
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return SimpleNamespace(
        summary=json.loads(result.stdout), stderr=result.stderr, inpaint=inpaint_calls, sampler=sampler_calls
    )


@pytest.fixture(scope="module")
def stage_bench(floor_bundle, photos):
    return bench(floor_bundle, str(photos), "--images", str(IMAGES), "--warmup", str(WARMUP), "--compare-diffusers")


def test_a_stage_bench_times_every_stage_of_a_staging(stage_bench):
    summary = stage_bench.summary
    assert summary["counts"]["ok"] == IMAGES and summary["settings"]["styles"] == ["boho"]
    stage = summary["stage"]
    for name in ("scene", "declutter", "region", "edges", "generate", "compose", "second pass"):
        assert stage["stages"][name]["modomo"] >= 0, name
    both = stage["stages"]["generate + second pass"]
    for key in ("modomo", "diffusers"):
        parts = stage["stages"]["generate"][key] + stage["stages"]["second pass"][key]
        assert both[key] == pytest.approx(parts)
    assert both["ratio_diffusers"] == pytest.approx(both["modomo"] / both["diffusers"])
    assert stage["style"] == "boho" and stage["controls"] == ["depth", "lines", "inpaint"]
    assert stage["first_pass_steps"] == 2 and stage["second_pass"] == SECOND and stage["second_pass_steps"] == 1
    # the tiny detector finds furniture everywhere: both photos are emptied first
    assert stage["images"] == IMAGES and stage["emptied_first"] == IMAGES
    assert 0.2 < stage["region"]["min"] <= stage["region"]["max"] < 0.9, stage["region"]
    assert 0 <= stage["added"]["min"] <= stage["added"]["max"] < stage["region"]["min"]
    assert "stage stages, s/image" in stage_bench.stderr and "photos emptied first" in stage_bench.stderr
    assert "generate + second pass" in stage_bench.stderr


def test_every_pass_of_the_baseline_is_diffusers_inpaint_pipeline(stage_bench):
    """Each baseline image (its warm-up, before and after modomo) is emptied first, staged and, where the first pass
    added furniture, drawn again: one call of diffusers' inpaint pipeline per pass, at that pass's strength;
    modomo's sampler ran every pass of modomo's own runs, at the same strengths."""
    summary, calls = stage_bench.summary, Counter(stage_bench.inpaint)
    stage = summary["stage"]
    baseline_images = WARMUP + 2 * IMAGES
    assert calls[DECLUTTER] == baseline_images and calls[FIRST] == baseline_images
    added = IMAGES - stage["nothing_added"]  # per timed run: the second pass runs only where something was added
    assert added >= 1, stage
    assert calls[SECOND] == 2 * added  # the same furniture added in both baseline runs (IoU 1 below)
    assert set(calls) == {DECLUTTER, FIRST, SECOND}
    ours = Counter(stage_bench.sampler)  # batch 1: one sampler call per image and pass
    assert ours == {DECLUTTER: IMAGES, FIRST: IMAGES, SECOND: added}
    assert summary["generator"] == ["pipeline Sampler"]
    assert summary["diffusers"]["generator"] == ["diffusers StableDiffusionControlNetInpaintPipeline"]
    assert summary["diffusers"]["max_pixel_difference"] <= 2  # the same images
    for name in ("diffusers before", "diffusers after"):
        agreed = stage["agreement"][name]
        assert agreed["frames"] and agreed["seeds"] and agreed["emptied"], agreed
        assert agreed["region_iou"]["min"] == 1.0 and agreed["added_iou"]["min"] == 1.0, agreed
    assert "diffusers StableDiffusionControlNetInpaintPipeline" in stage_bench.stderr
    assert "the same seeds, the same photos emptied first; regions IoU 1.000" in stage_bench.stderr


def test_no_second_pass_times_the_first_pass_alone(floor_bundle, photos):
    timed = bench(floor_bundle, str(photos), "--images", "1", "--warmup", "0", "--no-second-pass")
    stage = timed.summary["stage"]
    assert stage["second_pass"] is None and stage["second_pass_steps"] is None
    assert "second pass" not in stage["stages"] and "generate + second pass" not in stage["stages"]
    assert stage["added"] is None
    assert Counter(timed.sampler) == {DECLUTTER: 1, FIRST: 1}  # no third call
    assert timed.summary["settings"]["second_pass"] is None  # its settings (and hash) say it had no second pass
    assert "the first pass alone (--no-second-pass)" in timed.stderr


def test_a_bench_that_finished_no_image_says_why_in_one_line(tiny_bundle, photos):
    """The random tiny scene segmentation finds no floor: nothing is timed, and the bench says so."""
    args = ["bench", str(photos), "--models", str(tiny_bundle), "--mode", "stage", "--size", "128", "--steps", "2",
            "--images", "1", "--warmup", "0"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: bench: none of the 1 timed images finished (the first: no floor to stage on")
    assert last.endswith("nothing was timed")


def staged_frame(key: str, seed: int, rows: int, added: int | None = None, emptied: bool = True):
    region = np.zeros((8, 8), bool)
    region[:rows] = True
    furniture = None
    if added is not None:
        furniture = np.zeros((8, 8), bool)
        furniture[:added, :2] = True
    return SimpleNamespace(item=SimpleNamespace(identity=key), variation=1, seed=seed, region=region, added=furniture,
                           before=object() if emptied else None)  # fmt: skip


def run_log(log: StageLog, name: str, frames: list) -> None:
    event = log.watch(name)
    event("stage", stage="generate", frames=frames)
    event("stage", stage="validate", frames=frames)


def test_the_stage_log_says_how_far_a_baseline_staged_other_frames():
    """A baseline whose region, added furniture, seed or emptying differ from modomo's is told, with the IoU."""
    log = StageLog()
    run_log(log, "modomo", [staged_frame("a", 1, 4, 2), staged_frame("b", 2, 4, 2)])
    run_log(log, "same", [staged_frame("a", 1, 4, 2), staged_frame("b", 2, 4, 2)])
    run_log(log, "other region", [staged_frame("a", 1, 4, 2), staged_frame("b", 2, 2, 2)])
    run_log(log, "other furniture", [staged_frame("a", 1, 4, 4), staged_frame("b", 2, 4, 2)])
    run_log(log, "other seed", [staged_frame("a", 1, 4, 2), staged_frame("b", 3, 4, 2)])
    run_log(log, "not emptied", [staged_frame("a", 1, 4, 2), staged_frame("b", 2, 4, 2, emptied=False)])
    run_log(log, "one short", [staged_frame("a", 1, 4, 2)])
    agreed = log.agreement()
    whole = {"mean": 1.0, "min": 1.0}
    assert agreed["same"] == {"frames": True, "seeds": True, "emptied": True, "region_iou": whole, "added_iou": whole}
    assert agreed["other region"]["region_iou"] == {"mean": 0.75, "min": 0.5}
    assert agreed["other furniture"]["added_iou"]["min"] == 0.5 and agreed["other furniture"]["seeds"]
    assert not agreed["other seed"]["seeds"] and agreed["other seed"]["emptied"]
    assert not agreed["not emptied"]["emptied"] and agreed["not emptied"]["seeds"]
    assert not agreed["one short"]["frames"] and not agreed["one short"]["seeds"]
    summary = {"stages": {}}
    config = SimpleNamespace(style=SimpleNamespace(name="boho", mode="restyle"), generate_settings=lambda s: SETTINGS)
    warned = " ".join(stage_summary(config, summary, log)["warnings"])
    for name in ("other region", "other furniture", "other seed", "not emptied", "one short"):
        assert f"({name}) staged other frames" in warned, name
    assert "(same)" not in warned


SETTINGS = SimpleNamespace(steps=2, controls=("inpaint",), strength=1.0)


def test_iou_of_masks():
    a, b = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    assert iou(a, b) == 1.0  # both empty: they agree
    a[:2], b[1:3] = True, True
    assert iou(a, b) == pytest.approx(1 / 3)
    assert iou(a, None) == 0.0 and iou(a, np.zeros((2, 2), bool)) == 0.0
