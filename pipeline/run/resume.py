"""What a run still has to do, from the output's journal, read once before any model loads: a rerun whose
every job is done ends in about a second, under every engine, with the same summary a run that loaded the
models would print."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.errors import ModomoError
from pipeline.frames import Item
from pipeline.outputs.records import ImageRecord
from pipeline.run.cost import resolve_price
from pipeline.run.hooks import Hooks
from pipeline.run.owners import Owners, moved_line
from pipeline.run.plan import RunPlan
from pipeline.run.result import RunResult


def finished(plan: RunPlan) -> dict:
    """The journal's finished jobs (read once per run and kept), or nothing when the run redoes everything."""
    if not plan.config.options.resume or plan.config.options.overwrite:
        return {}
    return plan.journal.load()


@dataclass
class Split:
    """What a run still has to do: per input, its styles still to do; a record for every job done or refused
    before any model loads (`skipped`, or `failed` for a name another photo's result holds); the done jobs found
    at a new place (their journal lines at it, to record); and, per job redone at a new place, the identity it
    replaces."""

    todo: dict[str, list[str]] = field(default_factory=dict)
    records: list[ImageRecord] = field(default_factory=list)
    moved: list[dict] = field(default_factory=list)
    was: dict[tuple[str, str], str] = field(default_factory=dict)


def split(plan: RunPlan) -> Split:
    """`split_items` over the plan's inputs, with the output names the plan gives them."""
    hashes = plan.result_hashes()
    stems = {style: plan.stems(style) for style in hashes}
    owners = Owners(plan.journal.lines())
    return split_items(plan.items, plan.styles_for, hashes, finished(plan), plan.sink, stems, owners)


def split_items(
    items: list[Item], styles_for, hashes: dict[str, str], done: dict, sink, stems: dict, owners: Owners
) -> Split:
    """The one test of what is done, for the plan and for a Runner: a job (input, style) is done when the journal
    has it, under its identity or (moved, named another way) under the identity whose line names its output and
    whose input had its bytes, with the style's settings hash and the input as it is now; for a room set's anchor,
    when its result is still in the output; for a set's later photo, when its anchor is done too and is still the
    result it followed (a redone or changed anchor redoes its set). A job whose output name is another photo's done
    result is refused."""
    result, aliases = Split(), {}
    for item in sorted(items, key=lambda i: bool(i.anchor)):  # anchors decided before the photos that follow them
        for style in styles_for(item):
            other, verdict = owners.claim(item, stems[style][item]) if not failed_row(item) else (None, None)
            if other is None and verdict:
                result.records.append(ImageRecord.failed(item, style, verdict))
                continue
            if verdict == "same":
                aliases[item.identity] = other["id"]
            entry = lookup(done, item.identity, hashes[style], aliases)
            anchor = lookup(done, item.anchor, hashes[style], aliases) if item.anchor else None
            if job_done(item, style, entry, anchor, result.todo, owners, sink):
                result.records.append(ImageRecord.from_journal(item, style, entry, "skipped", sink.locate))
                if entry["id"] != item.identity:
                    result.moved.append(moved_line(entry, item, owners))
            else:
                result.todo.setdefault(item.identity, []).append(style)
                if other is not None:
                    result.was[(item.identity, style)] = other["id"]
    order = {item.identity: n for n, item in enumerate(items)}
    result.records.sort(key=lambda record: order[record.id])
    result.todo = dict(sorted(result.todo.items(), key=lambda pair: order[pair[0]]))
    return result


def failed_row(item: Item) -> bool:
    """A manifest row that fails before any model loads: never matched with another job's line."""
    return item.job is not None and bool(item.job.error)


def lookup(done: dict, identity: str, settings: str, aliases: dict[str, str]) -> dict | None:
    """The journal's line for a job: under the input's identity, else under the one it had before it moved."""
    entry = done.get((identity, settings))
    if entry is None and identity in aliases:
        entry = done.get((aliases[identity], settings))
    return entry


def job_done(item: Item, style: str, entry: dict | None, anchor: dict | None, todo: dict, owners, sink) -> bool:
    """Whether one job is done (see `split_items`)."""
    if entry is None or failed_row(item) or not owners.current(entry, item):
        return False
    if not item.anchor:
        return not item.group or anchor_result_kept(entry, sink)
    followed = (entry.get("reference") or {}).get("digest")
    return (
        anchor is not None
        and style not in todo.get(item.anchor, [])
        and followed is not None
        and followed == anchor.get("digest")
    )


def anchor_result_kept(entry: dict, sink) -> bool:
    """Whether a room set's anchor's result is still in the output: its set's other photos follow that file, so
    an anchor whose result is gone is rendered again (and its set with it)."""
    result = (entry.get("outputs") or {}).get("result")
    try:
        return bool(result) and sink.size(result) is not None
    except (OSError, ModomoError):
        return False


def nothing_to_do(plan: RunPlan, skipped: list[ImageRecord], hooks: Hooks) -> RunResult:
    """The result of a run whose every job the journal has: its skipped records, no model loaded."""
    hooks.on_event("start", total=len(skipped))
    result = RunResult(
        records=list(skipped),
        settings=plan.config.summary_settings(),
        price=resolve_price(None, plan.config.options.gpu_price, plan.config.options.currency),
    )
    result.sort(plan.items, [s.name for s in plan.config.styles])
    for record in result.records:
        hooks.on_event("done", record=record)
    result.extra.update(
        engine=plan.engine,
        models=plan.config.result_models(plan.spec),
        loaded=False,
        device={"type": "none", "name": "none: nothing to do"},
        journal_reads=plan.journal.loads,
    )
    return result
