"""--mode stage's recipe (styles/modes/stage.toml) and a style made into its staging: the style's look, the
recipe's controls and second pass, and furniture words per room type (the recipe's, a style's [stage] table over
them)."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from styles.recipe import (
    DEFAULT_ROOM,
    ControlSettings,
    FastSettings,
    Staging,
    Style,
    StyleError,
    control_settings,
    number,
)
from styles.rooms import ROOMS, room_name

STAGE_FILE = Path(__file__).resolve().parent / "modes" / "stage.toml"
OFF = ControlSettings(0.0, 0.0, 1.0)
RECIPE_KEYS = {
    "": ("prompt", "negative_prompt", "controls", "second_pass", "furniture"),
    "controls": ("inpaint", "depth", "lines"),
    "controls.inpaint": ("scale", "start", "end"),
    "controls.depth": ("scale", "start", "end"),
    "controls.lines": ("scale", "start", "end", "min_length"),
    "second_pass": ("enabled", "strength"),
}


@dataclass(frozen=True)
class StageRecipe:
    """styles/modes/stage.toml, read and checked."""

    prompt: str  # added to the style's prompt; holds {furniture}
    negative_prompt: str  # added to the style's negative prompt
    controls: dict[str, ControlSettings]  # inpaint, depth, lines
    min_length: float  # the lines control's shortest segment
    staging: Staging


def known_keys(table: dict, file: Path, where: str = "") -> None:
    """Refuse a key the recipe has no use for, naming the nearest known one (a typo would be silently ignored)."""
    known = RECIPE_KEYS.get(where, ())
    for key, value in table.items():
        field = f"{where}.{key}" if where else key
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise StyleError(f"{file}: unknown key '{field}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        if field in RECIPE_KEYS and isinstance(value, dict):
            known_keys(value, file, field)


def furniture_words(table, file: Path, where: str) -> tuple[tuple[str, str], ...]:
    """A [furniture] or [stage] table: room type (any case or alias) -> words; `default` for the rest."""
    if not isinstance(table, dict):
        raise StyleError(f"{file}: field '{where}' must be a table of room type = \"furniture words\"")
    words = {}
    for key, value in table.items():
        room = DEFAULT_ROOM if key.strip().lower() == DEFAULT_ROOM else room_name(key)
        if room is None or room == "auto":
            raise StyleError(f"{file}: '{where}.{key}' is not a room type; name one of {', '.join(ROOMS)} or default")
        if not isinstance(value, str) or not value.strip() or "{" in value or "}" in value:
            raise StyleError(f"{file}: field '{where}.{key}' must be the furniture's words, got {value!r}")
        words[room] = " ".join(value.split())
    return tuple(words.items())


@lru_cache(maxsize=1)
def stage_recipe(file: Path = STAGE_FILE) -> StageRecipe:
    """The recipe, read and checked once."""
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StyleError(f"{file}: cannot read the stage recipe: {exc}") from None
    known_keys(data, file)
    prompt, negative = data.get("prompt"), data.get("negative_prompt", "")
    if not isinstance(prompt, str) or "{furniture}" not in prompt:
        raise StyleError(f"{file}: field 'prompt' must contain the {{furniture}} slot")
    controls_table = data.get("controls", {})
    controls = {name: control_settings(controls_table[name], f"controls.{name}.", file) for name in controls_table}
    lines = controls_table.get("lines", {})
    second = data.get("second_pass", {})
    furniture = furniture_words(data.get("furniture", {}), file, "furniture")
    if DEFAULT_ROOM not in dict(furniture):
        raise StyleError(f"{file}: field 'furniture.default' is missing: the words for a room type not listed")
    staging = Staging(
        furniture,
        bool(second.get("enabled", True)),
        float(number(second, "strength", "second_pass.", file, 0.05, 1.0)) if "strength" in second else 0.5,
    )
    min_length = float(number(lines, "min_length", "controls.lines.", file, 0.0, 1.0)) if "min_length" in lines else 0
    return StageRecipe(prompt, str(negative), controls, min_length or 0.06, staging)


def joined(*prompts: str) -> str:
    """Comma-separated prompts as one, each word group once, in order (`people` in both is said once)."""
    parts = [p.strip() for prompt in prompts for p in prompt.split(",") if p.strip()]
    return ", ".join(dict.fromkeys(parts))


def staged(style: Style, recipe: StageRecipe | None = None) -> Style:
    """A style as --mode stage runs it: its look (prompt, negative prompt, steps, guidance, LoRAs, reference), the
    recipe's words added to its prompts, the recipe's controls instead of its own (no canny: the empty room's
    edges would keep its floor empty), its [stage] words over the recipe's, starting from the empty room."""
    recipe = recipe or stage_recipe()
    words = {**dict(recipe.staging.furniture), **dict(style.furniture)}
    controls = recipe.controls
    return replace(
        style,
        mode="stage",
        prompt=f"{style.prompt}, {recipe.prompt}",
        negative_prompt=joined(style.negative_prompt, recipe.negative_prompt),
        depth=controls.get("depth", OFF),
        canny=OFF,
        lines=controls.get("lines"),
        lines_min_length=recipe.min_length,
        inpaint=controls.get("inpaint"),
        strength=1.0,
        fast=FastSettings(style.fast.enabled, style.fast.recipe, style.fast.steps, style.fast.guidance_scale),
        staging=replace(recipe.staging, furniture=tuple(words.items())),
    )
