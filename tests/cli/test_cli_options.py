"""The commands' options as typed objects: one field per option, help grouped in panels, flags shown as flags,
and the `--devices` workers' command line made from the same object."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from modomo_cli.app import app
from modomo_cli.transform import WORKER_OWN, worker_argv
from pipeline import __version__
from pipeline.options import BenchCommandOptions, TransformOptions

COMMANDS = {"transform": TransformOptions, "bench": BenchCommandOptions}
PANELS = {
    "transform": [
        "Inputs and outputs",
        "Style and prompt",
        "Models and device",
        "Quality",
        "For designers",
        "Catalogues",
        "Scale-out",
        "Speed",
        "Cost and display",
    ],
    "bench": ["What to time", "Device and speed", "Against plain diffusers", "Sweep and compare", "Cost and display"],
}


def click_command(name: str):
    return typer.main.get_command(app).commands[name]


def help_text(*args: str, width: int = 100) -> str:
    result = CliRunner().invoke(
        app, [*args, "--help"], env={"COLUMNS": str(width), "NO_COLOR": "1"}, terminal_width=width
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_a_field_with_the_same_default(name):
    command = click_command(name)
    params = {p.name: p for p in command.params}
    options = COMMANDS[name]
    assert [f.name for f in fields(options)] == [p.name for p in command.params]
    blank = options()
    for f in fields(options):
        default = params[f.name].default
        assert getattr(blank, f.name) == (
            None if default in ((), []) and getattr(blank, f.name) is None else default
        ), f.name


def test_bench_defaults_equal_transforms_where_they_mean_the_same():
    transform, bench = TransformOptions(), BenchCommandOptions()
    for name in ("size", "seed", "batch_size", "device", "room", "steps", "gpu_price", "currency"):
        assert getattr(bench, name) == getattr(transform, name), name


@pytest.mark.parametrize("name", COMMANDS)
def test_help_is_grouped_and_shows_flags_as_flags(name):
    text = help_text(name)
    assert "<bool>" not in text
    found = [panel for panel in PANELS[name] if re.search(rf"╭─ {re.escape(panel)} ─", text)]
    assert found == PANELS[name]
    assert re.search(r"--json\s{2,}Print", text), "a flag has no value placeholder"


def test_top_level_help_and_version():
    assert "<bool>" not in help_text()
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"modomo {__version__}"


def test_worker_command_line_is_made_from_the_options_object():
    """Parsed back by the command, the workers' argv gives the same options, less what each worker sets itself."""
    options = TransformOptions(
        inputs=["photos", "more"],
        out="out",
        style="boho,modern",
        size=256,
        devices="cpu,cpu",
        report=True,
        resume=False,
        lora=["a.safetensors:0.5", "b.safetensors"],
        as_json=True,
        events="events.jsonl",
        models="tiny",
        guidance_scale=5.5,
        style_file=[Path("mine.toml"), Path("more.toml")],
        compile="on",  # each worker compiles (or loads) its own packages, as asked
    )
    command = click_command("transform")
    argv = worker_argv(options, command)
    parsed = TransformOptions(**command.make_context("transform", list(argv)).params)
    for f in fields(TransformOptions):
        if f.name in WORKER_OWN:
            assert getattr(parsed, f.name) == getattr(TransformOptions(), f.name), f.name
        elif f.name == "save_controls":
            assert parsed.save_controls  # the report needs each worker's control maps
        else:
            assert getattr(parsed, f.name) == getattr(options, f.name), f.name
