"""`--manifest FILE`: a catalogue as one job per row (`.csv` with a header, or `.jsonl`).

Columns: `input` (relative to the manifest's folder, absolute, or an r2:// / s3:// URI) and, each
optional, `style` (one or several, comma-separated), `room`, `prompt` (words added to the style's
prompt), `negative_prompt` (words added to the style's negative prompt), `seed`, `preserve`, `mask`
(a keep mask, relative to the manifest's folder), `name` (the output name without extension),
`variations` (results per job), `style_ref` (a reference photo for the look, relative to the
manifest's folder, absolute or r2://), `set` (a room set: its rows share a seed and follow the set's
first row's result), `mode` (restyle, declutter or stage: a declutter row leaves `style` blank, its result is
named `empty`; a stage row furnishes the room in its style), `remove` (what a declutter row takes out; implies
declutter). An empty cell takes the command's option. A job's identity is its row's content, not its position:
editing a row redoes that row alone, and the same photo on two rows is two jobs.

A file that cannot be read, a missing `input` column, an unknown column or a row naming an unknown
style is a usage error before any model loads; any other bad row fails its job alone with "manifest
line N: reason", reported under the row's own style(s). A row that repeats another is one job, and the
run says so.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.errors import UsageError
from pipeline.frames import Item
from pipeline.inputs.sources import file_version
from pipeline.r2 import Remote, is_remote
from styles import EMPTY, MODES, ROOMS, did_you_mean, room_name, style_name

COLUMNS = (
    "input",
    "style",
    "room",
    "prompt",
    "negative_prompt",
    "seed",
    "preserve",
    "mask",
    "name",
    "variations",
    "style_ref",
    "set",
    "mode",
    "remove",
)
MAX_VARIATIONS = 16


@dataclass(frozen=True)
class Job:
    """What one manifest row asks beyond the command's options (None or "": the command's)."""

    line: int
    digest: str  # of the row's content: the job's identity
    styles: tuple[str, ...] | None = None
    room: str | None = None
    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None
    preserve: frozenset[str] | None = None
    mask: str | None = None
    name: str | None = None
    variations: int | None = None  # results per job (--variations)
    error: str | None = None  # a bad row: its job fails with this, the others go on
    style_ref: str | None = None  # the row's reference photo: a path (resolved) or an r2:// URI
    set: str | None = None  # the room set the row belongs to (pipeline.inputs.sets)
    mode: str | None = None  # restyle or declutter (styles.MODES); None: the command's
    remove: frozenset[str] | None = None  # a declutter row's own --remove (resolved labels)
    reference: Any = field(default=None, compare=False, repr=False)  # the style_ref, read once (the plan)
    # The row's identity were its style_ref empty: a set's later row that repeats its set's own reference is that
    # row (pipeline.run.plan.row_references), so adding the repeat to a manifest redoes nothing.
    digest_without_ref: str | None = field(default=None, compare=False, repr=False)

    def fail(self, reason: str) -> str:
        return f"manifest line {self.line}: {reason}"


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, cells) per row; a usage error for an unreadable file or a bad header."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--manifest {path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() == ".jsonl":
        return _jsonl_rows(path, text)
    if path.suffix.lower() != ".csv":
        raise UsageError(f"--manifest {path}: expected a .csv (with a header) or a .jsonl file")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    _check_columns(path, reader.fieldnames or [])
    rows = []
    for row in reader:
        cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if any(cells.values()):
            rows.append((reader.line_num, cells))
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    rows, seen = [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            rows.append((number, {"__error__": "not a JSON object"}))
            continue
        seen.update(data)
        rows.append(
            (
                number,
                {
                    k: "" if v is None else str(v).strip() if not isinstance(v, list) else ",".join(map(str, v))
                    for k, v in data.items()
                },
            )
        )
    _check_columns(path, sorted(seen), need_input=bool(rows))
    return rows


def _check_columns(path: Path, names: list[str], need_input: bool = True) -> None:
    if need_input and "input" not in names:
        raise UsageError(f"--manifest {path}: no 'input' column; columns are {', '.join(COLUMNS)}")
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise UsageError(f"--manifest {path}: unknown column {unknown[0]!r}; columns are {', '.join(COLUMNS)}")


def row_digest(cells: dict) -> str:
    """The job's identity: a hash of its non-empty cells, in column order."""
    canonical = json.dumps({k: cells[k] for k in COLUMNS if cells.get(k)}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def make_job(line: int, cells: dict, known_styles, resolve_labels, resolve_remove=None) -> Job:
    """A Job from one row's cells; a bad cell becomes the job's error, not an exception."""
    job = Job(line, row_digest(cells))
    error = cells.get("__error__") or ("no input" if not cells.get("input") else None)
    mode, remove, bad = row_mode(cells, resolve_remove)
    error = error or bad
    styles = tuple(style_name(s) or s.strip() for s in cells.get("style", "").split(",") if s.strip()) or None
    seed = None
    if cells.get("seed"):
        try:
            seed = int(cells["seed"])
            if not 0 <= seed < 2**32:
                raise ValueError
        except ValueError:
            error = error or f"seed {cells['seed']!r} is not a whole number from 0 to 4294967295"
    unknown = [s for s in styles or () if not known_styles(s)]
    if unknown:  # a typo in a style would fail every row that has it: the whole manifest is refused
        raise UsageError(f"line {line}: unknown style {unknown[0]!r}{did_you_mean(unknown[0])} (see `modomo styles`)")
    if mode == "declutter":
        styles = (EMPTY,)  # a declutter's results are named `empty` (its style cell is blank: row_mode)
    room = room_name(cells["room"]) if cells.get("room") else None
    if cells.get("room") and room is None:
        error = error or f"room {cells['room']!r}: choose auto or one of {', '.join(ROOMS)}"
    preserve = None
    if cells.get("preserve"):
        try:
            preserve = frozenset(resolve_labels(cells["preserve"]))
        except UsageError as exc:
            error = error or str(exc).replace("--preserve ", "preserve ")
    variations, bad = parse_variations(cells.get("variations"))
    error = error or bad
    return Job(
        line,
        job.digest,
        styles,
        room,
        cells.get("prompt", ""),
        cells.get("negative_prompt", ""),
        seed,
        preserve,
        cells.get("mask") or None,
        cells.get("name") or None,
        variations,
        job.fail(error) if error else None,
        cells.get("style_ref") or None,
        " ".join(cells.get("set", "").split()) or None,
        mode,
        remove,
        digest_without_ref=row_digest({**cells, "style_ref": ""}) if cells.get("style_ref") else None,
    )


def row_mode(cells: dict, resolve_remove) -> tuple[str | None, frozenset | None, str | None]:
    """A row's mode (None: the command's), its `remove` labels, and why the row is bad, if it is. An unknown mode
    is a usage error for the whole manifest (as an unknown style is): every row naming it would fail."""
    mode = cells.get("mode", "").strip().lower() or ("declutter" if cells.get("remove") else None)
    if mode is not None and mode not in MODES:
        raise UsageError(f"unknown mode {cells['mode']!r}; choose one of {', '.join(MODES)}")
    if cells.get("remove") and mode != "declutter":
        return mode, None, f"remove takes things out of the room: it goes with mode declutter, not {mode}"
    if mode == "declutter" and cells.get("style"):
        return mode, None, "a declutter row leaves style blank: its result is named `empty`"
    if not cells.get("remove"):
        return mode, None, None
    try:
        return mode, frozenset(resolve_remove(cells["remove"])), None
    except UsageError as exc:
        return mode, None, str(exc).replace("--remove ", "remove ")


def parse_variations(cell) -> tuple[int | None, str | None]:
    """A row's `variations` cell: (count, None), (None, None) when empty, or (None, the reason it is bad)."""
    if cell in (None, ""):
        return None, None
    try:
        count = int(str(cell))
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_VARIATIONS:
        return None, f"variations {cell!r} is not a whole number from 1 to {MAX_VARIATIONS}"
    return count, None


def job_item(job: Job, cell: str, folder: Path, remote: Remote) -> Item:
    """The Item a row restyles: its input found relative to the manifest's folder, or absolute, or in R2."""
    if is_remote(cell):
        location = remote.location(cell)
        key = location.prefix.rstrip("/")
        root = f"r2://{location.bucket}/{key.rpartition('/')[0]}"
        return Item(
            PurePosixPath(key).name,
            None,
            root,
            f"r2://{location.bucket}/{key}",
            partial(remote.get, location.bucket, key),
            None,
            job,
        )
    path = Path(cell).expanduser()
    relative = os.path.normpath(cell).replace(os.sep, "/")
    if path.is_absolute() or relative.startswith("../"):  # outside the manifest's folder: named by its file
        full = Path(os.path.normpath(path if path.is_absolute() else folder / path))
        return Item(full.name, full, full.parent, version=file_version(full), job=job)
    full = folder / relative
    return Item(PurePosixPath(relative).as_posix(), full, folder, version=file_version(full), job=job)


def manifest_items(
    path: str | Path, remote: Remote, known_styles, resolve_labels, warn=None, resolve_remove=None
) -> list[Item]:
    """One Item per row (R2 rows' versions fetched in parallel); a row that repeats another is one job with it,
    and `warn` is told so."""
    path = Path(path).expanduser()
    folder = path.parent
    items, seen = [], {}
    for line, cells in read_rows(path):
        try:
            job = make_job(line, cells, known_styles, resolve_labels, resolve_remove)
        except UsageError as exc:
            raise UsageError(f"--manifest {path}: {exc}") from None
        if job.mask and not Path(job.mask).expanduser().is_absolute():
            job = replace(job, mask=str(folder / job.mask))
        if job.style_ref and not is_remote(job.style_ref) and not Path(job.style_ref).expanduser().is_absolute():
            job = replace(job, style_ref=os.path.normpath(folder / job.style_ref))
        if job.digest in seen:
            if warn is not None:
                warn(f"manifest line {line} repeats line {seen[job.digest]}: one job")
            continue
        seen[job.digest] = line
        items.append(job_item(job, cells.get("input", "") or f"line-{line}", folder, remote))
    remote_items = [i for i, item in enumerate(items) if item.uri]
    if remote_items:
        with ThreadPoolExecutor(16) as pool:
            tags = pool.map(lambda i: _etag(remote, items[i]), remote_items)
            for i, tag in zip(remote_items, tags, strict=True):
                items[i] = _with_version(items[i], tag)
    return items


def _etag(remote: Remote, item: Item) -> str | None:
    location = remote.location(item.uri)
    return remote.etag(location.bucket, location.prefix.rstrip("/"))


def _with_version(item: Item, tag: str | None) -> Item:
    if tag is None and item.job.error is None:
        return replace(item, job=replace(item.job, error=item.job.fail(f"no such object {item.uri}")))
    return replace(item, version=tag)
