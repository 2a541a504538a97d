"""What a style file becomes: `Style` and its parts (controls, fast mode, staging), and the checks of one number or
one control table that every parser of a recipe (styles, styles/modes/) shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UsageError
from styles.rooms import room_name

DEFAULT_MIN_QUALITY = 0.2  # above what an unrelated room scores (~0.1), below a kept layout (README: Quality)
DEFAULT_MIN_LINE = 0.04  # [controls.lines] min_length: segments shorter than 4 % of the long side are dropped
DEFAULT_ROOM = "default"  # a staging's furniture words for a room type not listed (and --room auto's fallback)


class StyleError(UsageError):
    """A style that is missing or malformed; the message names the file and field."""


@dataclass(frozen=True)
class ControlSettings:
    """How strongly one ControlNet steers, and over which share of the steps."""

    scale: float
    start: float
    end: float


@dataclass(frozen=True)
class FastSettings:
    """A style's fast mode: whether it runs fast by default, and what it changes when it does ([fast])."""

    enabled: bool = False
    recipe: str | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    depth: ControlSettings | None = None  # lighter control for few-step models
    canny: ControlSettings | None = None
    lines: ControlSettings | None = None


@dataclass(frozen=True)
class Staging:
    """What --mode stage adds to a style (styles/modes/stage.toml, the style's own [stage] table): the furniture
    words per room type, and its second pass over the furniture it added (on or off, and how far it goes)."""

    furniture: tuple[tuple[str, str], ...]  # room type -> words; DEFAULT_ROOM for the rest
    second_pass: bool = True
    second_strength: float = 0.5

    def words_for(self, room: str | None) -> str:
        words = dict(self.furniture)
        return words.get(room_name(room or "") or "", words[DEFAULT_ROOM])


@dataclass(frozen=True)
class Style:
    """A restyling recipe: prompts, sampler settings, ControlNet settings, Canny thresholds."""

    name: str
    description: str
    prompt: str
    negative_prompt: str
    guidance_scale: float
    steps: int
    depth: ControlSettings
    canny: ControlSettings
    canny_low: int
    canny_high: int
    source: str
    min_quality: float = DEFAULT_MIN_QUALITY
    loras: tuple = ()  # pipeline.models.lora.Lora, applied to this style's results
    checkpoint: str | None = None  # a single-file SD1.5 fine-tune this style is meant for
    variations: int | None = None  # results per photo (`variations = N`); --variations overrides it
    fast: FastSettings = FastSettings()  # `fast = true`, or a [fast] table of overrides
    disclose: str | None = None  # a visible label on every result (`disclose = "Virtually staged"`)
    lines: ControlSettings | None = None  # the straight-line (MLSD) control, when the style uses it
    lines_min_length: float = DEFAULT_MIN_LINE  # shortest segment kept, as a share of the photo's long side
    fidelity: str | None = None  # how much may change: loose, balanced, strict (`fidelity = "strict"`)
    style_ref: str | None = None  # a reference photo for the look (`style_ref = "hero.jpg"`, relative to the file)
    style_ref_scale: float | None = None  # how strongly it steers (`style_ref_scale = 0.6`)
    mode: str = "restyle"  # what its results are: a restyle, or a mode's own (styles/modes/: declutter, stage)
    strength: float = 1.0  # how far from the starting picture the sampler goes (1: from noise, as a restyle)
    inpaint: ControlSettings | None = None  # the inpaint ControlNet (a mode's recipe only)
    furniture: tuple[tuple[str, str], ...] = ()  # the style file's [stage] table: its furniture words per room
    staging: Staging | None = None  # --mode stage's settings (styles.staging.staged), None otherwise

    def prompt_for(self, room: str) -> str:
        """The prompt for a room type; a staging's with that room's furniture words."""
        return self.prompt.format(room=room, furniture=self.staging.words_for(room) if self.staging else "")


def number(table: dict, key: str, where: str, file: Path, low: float, high: float, kind=(int, float)) -> float:
    """A number of a recipe's table, there, of its kind and within its range; else one line naming file and field."""
    if key not in table:
        raise StyleError(f"{file}: missing field '{where}{key}'")
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "a number"
        raise StyleError(f"{file}: field '{where}{key}' must be {names}, got {value!r}")
    if not low <= value <= high:
        raise StyleError(f"{file}: field '{where}{key}' must be between {low} and {high}, got {value}")
    return value


def control_settings(table: dict, where: str, file: Path, base: ControlSettings | None = None) -> ControlSettings:
    """One ControlNet's scale and window; with `base`, missing keys keep the base's (a [fast] override)."""
    values = {}
    for key, high in (("scale", 2.0), ("start", 1.0), ("end", 1.0)):
        if key in table or base is None:
            values[key] = float(number(table, key, where, file, 0.0, high))
        else:
            values[key] = getattr(base, key)
    if values["end"] < values["start"]:
        raise StyleError(f"{file}: field '{where}end' ({values['end']}) is before '{where}start' ({values['start']})")
    return ControlSettings(values["scale"], values["start"], values["end"])
