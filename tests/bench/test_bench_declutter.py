"""`modomo bench --mode declutter` on the tiny models: the declutter's stages timed, and with --compare-diffusers
a baseline whose generate stage is diffusers' `StableDiffusionControlNetInpaintPipeline`, called once per image on
the same LaMa fills, masks, strength and seeds as modomo's pass (spied on, not read from a label). No timing is
asserted: timings are the bench's output."""

from __future__ import annotations

import hashlib
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from diffusers import StableDiffusionControlNetInpaintPipeline
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.bench.declutter import FrameLog
from pipeline.bench.flops import per_image
from pipeline.bench.setup import transform_options
from pipeline.options import BenchCommandOptions
from pipeline.stages.sampling import Sampler
from pipeline.stages.settings import GenerateSettings, SpeedOptions

IMAGES, WARMUP = 2, 1


def picture_digest(image) -> str:
    image = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


PHOTOS = ("living-room-01.jpg", "living-room-02-small.jpg")


@pytest.fixture(scope="module")
def declutter_bench(tiny_bundle, rooms, tmp_path_factory):
    """The bench in declutter mode against plain diffusers on two room photos, the left half of each kept by a
    --mask-dir mask (the tiny models take out everything else, so the fills differ photo to photo), with spies on
    what each generate stage called: (summary, stderr, what diffusers' inpaint pipeline was called with, what
    modomo's sampler was called with)."""
    root = tmp_path_factory.mktemp("bench-declutter")
    photos, masks = root / "photos", root / "masks"
    photos.mkdir(), masks.mkdir()
    for name in PHOTOS:
        shutil.copy(rooms / name, photos / name)
        keep = np.zeros((96, 128), np.uint8)
        keep[:, :64] = 255
        Image.fromarray(keep).save(masks / name.replace(".jpg", ".png"))
    inpaint_calls, sampler_calls = [], []
    real_pipe, real_sampler = StableDiffusionControlNetInpaintPipeline.__call__, Sampler.__call__

    def pipe_spy(self, *args, **kwargs):
        inpaint_calls.append({"start": picture_digest(kwargs["image"]), "strength": kwargs["strength"]})
        return real_pipe(self, *args, **kwargs)

    def sampler_spy(self, settings, *args, **kwargs):
        starts = kwargs.get("starts") or []
        sampler_calls.append({"starts": [picture_digest(s) for s in starts], "strength": settings.strength})
        return real_sampler(self, settings, *args, **kwargs)

    args = [
        "bench", str(photos), "--models", str(tiny_bundle), "--mode", "declutter", "--mask-dir", str(masks),
        "--images", str(IMAGES), "--warmup", str(WARMUP), "--size", "128", "--steps", "2", "--dtype", "fp32",
        "--compare-diffusers", "--json",
    ]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StableDiffusionControlNetInpaintPipeline, "__call__", pipe_spy)
        patch.setattr(Sampler, "__call__", sampler_spy)
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr, inpaint_calls, sampler_calls


def test_a_declutter_bench_times_the_declutters_stages(declutter_bench):
    summary, stderr, *_ = declutter_bench
    assert summary["counts"]["ok"] == IMAGES
    assert summary["settings"]["styles"] == ["empty"]
    for stage in ("detect", "segment", "depth", "scene", "mask", "fill", "edges", "generate", "compose"):
        assert summary["stages"][stage]["mean"] >= 0, stage  # the scene map is part of the removal mask
    declutter = summary["declutter"]
    assert {"scene", "mask", "fill", "generate", "compose"} <= set(declutter["stages"])
    assert declutter["strength"] == 0.6 and declutter["steps"] == 2 and declutter["denoising_steps"] == 1
    assert declutter["controls"][-1] == "inpaint"
    removal = declutter["removal"]
    assert removal["images"] == IMAGES and removal["empty"] == 0, removal
    assert 0.2 < removal["area_min"] and removal["area_max"] < 0.6, removal  # the right half, less the seam
    assert "less the keep masks of --mask-dir" in removal["source"]
    assert "declutter stages, s/image" in stderr and "removal mask:" in stderr


def test_the_baseline_is_diffusers_inpaint_pipeline_on_the_same_fills_masks_and_seeds(declutter_bench):
    """Every image of the baseline's runs (its warm-up, before and after modomo) is one call of diffusers' inpaint
    pipeline, given the LaMa fill modomo's sampler started from, at the recipe's strength; modomo's sampler ran only
    for modomo's own runs."""
    summary, stderr, inpaint_calls, sampler_calls = declutter_bench
    assert len(inpaint_calls) == WARMUP + 2 * IMAGES  # warm-up, then before and after modomo
    assert len(sampler_calls) == WARMUP + IMAGES  # batch 1: one sampler call per image, warm-up included
    assert {c["strength"] for c in inpaint_calls} == {0.6} == {c["strength"] for c in sampler_calls}
    ours = {start for call in sampler_calls for start in call["starts"]}
    assert len(ours) == IMAGES and {c["start"] for c in inpaint_calls} == ours
    baseline = summary["diffusers"]
    assert baseline["generator"] == ["diffusers StableDiffusionControlNetInpaintPipeline"]
    assert summary["generator"] == ["pipeline Sampler"]
    assert baseline["generate_ratio"] > 0 and len(baseline["runs_generate_seconds_per_image"]) == 2
    assert baseline["max_pixel_difference"] <= 2  # the same images
    declutter = summary["declutter"]
    assert declutter["same_frames"] == {"diffusers before": True, "diffusers after": True}
    assert declutter["frames_checked"] == {"modomo": IMAGES, "diffusers before": IMAGES, "diffusers after": IMAGES}
    row = declutter["stages"]["generate"]
    assert row["ratio_diffusers"] == pytest.approx(baseline["generate_ratio"])
    assert "diffusers StableDiffusionControlNetInpaintPipeline" in stderr and "vs diffusers  generate" in stderr


def test_the_frame_log_tells_a_baseline_given_other_frames():
    """A baseline whose pass got another removal mask (or fill, or seed) than modomo's is told, not trusted."""

    def frame(key: str, seed: int, hole: int) -> SimpleNamespace:
        removal = np.zeros((8, 8), bool)
        removal[:hole] = True
        image = Image.new("RGB", (8, 8), (seed % 255, 0, 0))
        return SimpleNamespace(item=SimpleNamespace(identity=key), variation=1, seed=seed, removal=removal,
                               start=image, image=image)  # fmt: skip

    log = FrameLog()
    log.watch("modomo")("stage", stage="generate", frames=[frame("a", 1, 4), frame("b", 2, 4)])
    log.watch("same")("stage", stage="generate", frames=[frame("a", 1, 4), frame("b", 2, 4)])
    log.watch("other mask")("stage", stage="generate", frames=[frame("a", 1, 4), frame("b", 2, 5)])
    log.watch("other seed")("stage", stage="generate", frames=[frame("a", 1, 4), frame("b", 3, 4)])
    log.watch("one short")("stage", stage="generate", frames=[frame("a", 1, 4)])
    assert log.differences() == {"same": [], "other mask": ["b#1"], "other seed": ["b#1"], "one short": ["b#1"]}


def test_a_declutter_counts_the_shortened_schedule_and_the_start_encodes():
    """FLOPs of a pass from a picture: int(steps x strength) steps; diffusers encodes the picture and the masked
    picture, modomo the picture alone."""
    forward = {
        "unet": 10.0,
        "controlnets": {"lines": 3.0, "inpaint": 3.0},
        "embeddings": {"lines": 1.0, "inpaint": 1.0},
        "vae_decode": 100.0,
        "vae_encode": 50.0,
    }
    settings = GenerateSettings("p", "n", 20, 7.5, (0.6, 1.0), (0.0, 0.0), (1.0, 1.0), controls=("lines", "inpaint"))
    full = per_image(forward, settings, SpeedOptions(False, False, False))
    assert full["diffusers"] == full["modomo"] == 20 * 2 * 16 + 100
    settings = GenerateSettings(
        "p", "n", 20, 7.5, (0.6, 1.0), (0.0, 0.0), (1.0, 1.0), controls=("lines", "inpaint"), strength=0.6
    )
    flops = per_image(forward, settings, SpeedOptions(False, False, False))
    assert flops["diffusers"] == 12 * 2 * 16 + 100 + 2 * 50
    assert flops["modomo"] == 12 * 2 * 16 + 100 + 50


def test_the_bench_restyles_in_boho_unless_asked_to_declutter():
    assert transform_options(BenchCommandOptions()).style == "boho"
    assert transform_options(BenchCommandOptions(style="modern")).style == "modern"
    declutter = transform_options(BenchCommandOptions(mode="Declutter"))
    assert declutter.style is None and declutter.chosen_mode == "declutter"
    assert transform_options(BenchCommandOptions(remove="tv")).chosen_mode == "declutter"


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--mode", "declutter", "--style", "boho"], "--style with --mode declutter"),
        (["--remove", "tv", "--style-ref", "ref.jpg"], "--style-ref with --mode declutter"),
        (["--mode", "declutter", "--sweep", "--sweep-batches", "0"], "--sweep with --mode declutter"),
        (["--mode", "declutter", "--fast"], "--fast with --mode declutter"),
        (["--mode", "declutter", "--compare", "a.json"], "--compare with --mode declutter"),
        (["--mode", "tidy"], "--mode 'tidy': choose one of restyle, declutter"),
        (["--remove", "tv", "--mode", "restyle"], "--remove takes things out"),
        (["--mode", "stage", "--fast"], "--fast with --mode stage"),
        (["--mode", "stage", "--sweep", "--sweep-batches", "0"], "--sweep with --mode stage"),
        (["--no-second-pass"], "--no-second-pass: only a staging (--mode stage) has a second pass, not --mode restyle"),
        (["--mode", "declutter", "--no-second-pass"], "not --mode declutter"),
        (["--mode", "stage", "--steps", "1"], "the staging's second pass at strength 0.5 would run int(1 x 0.5) = 0"),
    ],
)
def test_what_a_declutter_or_staging_bench_cannot_take_is_one_line(tiny_bundle, extra, words):
    result = CliRunner().invoke(app, ["bench", "--models", str(tiny_bundle), "--size", "128", "--images", "1", *extra])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert words in message and len(message.splitlines()) == 1, message
