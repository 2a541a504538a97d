"""`modomo bench` without a terminal: the plan and an estimate first, a line per timed phase as it ends, and each
ratio against plain diffusers read one way."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from modomo_cli import bench as cli_bench
from modomo_cli import render
from modomo_cli.app import app

PHASE = re.compile(r"^bench: (?P<label>.+)\u2026 (?P<seconds>\d+\.\d) s$")
ONE_WAY = re.compile(r"^vs diffusers  (generate|whole run) (?P<factor>\d+\.\d\d)x (?P<way>faster|slower) than ")


@pytest.fixture(scope="module")
def talked(tiny_bundle):
    """A bench with stdout and stderr not a terminal (CliRunner): its JSON and its stderr lines."""
    args = ["bench", "--models", str(tiny_bundle), "--size", "64", "--synthetic-size", "96x64", "--steps", "1"]
    args += ["--images", "2", "--warmup", "1", "--compare-diffusers", "--dtype", "fp32", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr.splitlines()


def test_the_plan_and_estimate_come_before_the_timed_phases_each_on_its_line_in_order(talked):
    summary, lines = talked
    told = [line for line in lines if line.startswith("bench: ")]
    assert told[0].startswith("bench: plan: modomo on 2 synthetic images after 1 warm-up")
    assert "plain diffusers on the same images before and after it" in told[0]
    assert PHASE.match(told[1]) and PHASE.match(told[1])["label"].startswith("loading models")
    assert told[2].startswith("bench: estimate: ") and "an estimate" in told[2]
    # 2 timed images of the tiny models save far less than a compile takes: auto stays eager, and says why
    assert told[3].startswith("bench: compile: auto -> off: 2 timed images at ~") and "to compile" in told[3]
    phases = [PHASE.match(line)["label"] for line in told[4:]]
    assert phases == [
        "plain diffusers in fp32 (before modomo) warm-up, 1 image",
        "plain diffusers in fp32 (before modomo), 2 images",
        "modomo warm-up, 1 image",
        "modomo, 2 images",
        "plain diffusers in fp32 (after modomo), 2 images",
    ]
    timed = float(PHASE.match(told[7])["seconds"])  # the line's seconds are the run's own, give or take
    assert timed == pytest.approx(summary["seconds"], abs=0.5 + 0.1 * summary["seconds"])


def test_the_estimate_is_the_flops_over_the_measured_peak(talked):
    summary, lines = talked
    guess = summary["estimate"]
    assert [(run["what"], run["images"]) for run in guess["runs"]] == [("modomo", 3), ("plain diffusers in fp32", 5)]
    peak = summary["device"]["measured_peak"]["tflops"]
    assert guess["peak_tflops"] == {"fp32": peak}
    assert guess["seconds"] == pytest.approx(guess["tflop"] / (peak * guess["assumed_share"]))
    modomo, plain = summary["flops"]["per_image_tflop"]["modomo"], summary["flops"]["per_image_tflop"]["diffusers"]
    assert guess["tflop"] == pytest.approx(3 * modomo + 5 * plain)
    assert "8 images" in next(line for line in lines if line.startswith("bench: estimate: "))


def test_each_ratio_line_reads_one_way_and_the_way_the_figures_say(talked):
    summary, lines = talked
    # the generate and whole-run lines ("as fast as" when a ratio rounds to 1.00, as on a busy machine it may)
    ratios = [line for line in lines if line.startswith(("vs diffusers  generate ", "vs diffusers  whole run "))]
    assert len(ratios) == 2
    base = summary["diffusers"]
    for line, time_ratio in zip(ratios, (base["generate_ratio"], 1 / base["speedup_images_per_second"]), strict=True):
        assert_one_way(line, time_ratio)


def assert_one_way(line: str, time_ratio: float) -> None:
    """One direction per line: a factor of at least 1, 'faster' only where modomo took less time."""
    words = [w for w in ("faster", "slower", "as fast as", "the time", "images/s of") if w in line]
    if f"{max(time_ratio, 1 / time_ratio):.2f}" == "1.00":
        assert words == ["as fast as"], line
        return
    match = ONE_WAY.match(line)
    assert match and words == [match["way"]], line
    assert (match["way"] == "faster") == (time_ratio < 1), line
    assert float(match["factor"]) == pytest.approx(max(time_ratio, 1 / time_ratio), abs=0.006)


@pytest.mark.parametrize(("generate", "speedup"), [(0.5, 2.5), (1.6, 0.8), (0.85, 0.9), (1.0004, 1.0)])
def test_ratio_lines_read_one_way_whichever_way_the_figures_go(generate, speedup):
    base = {"generate_ratio": generate, "generate_seconds_per_image": 2.0, "speedup_images_per_second": speedup}
    base |= {"max_pixel_difference": 1, "psnr_db": None, "dtype": "bf16"}
    summary = {"settings": {"fast": None}, "speed": {"dtype": "bf16"}, "stages": {"generate": {"mean": 2 * generate}}}
    lines = render.ratio_lines({**summary, "diffusers": base})
    assert_one_way(lines[0], generate)
    assert_one_way(lines[1], 1 / speedup)
    assert lines[0].startswith("vs diffusers  generate ") and lines[1].startswith("vs diffusers  whole run ")
    assert lines[2] == "vs diffusers  largest pixel difference 1 (plain diffusers in bf16)"


def test_a_warning_ends_the_open_phase_line_first(capsys):
    phases = cli_bench.PhaseLog(True)
    seen = []
    forward = phases.around(lambda event, **data: seen.append(event))
    with phases("modomo, 2 images"):
        forward("stage", stage="generate", frames=[])
        forward("warning", message="slow")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "bench: modomo, 2 images\u2026 " and re.match(r"^bench: modomo, 2 images: \d+\.\d s$", err[1])
    assert seen == ["stage", "warning"]
    with cli_bench.PhaseLog(False)("quiet"):
        pass
    assert capsys.readouterr().err == ""
