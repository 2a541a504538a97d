"""Room sets: several photos of one room restyled as one look. A set's photos share its seed; its first photo (the
anchor) is rendered first and its chosen result is the reference of the others. A set is never split: shards,
device workers and Ray actors take it whole (`Item.group_key`).

A manifest row names its set in the `set` column; `--sets-by parent` makes each folder of photos a set. The
anchor is the set's first photo in the input order (the manifest's rows, or the folder's sorted files) that is
not already failed.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace

from pipeline.errors import UsageError
from pipeline.frames import Item

SETS_BY = ("parent",)


def check_sets_by(value: str | None) -> str | None:
    """--sets-by: parent, or a usage error in one line."""
    if value is None:
        return None
    text = value.strip().lower()
    if text not in SETS_BY:
        raise UsageError(f"--sets-by {value!r}: choose parent (each folder of photos is one room set)")
    return text


def set_name(item: Item, sets_by: str | None) -> str | None:
    """The set an input belongs to: its manifest row's `set`, else (--sets-by parent) the folder it is in, as
    named; photos directly in an input folder belong to none."""
    job = item.job
    if job is not None and getattr(job, "set", None):
        return job.set
    if sets_by == "parent" and "/" in item.key:
        return posixpath.dirname(item.location)
    return None


def assign_sets(items: list[Item], sets_by: str | None) -> list[Item]:
    """The items with their sets and anchors marked, in the same order."""
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        name = set_name(item, sets_by)
        if name:
            groups.setdefault(name, []).append(index)
    marked = list(items)
    for name, members in groups.items():
        usable = [i for i in members if items[i].job is None or not items[i].job.error]
        anchor = items[usable[0] if usable else members[0]]
        for i in members:
            marked[i] = replace(items[i], group=name, anchor=None if items[i] is anchor else anchor.identity)
    return marked


def anchors_first(items: list[Item]) -> tuple[list[Item], list[Item]]:
    """The inputs in two passes: everything that follows no anchor, then the sets' other photos."""
    return [i for i in items if not i.anchor], [i for i in items if i.anchor]


def anchor_keys(items: list[Item]) -> dict[str, str]:
    """Each anchor's identity -> its key, for messages and metadata."""
    return {item.identity: item.key for item in items if item.group and not item.anchor}
