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
    """The set an input belongs to: its manifest row's `set`, else (--sets-by parent) the folder it is in, named
    as every machine names it (the input root's own folder name plus the folder inside it); photos directly in an
    input folder belong to none."""
    job = item.job
    if job is not None and getattr(job, "set", None):
        return job.set
    if sets_by == "parent" and "/" in item.key:
        return posixpath.dirname(item.name)
    return None


def set_place(item: Item, name: str) -> str:
    """Where a set is: a folder set by its canonical folder (two roots with the same folder name are two sets)."""
    job = item.job
    if job is not None and getattr(job, "set", None):
        return name
    return posixpath.dirname(item.canonical)


def assign_sets(items: list[Item], sets_by: str | None, recorded: dict[str, str] | None = None) -> list[Item]:
    """The items with their sets and anchors marked, in the same order. `recorded` is each set's anchor as the
    output's journal has it (set name -> the anchor's key): a set that has one keeps it, so a photo added later
    never displaces it, even one that sorts first."""
    groups: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    for index, item in enumerate(items):
        name = set_name(item, sets_by)
        if name:
            place = set_place(item, name)
            names[place] = name
            groups.setdefault(place, []).append(index)
    taken = list(names.values())
    marked = list(items)
    for place, members in groups.items():
        name = names[place] if taken.count(names[place]) == 1 else place  # one name, one set
        anchor = items[pick_anchor(items, members, (recorded or {}).get(name))]
        for i in members:
            marked[i] = replace(items[i], group=name, anchor=None if items[i] is anchor else anchor.identity)
    return marked


def pick_anchor(items: list[Item], members: list[int], recorded_key: str | None) -> int:
    """A set's anchor: the one the journal recorded when it is still among the set's photos and usable, else the
    first photo in the input order that is not already failed."""
    usable = [i for i in members if items[i].job is None or not items[i].job.error]
    if recorded_key is not None:
        for i in usable:
            if items[i].key == recorded_key:
                return i
    return usable[0] if usable else members[0]


def recorded_anchors(entries) -> dict[str, str]:
    """Each set's anchor as journal lines record it (the latest line that marks one): set name -> its key."""
    found: dict[str, str] = {}
    for entry in entries:
        if entry.get("set") and entry.get("anchor") is True and entry.get("key"):
            found[entry["set"]] = entry["key"]
    return found


def anchors_first(items: list[Item]) -> tuple[list[Item], list[Item]]:
    """The inputs in two passes: everything that follows no anchor, then the sets' other photos."""
    return [i for i in items if not i.anchor], [i for i in items if i.anchor]


def anchor_keys(items: list[Item]) -> dict[str, str]:
    """Each anchor's identity -> its key, for messages and metadata."""
    return {item.identity: item.key for item in items if item.group and not item.anchor}
