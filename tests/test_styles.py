"""Tests for styles: the built-in style files and the validation of a user's style file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ModomoError, UsageError
from styles import STYLE_DIR, Style, StyleError, list_styles, load_style, style_name

BUILT_IN = ("boho", "industrial", "minimalist", "modern", "scandinavian")
BOHO = (STYLE_DIR / "boho.toml").read_text(encoding="utf-8")


def boho_with(*edits: tuple[str, str]) -> str:
    """The boho file with each (old, new) text replaced exactly once (a missed edit fails the test)."""
    text = BOHO
    for old, new in edits:
        assert text.count(old) == 1, f"edit target {old!r} not found exactly once in boho.toml"
        text = text.replace(old, new)
    return text


def write(tmp_path: Path, text: str, name: str = "mine.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_list_styles_is_exactly_the_five_built_ins():
    assert list_styles() == list(BUILT_IN)


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_style_loads_with_sane_values(name):
    style = load_style(name)
    assert isinstance(style, Style)
    assert style.name == name
    assert style.source == str(STYLE_DIR / f"{name}.toml")
    assert style.description.strip()
    assert "{room}" in style.prompt
    assert style.negative_prompt.strip()
    assert 1.0 <= style.guidance_scale <= 30.0
    assert isinstance(style.steps, int) and 1 <= style.steps <= 200
    for control in (style.depth, style.canny):
        assert 0.0 < control.scale <= 2.0
        assert 0.0 <= control.start < control.end <= 1.0
    assert isinstance(style.canny_low, int) and isinstance(style.canny_high, int)
    assert 0 <= style.canny_low < style.canny_high <= 1000


@pytest.mark.parametrize("name", BUILT_IN)
def test_prompt_for_fills_the_room_slot(name):
    style = load_style(name)
    prompt = style.prompt_for("bedroom")
    assert "bedroom" in prompt
    assert "{" not in prompt and "}" not in prompt
    assert prompt == style.prompt.replace("{room}", "bedroom")


def test_unknown_style_names_the_available_ones():
    with pytest.raises(StyleError) as info:
        load_style("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in BUILT_IN:
        assert name in message
    assert info.value.exit_code == 2


def test_no_name_and_no_path_is_an_unknown_style():
    with pytest.raises(StyleError, match="choose one of"):
        load_style(None)


def test_a_changed_copy_of_boho_loads(tmp_path):
    text = boho_with(
        ('name = "boho"', 'name = "my boho"'),
        ("steps = 20", "steps = 35"),
        ("guidance_scale = 7.5", "guidance_scale = 9"),  # an int where a float is expected is fine
        ("low_threshold = 80", "low_threshold = 60"),
        ("scale = 0.5\nstart = 0.0\nend = 0.6", "scale = 0.4\nstart = 0.1\nend = 0.9"),
    )
    path = write(tmp_path, text)
    style = load_style(path=path)
    assert style.name == "my boho"
    assert style.steps == 35
    assert style.guidance_scale == 9.0 and isinstance(style.guidance_scale, float)
    assert (style.canny_low, style.canny_high) == (60, 180)
    assert (style.canny.scale, style.canny.start, style.canny.end) == (0.4, 0.1, 0.9)
    assert (style.depth.scale, style.depth.start, style.depth.end) == (0.9, 0.0, 1.0)
    assert style.source == str(path)
    assert style.prompt_for("kitchen").startswith("a bohemian kitchen,")


def test_path_wins_over_name(tmp_path):
    path = write(tmp_path, boho_with(('name = "boho"', 'name = "from file"')))
    assert load_style("modern", path=path).name == "from file"


MALFORMED = {
    "invalid-toml": (boho_with(("steps = 20", "steps = = 20")), "not valid TOML"),
    "steps-as-string": (boho_with(("steps = 20", 'steps = "20"')), "field 'steps' must be int"),
    "steps-as-float": (boho_with(("steps = 20", "steps = 20.5")), "field 'steps' must be int"),
    "steps-as-bool": (boho_with(("steps = 20", "steps = true")), "field 'steps' must be int"),
    "guidance-too-high": (
        boho_with(("guidance_scale = 7.5", "guidance_scale = 31.0")),
        "field 'guidance_scale' must be between",
    ),
    "guidance-too-low": (
        boho_with(("guidance_scale = 7.5", "guidance_scale = 0.5")),
        "field 'guidance_scale' must be between",
    ),
    "depth-end-before-start": (
        boho_with(("scale = 0.9\nstart = 0.0\nend = 1.0", "scale = 0.9\nstart = 0.7\nend = 0.3")),
        "field 'controls.depth.end'",
    ),
    "prompt-without-room": (
        boho_with(('"a bohemian {room}, ', '"a bohemian room, ')),
        "field 'prompt' must contain the {room} slot",
    ),
    "prompt-with-stray-placeholder": (
        boho_with(('"a bohemian {room}, ', '"a bohemian {room} in {other}, ')),
        "field 'prompt' has a bad placeholder",
    ),
    "prompt-with-positional-placeholder": (
        boho_with(('"a bohemian {room}, ', '"a bohemian {room} {0}, ')),
        "field 'prompt' has a bad placeholder",
    ),
    "prompt-with-unclosed-brace": (
        boho_with(('"a bohemian {room}, ', '"a bohemian {room} {, ')),
        "field 'prompt' has a bad placeholder",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_style_file_names_file_and_field(tmp_path, case):
    text, expected = MALFORMED[case]
    path = write(tmp_path, text, f"{case}.toml")
    with pytest.raises(StyleError) as info:
        load_style(path=path)
    error = info.value
    assert isinstance(error, UsageError) and isinstance(error, ModomoError)
    assert error.exit_code == 2
    message = str(error)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_stray_placeholder_message_names_the_placeholder(tmp_path):
    path = write(tmp_path, boho_with(('"a bohemian {room}, ', '"a bohemian {room} in {other}, ')))
    with pytest.raises(StyleError, match="other"):
        load_style(path=path)


def test_missing_style_file(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(StyleError) as info:
        load_style(path=path)
    assert str(info.value) == f"{path}: style file not found"
    assert info.value.exit_code == 2


def test_a_folder_is_not_a_style_file(tmp_path):
    with pytest.raises(StyleError, match="style file not found"):
        load_style(path=tmp_path)


def test_non_utf8_style_file_is_a_style_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(BOHO.replace("Warm earth", "Chaleur d'\u00e9t\u00e9").encode("latin-1"))
    with pytest.raises(StyleError, match="not valid TOML") as info:
        load_style(path=path)
    assert str(path) in str(info.value)


UNKNOWN_KEYS = {
    "top-level-typo": (("steps = 20", "stepz = 20"), "unknown key 'stepz' (did you mean 'steps'?)"),
    "top-level-extra": (
        ("steps = 20", "steps = 20\nguidance = 7.5"),
        "unknown key 'guidance' (did you mean 'guidance_scale'?)",
    ),
    "control-typo": (
        ("scale = 0.9\n", "scael = 0.9\n"),
        "unknown key 'controls.depth.scael' (did you mean 'controls.depth.scale'?)",
    ),
    "canny-typo": (
        ("low_threshold = 80", "low_treshold = 80"),
        "unknown key 'controls.canny.low_treshold' (did you mean 'controls.canny.low_threshold'?)",
    ),
    "control-name-typo": (
        ("[controls.depth]", "[controls.dpeth]"),
        "unknown key 'controls.dpeth' (did you mean 'controls.depth'?)",
    ),
    "fast-typo": (
        ("min_quality = 0.2", "min_quality = 0.2\n[fast]\nstep = 4"),
        "unknown key 'fast.step' (did you mean 'fast.steps'?)",
    ),
    "fast-control-typo": (
        ("min_quality = 0.2", "min_quality = 0.2\n[fast.controls.canny]\nend = 0.5\nstrat = 0.1"),
        "unknown key 'fast.controls.canny.strat' (did you mean 'fast.controls.canny.start'?)",
    ),
    "nothing-near": (("steps = 20", "steps = 20\ncolour = 'red'"), "unknown key 'colour' (known keys here: name, "),
}


@pytest.mark.parametrize("case", sorted(UNKNOWN_KEYS))
def test_an_unknown_key_names_the_file_the_key_and_the_nearest_known_one(tmp_path, case):
    edit, expected = UNKNOWN_KEYS[case]
    path = write(tmp_path, boho_with(edit), "boho.toml")
    with pytest.raises(StyleError) as info:
        load_style(path=path)
    assert str(info.value).startswith(f"{path}: {expected}"), str(info.value)
    assert info.value.exit_code == 2


def test_every_key_a_style_file_may_hold_loads(tmp_path):
    """The keys the loader reads are the keys it accepts: a file using all of them loads."""
    text = boho_with(
        (
            "min_quality = 0.2",
            "min_quality = 0.3\nvariations = 2\nloras = []\n[fast]\nenabled = true\n"
            'recipe = "lcm"\nsteps = 4\nguidance_scale = 1.5\n[fast.controls.depth]\nscale = 0.5\n'
            "start = 0.0\nend = 0.8\n[fast.controls.canny]\nscale = 0.3\nstart = 0.0\nend = 0.5\n"
            "[fast.controls.lines]\nscale = 0.2\nstart = 0.0\nend = 0.3",
        ),
        ("min_quality = 0.3", 'min_quality = 0.3\nfidelity = "loose"'),
    )
    style = load_style(path=write(tmp_path, text + LINES))
    assert style.fast.enabled and style.fast.steps == 4 and style.fast.canny.end == 0.5
    assert style.fast.lines.scale == 0.2 and style.lines_min_length == 0.08 and style.fidelity == "loose"
    assert style.variations == 2 and style.min_quality == 0.3


@pytest.mark.parametrize("given", ["Boho", "BOHO", " boho "])
def test_built_in_style_names_in_any_case(given):
    assert style_name(given) == "boho"
    style = load_style(style_name(given))
    assert style.name == "boho" and style.source == str(STYLE_DIR / "boho.toml")


def test_load_style_takes_the_exact_name_on_every_file_system():
    """A case-insensitive file system must not load `Boho` as a style named `boho` (a run knows a style by the
    name it was asked by): callers find the name with style_name first."""
    with pytest.raises(StyleError, match="unknown style 'Boho'"):
        load_style("Boho")


@pytest.mark.parametrize("given", ["nope", "", None, "../styles/boho", "boho.toml"])
def test_style_name_is_none_for_anything_but_a_built_in(given):
    assert style_name(given) is None


LINES = "\n[controls.lines]\nscale = 0.5\nstart = 0.0\nend = 0.7\nmin_length = 0.08\n"


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_style_decides_on_lines_and_says_why(name):
    """Straight-edged styles steer with the lines control; boho (curves, rattan, draped fabric) does not."""
    style = load_style(name)
    text = (STYLE_DIR / f"{name}.toml").read_text(encoding="utf-8")
    if name == "boho":
        assert style.lines is None and "lines" in text.lower()  # the file says why it has none
    else:
        assert style.lines is not None and 0 < style.lines.scale <= 1 and style.lines.end <= 1
        above = text[: text.index("[controls.lines]")].rstrip().splitlines()
        comment = []
        while above and above[-1].startswith("#"):
            comment.append(above.pop())
        assert "line" in " ".join(comment).lower()
        assert 0 < style.lines_min_length < 0.2
    assert style.fidelity is None  # the built-ins are the balanced level's reference


def test_a_style_file_sets_lines_and_fidelity(tmp_path):
    style = load_style(
        path=write(tmp_path, boho_with(("min_quality = 0.2", 'min_quality = 0.2\nfidelity = "strict"')) + LINES)
    )
    assert style.lines.scale == 0.5 and style.lines.end == 0.7 and style.lines_min_length == 0.08
    assert style.fidelity == "strict"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            boho_with(("min_quality = 0.2", 'min_quality = 0.2\nfidelity = "tight"')),
            "field 'fidelity' must be one of loose, balanced, strict, got 'tight'",
        ),
        (
            BOHO + LINES.replace("min_length = 0.08", "min_length = 2"),
            "field 'controls.lines.min_length' must be between",
        ),
        (BOHO + LINES.replace("scale = 0.5", "scale = 3"), "field 'controls.lines.scale' must be between"),
        (BOHO + "\n[fast.controls.lines]\nscale = 0.3\n", "field 'fast.controls.lines' overrides a control the style"),
    ],
)
def test_bad_lines_or_fidelity_fields_name_the_file_and_the_field(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(StyleError) as info:
        load_style(path=path)
    assert str(info.value).startswith(f"{path}: {expected}"), str(info.value)


def test_fast_mode_overrides_the_lines_control_of_a_style_that_has_one(tmp_path):
    fast = "\n[fast]\nenabled = true\n[fast.controls.lines]\nend = 0.4\n"
    style = load_style(path=write(tmp_path, BOHO + LINES + fast))
    assert style.fast.lines.end == 0.4 and style.fast.lines.scale == 0.5  # the rest from [controls.lines]


def test_a_near_miss_of_a_style_name_gets_a_did_you_mean_on_the_command_line_and_in_a_manifest(tmp_path):
    with pytest.raises(StyleError, match=r"unknown style 'moden' \(did you mean 'modern'\?\)"):
        load_style("moden")
    with pytest.raises(StyleError, match=r"unknown style 'baroque'; choose one of"):  # nothing close: no guess
        load_style("baroque")
    from pipeline.errors import UsageError
    from pipeline.inputs.manifest import manifest_items
    from pipeline.r2 import Remote

    (tmp_path / "x.jpg").write_bytes(b"")
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("input,style\nx.jpg,moden\n")
    with pytest.raises(UsageError, match=r"line 2: unknown style 'moden' \(did you mean 'modern'\?\)"):
        manifest_items(manifest, Remote(), lambda name: style_name(name) == name, lambda labels: labels)


def test_a_style_file_says_only_what_differs(tmp_path):
    """Every field has a default; a control left out is off; a control given keeps its defaults for what it omits."""
    style = load_style(path=write(tmp_path, 'prompt = "a calm {room}"\n[controls.depth]\nscale = 0.8\n', "calm.toml"))
    assert style.name == "calm" and style.prompt == "a calm {room}" and style.steps == 20
    assert (style.depth.scale, style.depth.start, style.depth.end) == (0.8, 0.0, 1.0)
    assert style.canny.scale == 0.0 and style.lines is None  # left out: off
    assert (style.canny_low, style.canny_high) == (100, 200)
    assert load_style(path=write(tmp_path, "[controls.canny]\n", "edges.toml")).canny.scale > 0  # given: defaults
    with pytest.raises(StyleError, match=r"empty.toml: the style steers with no control; give \[controls.depth\]"):
        load_style(path=write(tmp_path, "", "empty.toml"))


def test_extends_starts_from_a_built_in_style(tmp_path):
    text = 'extends = "Boho"\nsteps = 30\n[controls.canny]\nscale = 0.3\n'
    style, boho = load_style(path=write(tmp_path, text, "warmer.toml")), load_style("boho")
    assert style.name == "warmer" and style.steps == 30 and style.prompt == boho.prompt
    assert style.depth == boho.depth and style.canny.scale == 0.3 and style.canny.end == boho.canny.end
    assert (style.canny_low, style.canny_high) == (boho.canny_low, boho.canny_high)
    with pytest.raises(StyleError, match=r"field 'extends' must name a built-in style \(did you mean 'modern'\?\)"):
        load_style(path=write(tmp_path, 'extends = "moden"\n', "typo.toml"))
