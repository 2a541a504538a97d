"""What a run still has to do, from the output's journal, read once before any model loads: a rerun whose
every job is done ends in about a second, under every engine, with the same summary a run that loaded the
models would print."""

from __future__ import annotations

from pipeline.frames import Item
from pipeline.outputs.records import ImageRecord
from pipeline.run.cost import resolve_price
from pipeline.run.hooks import Hooks
from pipeline.run.plan import RunPlan
from pipeline.run.result import RunResult


def finished(plan: RunPlan) -> dict:
    """The journal's finished jobs (read once per run and kept), or nothing when the run redoes everything."""
    if not plan.config.resume or plan.config.overwrite:
        return {}
    return plan.journal.load()


def split(plan: RunPlan) -> tuple[dict[str, list[str]], list[ImageRecord]]:
    """Per input still to do, its styles still to do; and a `skipped` record for every job the journal has
    finished with this run's settings and the input's current version."""
    return split_items(plan.items, plan.styles_for, plan.result_hashes(), finished(plan), plan.sink.locate)


def split_items(
    items: list[Item], styles_for, hashes: dict[str, str], done: dict, locate
) -> tuple[dict[str, list[str]], list[ImageRecord]]:
    """The one test of what is done, for the plan and for a Runner: a job (input, style) is done when the
    journal has it with the style's settings hash and the input's current version, and, for a room set's later
    photo, its anchor is done too and is still the result it followed (a redone or changed anchor redoes its set)."""
    todo: dict[str, list[str]] = {}
    skipped: list[ImageRecord] = []
    for item in sorted(items, key=lambda i: bool(i.anchor)):  # anchors decided before the photos that follow them
        for style in styles_for(item):
            entry = done.get((item.identity, hashes[style]))
            if job_done(item, style, entry, done.get((item.anchor, hashes[style])) if item.anchor else None, todo):
                skipped.append(ImageRecord.from_journal(item, style, entry, "skipped", locate))
            else:
                todo.setdefault(item.identity, []).append(style)
    order = {item.identity: n for n, item in enumerate(items)}
    skipped.sort(key=lambda record: order[record.id])
    return dict(sorted(todo.items(), key=lambda pair: order[pair[0]])), skipped


def job_done(item: Item, style: str, entry: dict | None, anchor: dict | None, todo: dict) -> bool:
    """Whether one job is done (see `split_items`)."""
    if entry is None or entry.get("version") != item.version:
        return False
    if not item.anchor:
        return True
    followed = (entry.get("reference") or {}).get("digest")
    return (
        anchor is not None
        and style not in todo.get(item.anchor, [])
        and followed is not None
        and followed == anchor.get("digest")
    )


def nothing_to_do(plan: RunPlan, skipped: list[ImageRecord], hooks: Hooks) -> RunResult:
    """The result of a run whose every job the journal has: its skipped records, no model loaded."""
    hooks.on_event("start", total=len(skipped))
    result = RunResult(
        records=list(skipped),
        settings=plan.config.summary_settings(),
        price=resolve_price(None, plan.config.gpu_price, plan.config.currency),
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
