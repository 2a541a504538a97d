"""--variations N: N results per job, one batch with shared controls, each its own seed, done together."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.frames import Frame, Item
from pipeline.inputs.seeds import derive_seed, retry_seed
from pipeline.outputs.names import variation_stem
from pipeline.run.forks import variations_of
from pipeline.stages.sampling import Sampler, distinct
from tests.conftest import restyle
from tests.stages.test_sampling import SETTINGS, SIZE, controls, make_frames


def transform(bundle: Path, inputs, out: Path, *extra) -> tuple[int, dict]:
    result = CliRunner().invoke(
        app,
        [
            "transform",
            *map(str, inputs),
            "--models",
            str(bundle),
            "--out",
            str(out),
            "--size",
            "128",
            "--steps",
            "2",
            "--retries",
            "0",
            "--json",
            *map(str, extra),
        ],
    )
    return result.exit_code, (json.loads(result.stdout) if result.stdout.strip().startswith("{") else result.output)


@pytest.fixture(scope="module")
def photo(tmp_path_factory, rooms) -> Path:
    folder = tmp_path_factory.mktemp("photo")
    shutil.copy(rooms / "living-room-02-small.jpg", folder / "room.jpg")
    return folder / "room.jpg"


def test_variations_of_a_job_share_the_frame_and_own_their_seeds():
    frame = Frame(Item("a.jpg", None, "x"), seed=7, image=Image.new("RGB", (8, 8)), timings={"detect": 1.0})
    jobs = variations_of(frame, 3)
    assert [f.variation for f in jobs] == [1, 2, 3]
    assert jobs[0] is frame and jobs[0].seed == 7  # the first is the job's own result: its seed unchanged
    assert len({f.seed for f in jobs}) == 3 and jobs[1].seed == derive_seed(7, "v2")
    assert all(f.image is frame.image for f in jobs)  # the shared stages' work, not a copy
    assert jobs[1].timings == {} and jobs[0].timings == {"detect": 1.0}  # shared time counted once
    # a retry's seed derives from what the input goes by (its root folder's name and key), the variation, the attempt
    assert retry_seed(7, jobs[0].item, 1, 1) == derive_seed(7, "x/a.jpg#retry1")
    assert retry_seed(7, jobs[2].item, 3, 1) == derive_seed(7, "x/a.jpg#v3#retry1")


def test_variation_names(tiny_bundle):
    class Config:
        class options:
            name_template = None

    item = Item("a.jpg", None, "x")
    assert variation_stem(Config, item, "boho", "a.boho", 1, 1) == "a.boho"
    assert variation_stem(Config, item, "boho", "a.boho", 2, 3) == "a.boho.v2"
    Config.options.name_template, Config.options.room, Config.options.seed = "{stem}-{n}", "bedroom", 0
    assert variation_stem(Config, item, "boho", "a-1", 3, 3) == "a-3"


def test_a_batch_of_variations_equals_rendering_each_alone_and_embeds_each_control_once(tiny_stack, rooms):
    """Two photos' variations in one call (2 + 3): the same latents as five calls, and each ControlNet's
    conditioning embedding computed once per photo (the images are the same objects), not per result."""
    first, second = make_frames(rooms, 2)
    frames = [*variations_of(first, 2), *variations_of(second, 3)]
    assert distinct([f.depth for f in frames]) == ([0, 2], [0, 0, 1, 1, 1])
    assert distinct([f.lines for f in frames]) == ([0, 2], [0, 0, 1, 1, 1])
    sampler = Sampler(tiny_stack.pipe, None, tiny_stack.device)
    embedded = []
    hooks = [
        net.controlnet_cond_embedding.register_forward_hook(lambda m, i, o: embedded.append(o.shape[0]))
        for net in tiny_stack.pipe.controlnet.nets
    ]
    try:
        together = sampler(
            SETTINGS,
            controls(SETTINGS, frames),
            [torch.Generator("cpu").manual_seed(f.seed) for f in frames],
            SIZE[1],
            SIZE[0],
            output_type="latent",
        )
    finally:
        for hook in hooks:
            hook.remove()
    assert embedded == [2, 2, 2]  # per ControlNet (depth, canny, lines), its two distinct images embedded once each
    alone = torch.cat(
        [
            sampler(
                SETTINGS,
                controls(SETTINGS, [f]),
                [torch.Generator("cpu").manual_seed(f.seed)],
                SIZE[1],
                SIZE[0],
                output_type="latent",
            )
            for f in frames
        ]
    )
    assert torch.allclose(together, alone, atol=1e-4), (together - alone).abs().max()
    assert not torch.allclose(together[0], together[1], atol=1e-3)  # each variation its own noise


def test_three_variations_in_one_run(tiny_bundle, photo, tmp_path):
    out = tmp_path / "out"
    summary = restyle(tiny_bundle, photo, out, "--variations", "3", "--style", "boho")
    record = summary["images"][0]
    variations = record["variations"]
    assert [v["n"] for v in sorted(variations, key=lambda v: v["n"])] == [1, 2, 3]
    scores = [v["quality"] for v in variations]
    assert scores == sorted(scores, reverse=True)  # best first
    assert record["seed"] == variations[0]["seed"] and record["quality"] == variations[0]["quality"]
    assert len({v["seed"] for v in variations}) == 3
    names = sorted(p.name for p in out.glob("room*.png"))
    assert names == ["room.boho.v1.png", "room.boho.v2.png", "room.boho.v3.png"]
    pixels = [np.asarray(Image.open(out / name), dtype=np.int16) for name in names]
    assert np.abs(pixels[0] - pixels[1]).max() > 8  # different results, not one result three times
    meta = json.loads((out / "room.boho.v2.json").read_text())
    assert meta["variation"] == {"n": 2, "of": 3} and len(meta["variations"]) == 3
    assert summary["batching"]["generate_calls"] == 1 and summary["batching"]["rendered"] == 3  # one batch
    assert summary["counts"]["ok"] == 1 and summary["counts"]["results"] == 3
    single = restyle(tiny_bundle, photo, tmp_path / "one", "--style", "boho")["images"][0]
    v1 = next(v for v in variations if v["n"] == 1)
    assert v1["seed"] == single["seed"]  # the first variation is the result a one-result run makes
    made = np.asarray(Image.open(tmp_path / "one" / "room.boho.png"), dtype=np.int16)
    assert np.abs(made - pixels[0]).max() <= 2
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert sorted(row["variation"] for row in index) == [1, 2, 3]


def test_resume_counts_a_job_done_only_when_every_variation_is(tiny_bundle, photo, tmp_path, monkeypatch):
    """A job whose third result cannot be written fails whole: nothing in the journal, redone next run."""
    from pipeline.outputs.writer import OutputWriter

    out = tmp_path / "out"
    real = OutputWriter.write_files

    def third_fails(self, frame, run, stem):
        if frame.variation == 3:
            raise OSError(5, "Input/output error")  # EIO: fails this job, not the run
        return real(self, frame, run, stem)

    monkeypatch.setattr(OutputWriter, "write_files", third_fails)
    code, summary = transform(tiny_bundle, [photo], out, "--variations", "3")
    assert code == 3, summary
    assert summary["images"][0]["status"] == "failed" and "cannot write output" in summary["images"][0]["error"]
    monkeypatch.setattr(OutputWriter, "write_files", real)
    code, summary = transform(tiny_bundle, [photo], out, "--variations", "3")
    assert code == 0 and summary["images"][0]["status"] == "ok", summary
    code, summary = transform(tiny_bundle, [photo], out, "--variations", "3")
    assert summary["images"][0]["status"] == "skipped" and len(summary["images"][0]["variations"]) == 3


def test_style_file_and_manifest_rows_set_variations(tiny_bundle, photo, tmp_path):
    from styles import STYLE_DIR

    style = tmp_path / "two.toml"
    style.write_text(
        "variations = 2\n" + (STYLE_DIR / "boho.toml").read_text().replace('name = "boho"', 'name = "two"')
    )
    summary = restyle(tiny_bundle, photo, tmp_path / "a", "--style-file", style)
    assert len(summary["images"][0]["variations"]) == 2
    manifest = tmp_path / "jobs.csv"
    shutil.copy(photo, tmp_path / "room.jpg")
    manifest.write_text("input,variations,name\nroom.jpg,3,three\nroom.jpg,,one\nroom.jpg,x,bad\n")
    code, summary = transform(tiny_bundle, [], tmp_path / "b", "--manifest", manifest)
    assert code == 3
    counts = sorted(len(r["variations"]) for r in summary["images"] if r["status"] == "ok")
    assert counts == [1, 3]
    assert any("manifest line 4: variations 'x'" in (r["error"] or "") for r in summary["images"])
    assert sorted(p.name for p in (tmp_path / "b").glob("*.png")) == [
        "one.png",
        "three.v1.png",
        "three.v2.png",
        "three.v3.png",
    ]
