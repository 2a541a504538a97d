"""Small options of `modomo transform`: several style files, style names and --format in any case, and style
files or --name templates that are refused with one line before any model loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modomo_cli.app import app
from modomo_cli.transform import worker_argv
from pipeline.options import TransformOptions
from styles import STYLE_DIR

BOHO = (STYLE_DIR / "boho.toml").read_text(encoding="utf-8")


def style_file(folder: Path, name: str, *edits: tuple[str, str]) -> Path:
    """A copy of boho named `name`, with each (old, new) edit made exactly once, saved as `name`.toml."""
    text = BOHO.replace('name = "boho"', f'name = "{name}"')
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def photo(rooms, tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(rooms / "living-room-02-small.jpg", folder / "room.jpg")
    return folder


@pytest.fixture
def no_models(monkeypatch):
    """Fail at once if a command loads models: everything here is decided before."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("pipeline.run.engines.local.load_stack", refuse)


@pytest.fixture
def planned(monkeypatch, no_models) -> list:
    """The plans `modomo transform` would run, recorded in place of running them."""
    plans: list = []
    monkeypatch.setattr("modomo_cli.transform.execute", lambda plan, *args, **kwargs: plans.append(plan))
    return plans


def transform(photo: Path, out: Path, *args) -> object:
    return CliRunner().invoke(
        app, ["transform", str(photo), "--models", "tiny", "--out", str(out), "--room", "bedroom", *map(str, args)]
    )


def plan_of(planned: list, photo: Path, tmp_path: Path, *args):
    result = transform(photo, tmp_path / "out", *args)
    assert result.exit_code == 0, result.output
    assert len(planned) == 1
    return planned[0]


def refusal(photo: Path, tmp_path: Path, *args) -> str:
    """The one stderr line of a usage error (exit 2)."""
    result = transform(photo, tmp_path / "out", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unknown_key_in_a_style_file_names_the_file_key_and_nearest(photo, tmp_path, no_models):
    path = style_file(tmp_path, "typo", ("steps = 20", "stepz = 30"))
    line = refusal(photo, tmp_path, "--style-file", path)
    assert "typo.toml: unknown key 'stepz' (did you mean 'steps'?)" in line


def test_every_style_file_is_rendered_beside_the_built_ins(photo, tmp_path, planned):
    a, b = style_file(tmp_path, "mine-a"), style_file(tmp_path, "mine-b")
    plan = plan_of(planned, photo, tmp_path, "--style-file", a, "--style-file", b)
    assert [s.name for s in plan.config.styles] == ["mine-a", "mine-b"]  # no default modern beside them
    planned.clear()
    plan = plan_of(planned, photo, tmp_path, "--style", "boho,modern", "--style-file", a)
    assert [s.name for s in plan.config.styles] == ["boho", "modern", "mine-a"]


def test_without_style_options_the_style_is_modern(photo, tmp_path, planned):
    assert [s.name for s in plan_of(planned, photo, tmp_path).config.styles] == ["modern"]


@pytest.mark.parametrize("name", ["boho", "Boho"])
def test_a_style_given_twice_across_style_and_style_file_is_refused(photo, tmp_path, no_models, name):
    path = style_file(tmp_path, name)
    line = refusal(photo, tmp_path, "--style", "boho", "--style-file", path)
    assert "style 'boho' is named twice" in line and str(path) in line


def test_a_style_file_named_in_style_too_says_to_leave_it_out(photo, tmp_path, no_models):
    path = style_file(tmp_path, "coastal")
    line = refusal(photo, tmp_path, "--style", "boho,coastal", "--style-file", path)
    assert "--style 'coastal' is not a built-in style" in line and str(path) in line


def test_workers_get_every_style_file_and_no_default_style(tmp_path):
    from typer.main import get_command

    files = [tmp_path / "a.toml", tmp_path / "b.toml"]
    command = get_command(app).commands["transform"]
    argv = worker_argv(TransformOptions(inputs=["in"], style_file=files), command)
    parsed = TransformOptions(**command.make_context("transform", argv).params)
    assert parsed.style is None and parsed.style_file == files


@pytest.mark.parametrize(
    ("given", "meant"), [("JPG", "jpeg"), ("Jpeg", "jpeg"), ("jpg", "jpeg"), ("PNG", "png"), ("WebP", "webp")]
)
def test_format_in_any_case_and_jpg(photo, tmp_path, planned, given, meant):
    assert plan_of(planned, photo, tmp_path, "--format", given).config.options.format == meant


def test_an_unknown_format_is_still_refused(photo, tmp_path, no_models):
    assert "--format 'gif': choose one of png, jpeg, webp" in refusal(photo, tmp_path, "--format", "gif")


def test_style_names_in_any_case(photo, tmp_path, planned):
    plan = plan_of(planned, photo, tmp_path, "--style", "Boho,SCANDINAVIAN")
    assert [s.name for s in plan.config.styles] == ["boho", "scandinavian"]


def test_the_same_style_in_two_cases_is_named_twice(photo, tmp_path, no_models):
    assert "style 'boho' is named twice" in refusal(photo, tmp_path, "--style", "boho,Boho")


@pytest.mark.parametrize("template", ["{stem}.png", "{style}/{stem}.JPG", "{stem}.webp"])
def test_a_name_template_ending_in_an_image_extension_is_refused(photo, tmp_path, no_models, template):
    line = refusal(photo, tmp_path, "--name", template)
    extension = template[template.rindex(".") :]
    assert f"--name {template!r}" in line and repr(extension) in line and "--format" in line
    assert not (tmp_path / "out").exists()  # refused before the output is made


def test_a_run_with_two_style_files_and_jpg_writes_both(tiny_bundle, photo, tmp_path):
    a, b = style_file(tmp_path, "mine-a"), style_file(tmp_path, "mine-b")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(photo),
            "--models",
            str(tiny_bundle),
            "--out",
            str(out),
            "--size",
            "128",
            "--steps",
            "1",
            "--retries",
            "0",
            "--room",
            "bedroom",
            "--style-file",
            str(a),
            "--style-file",
            str(b),
            "--format",
            "JPG",
            "--name",
            "{stem}-{style}",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [(r["style"], r["status"]) for r in summary["images"]] == [("mine-a", "ok"), ("mine-b", "ok")]
    assert (out / "room-mine-a.jpg").is_file() and (out / "room-mine-b.jpg").is_file()


def test_compile_takes_auto_on_or_off_and_on_needs_a_compiler(photo, tmp_path, no_models, monkeypatch):
    line = refusal(photo, tmp_path, "--compile", "maybe")
    assert "--compile 'maybe': choose one of auto, on, off" in line
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-compilers-here"))
    line = refusal(photo, tmp_path, "--compile", "on", "--device", "cpu")
    assert line.endswith("--compile on: no C++ compiler here (g++, clang++, or $CXX) to build the packages with")
