"""Which done job owns each output name, and whether an input is that job under another path.

A job is known by its input's identity (`Item.identity`: the root resolved to one form, plus the key). The same
folder named another way still has one identity; moved or renamed, it has another, but its jobs write the same
names. So when a job would write a name that another identity's done job wrote, the input's bytes decide: the
same bytes are the same job (it resumes, and the journal learns its new place), other bytes are a collision,
refused in one line before any model loads, never an overwrite. Journal lines written before content digests were
kept (`source`) match on what they have: the input's size and modification time (`version`).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable

from pipeline.frames import Item

VARIATION = re.compile(r"\.v\d+$")
WAY_OUT = "name them apart with --name '{root}/{parent}/{stem}.{style}' or write to another --out"


def content_digest(data: bytes) -> str:
    """What an input's bytes are: the first 16 hex digits of their SHA-256 (journal `source`)."""
    return hashlib.sha256(data).hexdigest()[:16]


def entry_stem(entry: dict) -> str | None:
    """The output stem a journal line's job writes (`dir/name.style`): recorded as `stem`, or, on lines written
    before it was, its result's name without the extension (and the `.vN` of a job with variations)."""
    if entry.get("stem"):
        return entry["stem"]
    result = (entry.get("outputs") or {}).get("result")
    if not result:
        return None
    stem = posixpath.splitext(result)[0]
    return VARIATION.sub("", stem) if len(entry.get("variations") or []) > 1 else stem


class Owners:
    """The latest finished line naming each output stem, and the inputs' digests (each input read at most once,
    and only when a decision needs its bytes)."""

    def __init__(self, lines: Iterable[dict]):
        self.by_stem: dict[str, dict] = {}
        for entry in lines:  # in the order written: the latest line naming a stem owns it
            stem = entry_stem(entry)
            if stem:
                self.by_stem[stem] = entry
        self.digests: dict[str, str | None] = {}

    def digest(self, item: Item) -> str | None:
        """The input's content digest; None when it cannot be read (the run says why when it reads it)."""
        if item.identity not in self.digests:
            try:
                self.digests[item.identity] = content_digest(item.read())
            except OSError:
                self.digests[item.identity] = None
        return self.digests[item.identity]

    def current(self, entry: dict, item: Item) -> bool:
        """Whether a journal line was made from this input as it is now: the same size and time, else (a copy, a
        touched file) the same bytes when the line has their digest."""
        if entry.get("version") is not None and entry.get("version") == item.version:
            return True
        return bool(entry.get("source")) and entry["source"] == self.digest(item)

    def claim(self, item: Item, stem: str) -> tuple[dict | None, str | None]:
        """Whose done job the name `stem` is, as (another identity's line, what this job is to it): `same` when this
        input is that job, moved or named another way (the same bytes); `edited` when it is that job's manifest row
        with other cells (redone, replacing it); `collision` when this input is another photo (the line is None and
        the reason is given); (None, None) when the name is this job's own, or nobody's."""
        entry = self.by_stem.get(stem)
        if entry is None or entry.get("id") == item.identity:
            return None, None
        if item.job is not None and not str(entry.get("id", "")).endswith(f"#{item.job.digest}"):
            return entry, "edited"
        if self.current(entry, item):
            return entry, "same"
        other = entry.get("input") or entry.get("id")
        return None, (
            f"{item.display}: its result {stem} is already {other}'s, a different photo of the same name; "
            f"not overwritten ({WAY_OUT})"
        )


def moved_line(entry: dict, item: Item, owners: Owners) -> dict:
    """The journal line that records a done job at its input's new place: the job's line under the new identity,
    with the identity it replaces (`was`); the index and later runs know the job by its new place."""
    source = entry.get("source") or owners.digests.get(item.identity)
    return {
        **entry,
        "id": item.identity,
        "key": item.key,
        "input": item.display,
        "version": item.version,
        **({"source": source} if source else {}),
        "was": entry["id"],
    }
