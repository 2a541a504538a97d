"""The documentation stays true: links in README.md and docs/ resolve, and every `modomo` command in their code
blocks names a real subcommand with real options. No network, no models: the Typer app is only inspected.

A fenced block marked `text` holds output (the demo's table starts with the line `modomo run`): in it only lines
with an explicit `$ ` prompt or `.venv/bin/` prefix are commands.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
COMMAND = re.compile(r"^(?P<prompt>\$\s+)?(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?P<venv>\.venv/bin/)?modomo(?:\s|$)")
OUTPUT_FENCES = {"text"}
SHELL_STOP = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1", "&>"}


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string and (line number, text) pairs."""

    info: str
    lines: tuple[tuple[int, str], ...]


def split_markdown(text: str) -> tuple[list[tuple[int, str]], list[Block]]:
    """The prose lines (outside fences) and the fenced blocks of a markdown text."""
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    fence, info, body = None, "", []
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence, info, body = match.group(1), match.group(2).lower(), []
        elif fence is not None and match and match.group(1).startswith(fence) and not match.group(2):
            blocks.append(Block(info, tuple(body)))
            fence = None
        elif fence is not None:
            body.append((number, line))
        else:
            prose.append((number, line))
    return prose, blocks


# -- links ---------------------------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lowercase, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = INLINE_CODE.sub(lambda m: m.group(2), text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a markdown text, with GitHub's -1, -2 ... for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in split_markdown(text)[0]:
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line number, target) of every markdown link outside code."""
    for number, line in split_markdown(text)[0]:
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            yield number, match.group(1)


def link_problem(source: Path, target: str, text: str | None = None) -> str | None:
    """Why a link from `source` does not resolve, or None. `text` stands in for the source's own content."""
    if re.match(r"^(https?:|mailto:)", target, re.IGNORECASE):
        return None
    path, _, anchor = target.partition("#")
    resolved = (source.parent / path).resolve() if path else source
    if path and not resolved.exists():
        return f"{target}: no such file or folder {resolved}"
    if not anchor:
        return None
    if resolved.is_dir() or resolved.suffix.lower() != ".md":
        return f"{target}: an anchor into something that is not a markdown file"
    content = text if resolved == source and text is not None else resolved.read_text(encoding="utf-8")
    if anchor.lower() not in anchors(content):
        return f"{target}: no heading with the anchor #{anchor} in {resolved.name}"
    return None


def link_problems(source: Path, text: str) -> list[str]:
    """Every broken link of a markdown text that lives at `source`."""
    problems = []
    for number, target in links(text):
        problem = link_problem(source, target, text)
        if problem:
            problems.append(f"{source.name}:{number}: {problem}")
    return problems


# -- commands ------------------------------------------------------------------------------------------------------


def command_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, command) for every `modomo` line in the fenced blocks; continuations joined."""
    for block in split_markdown(text)[1]:
        pending, start = "", 0
        for number, line in block.lines:
            if not pending:
                start = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            whole, pending = (pending + line).strip(), ""
            match = COMMAND.match(whole)
            if match and (block.info not in OUTPUT_FENCES or match.group("prompt") or match.group("venv")):
                yield start, whole


def modomo_args(line: str) -> list[str]:
    """The words after `modomo`, up to the first shell operator; ValueError when shlex cannot split the line."""
    words = shlex.split(line, comments=True)
    words = words[next(i for i, word in enumerate(words) if word.endswith("modomo")) + 1 :]
    for i, word in enumerate(words):
        if word in SHELL_STOP or word.startswith((">", "2>")):
            return words[:i]
    return words


def option_names(command) -> set[str]:
    """Every option spelling a click command accepts, --help included."""
    names = {"--help"}
    for param in command.params:
        names.update(o for o in [*param.opts, *param.secondary_opts] if o.startswith("-"))
    return names


def command_problems(root, line: str) -> list[str]:
    """What in a `modomo ...` line the click command `root` does not know (ValueError if it cannot be split)."""
    command, path = root, ["modomo"]
    args = modomo_args(line)
    while getattr(command, "commands", None) and args and not args[0].startswith("-"):
        name = args.pop(0)
        if name not in command.commands:
            return [f"{' '.join(path)}: no subcommand {name!r} (known: {', '.join(sorted(command.commands))})"]
        command, path = command.commands[name], [*path, name]
    known = option_names(command)
    problems = []
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("-") and arg != "-" and not re.match(r"^-\d", arg) and arg.split("=")[0] not in known:
            problems.append(f"{' '.join(path)}: no option {arg.split('=')[0]}")
    return problems


# -- the tests -----------------------------------------------------------------------------------------------------


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _doc_commands() -> list:
    return [
        pytest.param(path, line, id=f"{_rel(path)}:{number}")
        for path in DOC_FILES
        for number, line in command_lines(path.read_text(encoding="utf-8"))
    ]


@pytest.fixture(scope="module")
def cli():
    """The click command behind the Typer app."""
    import typer.main

    from modomo_cli.app import app

    return typer.main.get_command(app)


def test_the_cli_reference_is_the_apps_help():
    """docs/cli.md is what the app's --help says, command by command: a changed option fails here until the page is
    regenerated (`python -m modomo_cli.reference > docs/cli.md`)."""
    from modomo_cli.reference import markdown

    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert page == markdown(), "docs/cli.md differs from the app: python -m modomo_cli.reference > docs/cli.md"
    assert "`--fidelity <str>`: How much of the room may change" in page  # help text, not only flag names


def test_the_docs_exist():
    assert (ROOT / "docs" / "README.md").is_file()
    assert len(DOC_FILES) > 2


@pytest.mark.parametrize("path", DOC_FILES, ids=_rel)
def test_links_resolve(path: Path):
    problems = link_problems(path, path.read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("path", "line"), _doc_commands())
def test_command_parses(cli, path: Path, line: str):
    try:
        problems = command_problems(cli, line)
    except ValueError as exc:
        pytest.skip(f"shlex cannot split this line ({exc}): {line}")
    assert not problems, f"{line}\n" + "\n".join(problems)


SAMPLE = """# Title

## A section: `--json` output

[fine](#a-section---json-output) [missing file](no-such-page.md) [missing anchor](#nowhere)
[web](https://example.com) `[in code](nowhere.md)`

```bash
modomo transform --no-such-option x
modomo transform photos/ --style=boho --out out/ \\
    --bogus-flag
modomo nosuchcommand --json
modomo models download sd15 --fast > log.txt
```

```text
modomo run
$ modomo styles --jsn
```
"""


def test_the_link_checker_finds_broken_links(tmp_path: Path):
    problems = link_problems(tmp_path / "page.md", SAMPLE)
    assert len(problems) == 2, problems
    assert "no-such-page.md" in problems[0]
    assert "#nowhere" in problems[1]


def test_slugs_follow_github():
    assert slug("Catalogue runs: a manifest in, an index out") == "catalogue-runs-a-manifest-in-an-index-out"
    assert slug("`--room auto`") == "--room-auto"
    assert slug("R2 (or any S3)") == "r2-or-any-s3"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_the_command_checker_finds_invented_options_and_subcommands(cli):
    lines = dict(command_lines(SAMPLE))
    assert sorted(lines) == [9, 10, 12, 13, 18], lines
    assert command_problems(cli, lines[9]) == ["modomo transform: no option --no-such-option"]
    assert command_problems(cli, lines[10]) == ["modomo transform: no option --bogus-flag"]
    assert "no subcommand 'nosuchcommand'" in command_problems(cli, lines[12])[0]
    assert command_problems(cli, lines[13]) == []
    assert command_problems(cli, lines[18]) == ["modomo styles: no option --jsn"]


def test_unsplittable_lines_are_reported():
    with pytest.raises(ValueError):
        modomo_args("modomo transform 'unclosed")
