"""--mode stage's recipe (styles/modes/stage.toml) and a style made into its staging (styles/staging.py): the
style's look with the recipe's controls, furniture words per room type, a style file's own [stage] table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.errors import UsageError
from pipeline.options import TransformOptions
from styles import StyleError, load_style
from styles.choice import chosen_styles
from styles.staging import stage_recipe, staged
from tests.test_styles import boho_with, write


def test_a_staging_is_the_styles_look_with_the_recipes_controls():
    boho = load_style("boho")
    stage = staged(boho)
    assert stage.name == "boho" and stage.mode == "stage" and stage.strength == 1.0
    assert stage.steps == boho.steps and stage.guidance_scale == boho.guidance_scale
    assert stage.canny.scale == 0.0 and stage.depth.scale == 0.5 and stage.inpaint.scale == 1.0
    assert stage.lines is not None and stage.lines_min_length == pytest.approx(0.06)
    assert stage.negative_prompt.startswith(boho.negative_prompt) and "window, door" in stage.negative_prompt
    assert stage.staging.second_pass and stage.staging.second_strength == pytest.approx(0.5)


def test_the_prompt_names_the_furniture_of_the_room_type():
    stage = staged(load_style("boho"))
    bedroom = stage.prompt_for("bedroom")
    assert bedroom.startswith("a bohemian bedroom") and "furnished with a made double bed" in bedroom
    assert "a sofa, two armchairs" in stage.prompt_for("living room")
    default = dict(stage_recipe().staging.furniture)["default"]
    assert stage.prompt_for("greenhouse").endswith("furnished with " + default)
    assert "furnished" not in load_style("boho").prompt_for("bedroom")


def test_a_style_files_stage_table_replaces_the_words_per_room(tmp_path):
    text = boho_with(("min_quality = 0.2", 'min_quality = 0.2\n\n[stage]\nBedroom = "a low futon and floor cushions"'))
    mine = load_style(path=write(tmp_path, text))
    stage = staged(mine)
    assert stage.prompt_for("bedroom").endswith("furnished with a low futon and floor cushions")
    assert "a sofa, two armchairs" in stage.prompt_for("living room")  # the recipe's words for the rest
    assert mine.prompt_for("bedroom") == load_style("boho").prompt_for("bedroom")  # a restyle never reads them


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('[stage]\ngreenhouse = "a bench"', "'stage.greenhouse' is not a room type"),
        ("[stage]\nbedroom = 3", "field 'stage.bedroom' must be the furniture's words"),
        ('[stage]\nbedroom = "a {bed}"', "field 'stage.bedroom' must be the furniture's words"),
        ('stage = "sofa"', "field 'stage' must be a table"),
    ],
)
def test_a_bad_stage_table_names_the_file_and_the_field(tmp_path, table, expected):
    path = write(tmp_path, boho_with(("min_quality = 0.2", "min_quality = 0.2\n" + table)))
    with pytest.raises(StyleError, match=expected) as caught:
        load_style(path=path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_recipe_with_an_unknown_key_or_no_furniture_slot_is_refused(tmp_path):
    recipe = Path(stage_recipe.__wrapped__.__defaults__[0]).read_text(encoding="utf-8")
    typo = write(tmp_path, recipe.replace("[second_pass]", "[second_pas]"), "stage.toml")
    with pytest.raises(StyleError, match="unknown key 'second_pas' .did you mean 'second_pass'"):
        stage_recipe.__wrapped__(typo)
    slot = write(tmp_path, recipe.replace("furnished with {furniture}", "furnished"), "stage2.toml")
    with pytest.raises(StyleError, match="must contain the \\{furniture\\} slot"):
        stage_recipe.__wrapped__(slot)


def test_stage_takes_the_commands_styles_and_refuses_remove():
    options = TransformOptions(style="boho,Modern", mode="stage")
    assert [(s.name, s.mode) for s in chosen_styles(options)] == [("boho", "stage"), ("modern", "stage")]
    with pytest.raises(UsageError, match="--remove takes things out of the room: it goes with --mode declutter"):
        chosen_styles(replace(options, remove="tv"))
