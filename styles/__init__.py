"""Style files: one TOML per style, loaded and validated into `Style`."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import replace
from pathlib import Path

from pipeline.errors import UsageError
from styles.recipe import (
    DEFAULT_MIN_LINE,
    DEFAULT_MIN_QUALITY,
    ControlSettings,
    FastSettings,
    Staging,
    Style,
    StyleError,
    control_settings,
    number,
)
from styles.rooms import AUTO_ROOM, ROOM_ALIASES, ROOM_TEMPLATE, ROOMS, ROOMS_FILE, room_name
from styles.staging import furniture_words

__all__ = [
    "AUTO_ROOM",
    "DEFAULT_MIN_LINE",
    "DEFAULT_MIN_QUALITY",
    "ROOMS",
    "ROOMS_FILE",
    "ROOM_ALIASES",
    "ROOM_TEMPLATE",
    "ControlSettings",
    "FastSettings",
    "Staging",
    "Style",
    "StyleError",
    "room_name",
]

STYLE_DIR = Path(__file__).resolve().parent
MAX_REF_SCALE = 1.5  # --style-ref-scale / `style_ref_scale`: beyond this the reference drowns the prompt
FIDELITY = ("loose", "balanced", "strict")  # --fidelity / `fidelity = ...`: pipeline.stages.settings.with_fidelity
PHOTO_KINDS = ("input", "depth", "masks")  # a photo's own files, `<photo>.<kind>.<ext>`: no style takes these names
MODE_DIR = STYLE_DIR / "modes"  # the recipes of the modes that are not restyles (declutter, stage), one TOML each
MODES = ("restyle", "declutter", "stage")  # --mode: restyle, declutter (results named `empty`), stage (furnish)


def did_you_mean(name: str | None) -> str:
    """` (did you mean 'modern'?)` for a near miss of a built-in style's name, else nothing."""
    close = difflib.get_close_matches((name or "").strip().lower(), list_styles(), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def list_styles() -> list[str]:
    """The built-in style names, sorted."""
    return sorted(p.stem for p in STYLE_DIR.glob("*.toml"))


def style_name(text: str | None) -> str | None:
    """A built-in style's name as given in any case, or None when it is not one."""
    key = (text or "").strip().lower()
    return key if key in list_styles() else None


def load_mode(mode: str) -> Style:
    """The recipe of a mode other than restyle (styles/modes/MODE.toml): a style whose name its results carry."""
    return replace(load_style(path=MODE_DIR / f"{mode}.toml"), mode=mode)


def load_style(name: str | None = None, path: str | Path | None = None) -> Style:
    """Load a built-in style by its exact name (`style_name` finds it in any case), or a user's style file by
    path. The exact name, on every file system: the runs know a style by the name it was asked by."""
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise StyleError(f"{file}: style file not found")
    else:
        if name not in list_styles():
            raise StyleError(
                f"unknown style {name!r}{did_you_mean(name)}; choose one of: {', '.join(list_styles())} "
                "(or pass --style-file FILE)"
            )
        file = STYLE_DIR / f"{name}.toml"
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StyleError(f"{file}: not valid TOML: {exc}") from None
    return parse_style(data, file)


CONTROL_KEYS = ("scale", "start", "end")
KEYS = {  # the keys each table of a style file may hold, by the table's dotted name ("" for the top level)
    "": (
        "name",
        "description",
        "prompt",
        "negative_prompt",
        "guidance_scale",
        "steps",
        "min_quality",
        "loras",
        "checkpoint",
        "variations",
        "fast",
        "controls",
        "disclose",
        "fidelity",
        "style_ref",
        "style_ref_scale",
        "extends",
        "stage",
    ),
    "controls": ("depth", "canny", "lines"),
    "controls.depth": CONTROL_KEYS,
    "controls.canny": (*CONTROL_KEYS, "low_threshold", "high_threshold"),
    "controls.lines": (*CONTROL_KEYS, "min_length"),
    "fast": ("enabled", "recipe", "steps", "guidance_scale", "controls"),
    "fast.controls": ("depth", "canny", "lines"),
    "fast.controls.depth": CONTROL_KEYS,
    "fast.controls.canny": CONTROL_KEYS,
    "fast.controls.lines": CONTROL_KEYS,
}
MODE_KEYS = {"": ("strength",), "controls": ("inpaint",), "controls.inpaint": CONTROL_KEYS}  # a mode's recipe's own


def is_mode_recipe(file: Path) -> bool:
    return file.resolve().parent == MODE_DIR


def check_keys(table: dict, file: Path, where: str = "") -> None:
    """Refuse a key no table of a style file has (a typo would otherwise be silently ignored), naming the
    nearest known one; nested tables are checked too."""
    known = KEYS.get(where, ()) + (MODE_KEYS.get(where, ()) if is_mode_recipe(file) else ())
    for key, value in table.items():
        field = f"{where}.{key}" if where else key
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            near = f"{where}.{close[0]}" if close and where else close[0] if close else None
            hint = f"did you mean '{near}'?" if near else f"known keys here: {', '.join(known)}"
            raise StyleError(f"{file}: unknown key '{field}' ({hint})")
        if (field in KEYS or field in MODE_KEYS) and isinstance(value, dict):
            check_keys(value, file, field)


# What a style file leaves out (without `extends`): a control left out is off (scale 0).
DEFAULTS = {
    "description": "",
    "prompt": "a {room}, interior design photograph, high detail",
    "negative_prompt": "lowres, blurry, distorted, deformed furniture, warped walls, watermark, text",
    "guidance_scale": 7.5,
    "steps": 20,
}
CONTROL_DEFAULTS = {"scale": 1.0, "start": 0.0, "end": 1.0}
CANNY_DEFAULTS = {"low_threshold": 100, "high_threshold": 200}
OFF = {"scale": 0.0, "start": 0.0, "end": 1.0}


def merged(base: dict, over: dict) -> dict:
    """`over` on top of `base`, table by table (a table in both is merged key by key)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def with_defaults(data: dict, file: Path) -> dict:
    """A style file's table with what it leaves out filled in: from the built-in style it `extends` (the file's
    own keys win, table by table), else from DEFAULTS; its name defaults to the file's name. Unknown keys refused."""
    check_keys(data, file)
    data = dict(data)
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str) or style_name(parent) is None:
            raise StyleError(
                f"{file}: field 'extends' must name a built-in style{did_you_mean(str(parent))}, got {parent!r}; "
                f"choose one of: {', '.join(list_styles())}"
            )
        base = tomllib.loads((STYLE_DIR / f"{style_name(parent)}.toml").read_text(encoding="utf-8"))
        data = merged({k: v for k, v in base.items() if k != "name"}, data)
    data.setdefault("name", file.stem)
    for key, value in DEFAULTS.items():
        data.setdefault(key, value)
    controls = dict(data.get("controls") or {}) if isinstance(data.get("controls", {}), dict) else data["controls"]
    if isinstance(controls, dict):
        for name in ("depth", "canny"):
            table = controls.get(name)
            extra = CANNY_DEFAULTS if name == "canny" else {}
            controls[name] = {**extra, **(OFF if table is None else CONTROL_DEFAULTS), **(table or {})}
        for name in ("lines", "inpaint"):
            if isinstance(controls.get(name), dict):
                controls[name] = {**CONTROL_DEFAULTS, **controls[name]}
        data["controls"] = controls
    return data


def parse_style(data: dict, file: Path) -> Style:
    """Validate a parsed style table, its gaps filled (`with_defaults`); every problem names the file and field."""
    data = with_defaults(data, file)

    def get(table: dict, key: str, kind: type | tuple[type, ...], where: str = ""):
        field = f"{where}{key}"
        if key not in table:
            raise StyleError(f"{file}: missing field '{field}'")
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise StyleError(f"{file}: field '{field}' must be {names}, got {value!r}")
        return value

    def in_range(field: str, value: float, low: float, high: float) -> float:
        if not low <= value <= high:
            raise StyleError(f"{file}: field '{field}' must be between {low} and {high}, got {value}")
        return value

    def control(name: str) -> ControlSettings:
        return control_settings(get(get(data, "controls", dict), name, dict, "controls."), f"controls.{name}.", file)

    prompt = check_prompt(get(data, "prompt", str), file)
    canny = get(get(data, "controls", dict), "canny", dict, "controls.")
    low = in_range("controls.canny.low_threshold", get(canny, "low_threshold", int, "controls.canny."), 0, 1000)
    high = in_range("controls.canny.high_threshold", get(canny, "high_threshold", int, "controls.canny."), 0, 1000)
    if high < low:
        raise StyleError(f"{file}: field 'controls.canny.high_threshold' is below 'low_threshold'")
    controls = get(data, "controls", dict)
    named = ("depth", "canny", *(name for name in ("lines", "inpaint") if controls.get(name) is not None))
    base = steering({name: control(name) for name in named}, file)
    return Style(
        name=check_name(get(data, "name", str), file),
        description=data.get("description", ""),
        prompt=prompt,
        negative_prompt=get(data, "negative_prompt", str),
        guidance_scale=in_range("guidance_scale", float(get(data, "guidance_scale", (int, float))), 1.0, 30.0),
        steps=int(in_range("steps", get(data, "steps", int), 1, 200)),
        depth=base["depth"],
        canny=base["canny"],
        canny_low=low,
        canny_high=high,
        source=str(file),
        min_quality=in_range("min_quality", float(get(data, "min_quality", (int, float))), 0.0, 1.0)
        if "min_quality" in data
        else DEFAULT_MIN_QUALITY,
        loras=parse_loras(data, file),
        checkpoint=parse_checkpoint(data, file),
        variations=int(in_range("variations", get(data, "variations", int), 1, 16)) if "variations" in data else None,
        fast=parse_fast(data, file, base),
        disclose=get(data, "disclose", str).strip() or None if "disclose" in data else None,
        lines=base.get("lines"),
        lines_min_length=min_line(controls.get("lines"), file),
        fidelity=parse_fidelity(data, file),
        style_ref=parse_style_ref(data, file),
        style_ref_scale=_optional(data, "style_ref_scale", file, 0.0, MAX_REF_SCALE, None),
        strength=_optional(data, "strength", file, 0.05, 1.0, 1.0),
        inpaint=base.get("inpaint"),
        furniture=furniture_words(data["stage"], file, "stage") if "stage" in data else (),
    )


def steering(controls: dict[str, ControlSettings], file: Path) -> dict[str, ControlSettings]:
    """A style's controls, when at least one steers: without one, its results would not keep the room's shape."""
    if not any(c.scale > 0 for c in controls.values()):
        raise StyleError(
            f"{file}: the style steers with no control; give [controls.depth], [controls.canny] or "
            f"[controls.lines] a scale above 0 (or `extends` a built-in style)"
        )
    return controls


def parse_style_ref(data: dict, file: Path) -> str | None:
    """`style_ref = "hero.jpg"`: a reference photo, relative to the style file (or absolute, or r2:// / s3://)."""
    if "style_ref" not in data:
        return None
    value = data["style_ref"]
    if not isinstance(value, str) or not value.strip():
        raise StyleError(f"{file}: field 'style_ref' must be a path or an r2:// URI, got {value!r}")
    value = value.strip()
    if "://" in value or Path(value).expanduser().is_absolute():
        return str(Path(value).expanduser()) if "://" not in value else value
    return str(file.resolve().parent / value)


EMPTY = "empty"  # the name --mode declutter's results carry (room.empty.png)


def check_name(name: str, file: Path) -> str:
    """A style's name, unless it is the kind of one of a photo's own files: `room.depth.png` is the photo's
    depth map, shared by its styles, so a style named `depth` would write its results under the same name; nor
    `empty`, which names what --mode declutter makes."""
    if name.strip().lower() in PHOTO_KINDS:
        raise StyleError(
            f"{file}: field 'name' must not be {name!r}: {', '.join(PHOTO_KINDS)} name a photo's control maps "
            f"(room.{name.strip().lower()}.*); choose another name"
        )
    if name.strip().lower() == EMPTY and not is_mode_recipe(file):
        raise StyleError(f"{file}: field 'name' must not be 'empty': it names --mode declutter's results")
    return name


def min_line(lines: dict | None, file: Path) -> float:
    """[controls.lines] min_length: the shortest line segment kept, as a share of the long side."""
    if lines is None or "min_length" not in lines:
        return DEFAULT_MIN_LINE
    return float(number(lines, "min_length", "controls.lines.", file, 0.0, 1.0))


def check_prompt(prompt: str, file: Path) -> str:
    """A style's prompt: it has the {room} slot and no other placeholder."""
    if "{room}" not in prompt:
        raise StyleError(f"{file}: field 'prompt' must contain the {{room}} slot")
    try:
        prompt.format(room="room")
    except (KeyError, IndexError, ValueError) as exc:
        raise StyleError(f"{file}: field 'prompt' has a bad placeholder: {exc}") from None
    return prompt


def parse_fidelity(data: dict, file: Path) -> str | None:
    """`fidelity = "loose" | "balanced" | "strict"`: how much of the room a style lets change."""
    if "fidelity" not in data:
        return None
    value = data["fidelity"]
    if value not in FIDELITY:
        raise StyleError(f"{file}: field 'fidelity' must be one of {', '.join(FIDELITY)}, got {value!r}")
    return value


def _optional(data: dict, key: str, file: Path, low: float, high: float, default: float | None) -> float | None:
    """A top-level number a style file may leave out (`default` then), else checked to be within its range."""
    return float(number(data, key, "", file, low, high)) if key in data else default


def parse_fast(data: dict, file: Path, base: dict[str, ControlSettings]) -> FastSettings:
    """`fast = true`, or a `[fast]` table: `enabled`, `recipe`, `steps`, `guidance_scale` and
    `[fast.controls.depth]` / `.canny` / `.lines` overrides of the style's own controls (`base`; lines only when
    the style uses them)."""
    value = data.get("fast", False)
    if isinstance(value, bool):
        return FastSettings(enabled=value)
    if not isinstance(value, dict):
        raise StyleError(f"{file}: field 'fast' must be true/false or a [fast] table")
    from pipeline.models.recipes import RECIPES

    recipe = value.get("recipe")
    if recipe is not None and recipe not in RECIPES:
        raise StyleError(f"{file}: field 'fast.recipe' must be one of {', '.join(RECIPES)}, got {recipe!r}")
    controls = value.get("controls", {})
    return FastSettings(
        enabled=bool(value.get("enabled", False)),
        recipe=recipe,
        steps=int(number(value, "steps", "fast.", file, 1, 50, int)) if "steps" in value else None,
        guidance_scale=float(number(value, "guidance_scale", "fast.", file, 1.0, 30.0))
        if "guidance_scale" in value
        else None,
        **{name: fast_control(controls, name, file, base) for name in ("depth", "canny", "lines") if name in controls},
    )


def fast_control(controls: dict, name: str, file: Path, base: dict[str, ControlSettings]) -> ControlSettings:
    """One `[fast.controls.NAME]` override; the lines control only in a style that has `[controls.lines]`."""
    if name not in base:
        raise StyleError(
            f"{file}: field 'fast.controls.{name}' overrides a control the style does not use (add [controls.{name}])"
        )
    return control_settings(controls[name], f"fast.controls.{name}.", file, base[name])


def parse_checkpoint(data: dict, file: Path) -> str | None:
    """`checkpoint = "fine-tune.safetensors"`, relative to the style file."""
    if "checkpoint" not in data:
        return None
    if not isinstance(data["checkpoint"], str):
        raise StyleError(f"{file}: field 'checkpoint' must be a file name")
    path = Path(data["checkpoint"]).expanduser()
    path = path if path.is_absolute() else file.parent / path
    if not path.is_file():
        raise StyleError(f"{file}: field 'checkpoint': no such file {path}")
    return str(path)


def parse_loras(data: dict, file: Path) -> tuple:
    """`loras = ["file.safetensors:0.8", ...]`, files relative to the style file."""
    from pipeline.models.lora import parse

    entries = data.get("loras", [])
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise StyleError(f"{file}: field 'loras' must be a list of \"FILE[:SCALE]\" strings")
    try:
        return tuple(parse(entry, base=file.parent) for entry in entries)
    except UsageError as exc:
        raise StyleError(f"{file}: field 'loras': {exc}") from None
