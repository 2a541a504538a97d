"""Help and errors in one style: whole-sentence command descriptions, the signing options in their own panel,
--format's values, and parser errors as one `error: ...` line."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from modomo_cli.app import app

WIDE = {"COLUMNS": "200"}
BOX = re.compile("[\u2500-\u257f]")


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def _panel(text: str, title: str) -> list[str]:
    """The rows of the help panel titled `title`, box-drawing characters stripped."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if f"\u256d\u2500 {title} " in line)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("\u2570"))
    return [BOX.sub("", line).strip() for line in lines[start + 1 : end]]


def test_doctor_and_verify_are_described_in_one_whole_sentence():
    rows = _panel(_help(), "Commands")
    for name in ("doctor", "verify"):
        [index] = [i for i, row in enumerate(rows) if row.split()[0] == name]
        description = rows[index].removeprefix(name).strip()
        assert description[0].isupper() and description.endswith("."), description
        following = rows[index + 1].split()[0] if index + 1 < len(rows) else ""
        assert following.isidentifier() and following.islower(), f"{name}'s description runs on: {rows[index + 1]}"


def test_signing_options_have_a_content_credentials_panel():
    text = _help("transform")
    rows = _panel(text, "Content credentials")
    assert [row.split()[0] for row in rows] == ["--sign-cert", "--sign-key"]
    assert "--sign-cert" not in "\n".join(_panel(text, "Catalogues"))


def test_format_help_lists_its_values_jpg_included():
    [row] = [row for row in _panel(_help("transform"), "Inputs and outputs") if row.startswith("--format")]
    for value in ("png", "jpeg", "jpg", "webp"):
        assert re.search(rf"\b{value}\b", row), row


@pytest.mark.parametrize(
    ("argv", "names"), [(["transform", "x", "--steps", "abc"], "--steps"), (["no-such-command"], "no-such-command")]
)
def test_a_parser_error_is_one_error_line_with_exit_2(argv, names):
    result = CliRunner().invoke(app, argv, env=WIDE)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:") and names in lines[0], lines[0]
    assert not BOX.search(result.output), result.output
