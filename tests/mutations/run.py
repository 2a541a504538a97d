"""Re-check the mutation checklist (tests/mutations/checklist.toml): each entry's break is put into a copy of the
repository, and the tests it names must then fail.

The repository's files (tracked, and untracked ones git does not ignore) are copied once per run into a
temporary folder T as T/main, with T/shared linked to the `shared` folder beside the repository, so the copy
sits as the repository does (the tests compare their room photos with `../shared/rooms`). For each entry the
file is broken, `python -m pytest -q -x -p no:cacheprovider TESTS` runs in the copy, and the file is put back
before the next.

Verdicts, one line per entry:
  PASS     pytest exited 1 (tests failed): the break is caught
  MISSED   pytest exited 0: every named test passed with the break in
  ERROR    any other exit (no test run, a collection error, a timeout), or `find` is not exactly once in the file

With --baseline the named tests run on the unbroken copy instead, and PASS means they passed (exit 0).

    python tests/mutations/run.py --list
    python tests/mutations/run.py --only bench-faster-slower-swapped prune-current-names-not-excluded
    python tests/mutations/run.py --baseline --only bench-faster-slower-swapped

Exit status: 0 when every entry run is PASS, 1 otherwise, 2 for a bad checklist or an unknown name.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHECKLIST = HERE / "checklist.toml"
KEYS = ("name", "issue", "file", "find", "replace", "test")
PYTEST = ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]


@dataclass(frozen=True)
class Mutation:
    """One checklist entry: put `replace` where `find` is in `file`, and `tests` must fail."""

    name: str
    issue: int
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]


@dataclass
class Outcome:
    """What became of one entry: its verdict, pytest's exit status (None when pytest did not run), why, time."""

    verdict: str
    code: int | None
    reason: str
    seconds: float


def fail(message: str) -> NoReturn:
    """A usage problem: one line on stderr, exit 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_checklist(path: Path) -> list[Mutation]:
    """The checklist's entries, each checked for its keys and types (exit 2 naming what is wrong)."""
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8")).get("mutation", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        fail(f"{path}: {exc}")
    entries, seen = [], set()
    for number, table in enumerate(tables, start=1):
        missing = [key for key in KEYS if key not in table]
        if missing:
            fail(f"{path}: mutation {number} lacks {', '.join(missing)}")
        tests = table["test"] if isinstance(table["test"], list) else [table["test"]]
        if not tests or not all(isinstance(test, str) and test for test in tests):
            fail(f"{path}: mutation {table['name']!r}: test must name one node id or more")
        if table["name"] in seen:
            fail(f"{path}: mutation name {table['name']!r} is used twice")
        seen.add(table["name"])
        entries.append(
            Mutation(table["name"], int(table["issue"]), table["file"], table["find"], table["replace"], tuple(tests))
        )
    return entries


def select(entries: list[Mutation], names: list[str] | None) -> list[Mutation]:
    """The entries named (in the order given), or all of them (exit 2 for a name the checklist lacks)."""
    if not names:
        return entries
    by_name = {entry.name: entry for entry in entries}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        fail(f"not in the checklist: {', '.join(unknown)} (see --list)")
    return [by_name[name] for name in dict.fromkeys(names)]


def repository_files(repo: Path) -> list[str]:
    """The files a checkout holds: tracked ones and untracked ones git does not ignore (relative paths)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, capture_output=True, check=True
    ).stdout.decode("utf-8", "surrogateescape")
    return sorted({name for name in listed.split("\0") if name})


def copy_repository(repo: Path, into: Path) -> Path:
    """Copy the repository's files into `into`/main and link `into`/shared to the `shared` folder beside the
    repository (when there is one); returns the copy's root."""
    root = into / "main"
    for name in repository_files(repo):
        source = repo / name
        if not source.is_file() and not source.is_symlink():  # deleted in the working tree
            continue
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    shared = repo.parent / "shared"
    if shared.exists():
        (into / "shared").symlink_to(shared.resolve(), target_is_directory=True)
    return root


def pytest_env(root: Path) -> dict[str, str]:
    """The environment the tests run in: the copy's packages first (subprocesses too: device workers, Ray
    actors), and no bytecode written, so a restored file is never served from a stale cache."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_pytest(python: str, root: Path, tests: tuple[str, ...], log: Path, timeout: float | None) -> int | None:
    """pytest over `tests` in the copy, its output written to `log`; its exit status, None on a timeout."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [python, *PYTEST, *tests],
            cwd=root,
            env=pytest_env(root),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # pytest and what it started, nothing else
            process.wait()
            return None


def verdict(code: int | None, baseline: bool) -> tuple[str, str]:
    """The verdict for pytest's exit status, and a few words on it."""
    if code is None:
        return "ERROR", "timed out"
    if baseline:
        return ("PASS", "tests pass unbroken") if code == 0 else ("ERROR", f"pytest exit {code} unbroken")
    if code == 1:
        return "PASS", "caught"
    if code == 0:
        return "MISSED", "every test passed with the break in"
    return "ERROR", f"pytest exit {code}"


def check(entry: Mutation, root: Path, options, log: Path) -> Outcome:
    """Break the entry's file in the copy (unless --baseline), run its tests, put the file back."""
    start = time.monotonic()
    path = root / entry.file
    try:
        original = path.read_bytes()
    except OSError as exc:
        return Outcome("ERROR", None, f"cannot read {entry.file}: {exc.strerror or exc}", 0.0)
    text = original.decode("utf-8")
    found = text.count(entry.find)
    if found != 1:
        return Outcome("ERROR", None, f"find occurs {found} times in {entry.file}, not once", 0.0)
    if not options.baseline:
        path.write_text(text.replace(entry.find, entry.replace), encoding="utf-8")
    try:
        code = run_pytest(options.python, root, entry.tests, log, options.timeout)
    finally:
        path.write_bytes(original)
    word, reason = verdict(code, options.baseline)
    return Outcome(word, code, reason, time.monotonic() - start)


def list_entries(entries: list[Mutation]) -> None:
    for entry in entries:
        tests = ", ".join(entry.tests)
        print(f"{entry.name}  (issue {entry.issue})  {entry.file}  ->  {tests}")
    print(f"{len(entries)} mutations")


def run_all(entries: list[Mutation], options) -> int:
    """Check every entry in one copy of the repository; print a line each and a summary; the exit status."""
    scratch = Path(tempfile.mkdtemp(prefix="modomo-mutations-"))
    counts = {"PASS": 0, "MISSED": 0, "ERROR": 0}
    try:
        root = copy_repository(REPO, scratch)
        logs = scratch / "logs"
        logs.mkdir()
        mode = "baseline (unbroken)" if options.baseline else "mutations"
        print(f"{len(entries)} {mode} in {root}", flush=True)
        for entry in entries:
            log = logs / f"{entry.name}.log"
            outcome = check(entry, root, options, log)
            counts[outcome.verdict] += 1
            where = f"; log {log}" if outcome.verdict != "PASS" and options.keep else ""
            print(
                f"{outcome.verdict:<6}  {entry.name}  (issue {entry.issue}, {outcome.seconds:.1f} s): "
                f"{outcome.reason}{where}",
                flush=True,
            )
            if outcome.verdict != "PASS" and not options.keep and log.exists():
                print(indent_tail(log), flush=True)
    finally:
        if options.keep:
            print(f"copy and logs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"summary: {counts['PASS']} pass, {counts['MISSED']} missed, {counts['ERROR']} error of {len(entries)}")
    return 0 if counts["PASS"] == len(entries) else 1


def indent_tail(log: Path, lines: int = 15) -> str:
    """The last lines of a pytest log, indented, to show why an entry was not a PASS."""
    tail = log.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()[-lines:]
    return "\n".join("        " + line for line in tail)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these entries (by name)")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    parser.add_argument("--baseline", action="store_true", help="run the tests unbroken: they must pass")
    parser.add_argument("--checklist", type=Path, default=CHECKLIST, help="the checklist (TOML)")
    default_python = REPO / ".venv" / "bin" / "python"
    parser.add_argument(
        "--python",
        default=str(default_python) if default_python.exists() else sys.executable,
        help="the interpreter that runs pytest (default: the repository's .venv)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per entry before it is an ERROR")
    parser.add_argument("--keep", action="store_true", help="keep the copy and the pytest logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    entries = select(load_checklist(options.checklist), options.only)
    if options.list:
        list_entries(entries)
        return 0
    return run_all(entries, options)


if __name__ == "__main__":
    sys.exit(main())
