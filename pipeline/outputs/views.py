"""The output as a whole, for the files a client sees (report, contact sheet): every job it holds with its
latest result, from the journal, whichever run, shard or engine made it; totals over those jobs; and the
history of the runs that made it. Never the last run alone, and no internal state (nothing is "skipped"
in an output: a job is done or it failed)."""

from __future__ import annotations

import re

from pipeline.errors import ImageError, ModomoError
from pipeline.outputs.history import runs
from pipeline.outputs.index import latest_jobs
from pipeline.outputs.journal import Journal
from pipeline.outputs.records import ImageRecord
from pipeline.stages.timing import STAGES


def natural(text: str) -> list:
    """A sort key that puts room-2 before room-10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def input_name(record: dict) -> str:
    return record.get("key") or record.get("input") or ""


def set_anchors(records: list[dict]) -> dict[str, str]:
    """Each room set's anchor key: its anchor job's, else what its members name as their reference, else its first."""
    anchors: dict[str, str] = {}
    for record in records:
        if record.get("set") and record.get("anchor"):
            anchors.setdefault(record["set"], input_name(record))
    for record in sorted((r for r in records if r.get("set")), key=lambda r: natural(input_name(r))):
        anchors.setdefault(record["set"], (record.get("reference") or {}).get("source") or input_name(record))
    return anchors


def input_order(records: list[dict]):
    """A job's input's sort key: its key, but a room set's inputs together where its anchor sorts, the anchor first."""
    anchors = set_anchors(records)

    def key(record: dict) -> tuple:
        own = natural(input_name(record))
        name = record.get("set")
        if not name:
            return own, "", False, own
        return natural(anchors[name]), name, input_name(record) != anchors[name], own

    return key


def job_records(sink, style_order: list[str] | None = None) -> list[dict]:
    """Every job of the output (latest line per job and style), outputs located, by input (see `input_order`), then by
    style: in its manifest row's order (the line's `order`), else in `style_order` (styles it does not name after
    those, by name)."""
    entries = latest_jobs(Journal(sink).entries())
    styles = list(dict.fromkeys([*(style_order or []), *sorted(e.get("style") or "" for e in entries)]))
    records = [ImageRecord.from_entry(e, sink.locate).to_json() for e in entries]
    ranks = [e.get("order", styles.index(e.get("style") or "")) for e in entries]
    by_input = input_order(records)
    ordered = sorted(zip(records, ranks, strict=True), key=lambda pair: (by_input(pair[0]), pair[1]))
    return [record for record, _ in ordered]


def stage_means(history: list[dict]) -> dict[str, dict[str, float]]:
    """Mean seconds per job by stage over the runs that did work (each run weighted by its jobs), in pipeline
    order, with each stage's share of the total."""
    weights: dict[str, float] = {}
    totals: dict[str, float] = {}
    for run in history:
        for stage, mean in (run.get("stages") or {}).items():
            totals[stage] = totals.get(stage, 0.0) + mean * run.get("jobs", 0)
            weights[stage] = weights.get(stage, 0.0) + run.get("jobs", 0)
    means = {s: totals[s] / weights[s] for s in totals if weights[s] > 0}
    order = [s for s in STAGES if s in means] + sorted(set(means) - set(STAGES))
    grand = sum(means.values()) or 1.0
    return {s: {"mean": means[s], "share": means[s] / grand} for s in order}


def totals(records: list[dict], history: list[dict]) -> dict:
    """The output's counts, quality and cost: jobs from the journal, time and cost from the history."""
    ok = [r for r in records if r["status"] == "ok"]
    scored = [r for r in ok if r.get("quality") is not None]
    seconds = sum(run.get("seconds", 0.0) for run in history)
    made = sum(run.get("jobs", 0) for run in history)
    processed = made + sum(run.get("failed", 0) for run in history)
    cost = sum(run.get("cost", 0.0) for run in history)
    return {
        "counts": {
            "ok": len(ok),
            "failed": len(records) - len(ok),
            "skipped": 0,
            "results": sum(max(1, len(r.get("variations") or [])) for r in ok),
        },
        "quality": {
            "mean": sum(r["quality"] for r in scored) / len(scored) if scored else None,
            "success_rate": sum(bool(r.get("passed")) for r in scored) / len(scored) if scored else None,
        },
        "images_per_minute": 60.0 * made / seconds if seconds > 0 else 0.0,
        "cost": {
            "currency": history[-1].get("currency", "USD") if history else "USD",
            "total": cost,
            "per_image": cost / processed if processed else 0.0,
        },
    }


def makers(history: list[dict]) -> list[dict]:
    """The runs that made the results, oldest first; where none made one, those that tried (and failed). Never a
    rerun that found everything done: it made nothing."""
    made = [run for run in history if run.get("jobs", 0) > 0]
    return made or [run for run in history if run.get("failed", 0) > 0]


def made_on(history: list[dict]) -> str:
    """The devices of the runs that made the results, each once, the latest first."""
    return ", ".join(dict.fromkeys(run["device"] for run in reversed(makers(history)) if run.get("device")))


def output_summary(sink) -> dict:
    """What the report and the contact sheet show: the summary of the whole output, shaped like a run's. Its
    settings and device are those of the runs that made the results, never of a later rerun that found them done."""
    history = runs(sink)
    latest = history[-1] if history else {}
    maker = (makers(history) or [latest])[-1]
    records = job_records(sink, latest.get("styles"))
    return {
        "images": records,
        **totals(records, history),
        "stages": stage_means(history),
        "history": history,
        "settings": maker.get("settings", {}),
        "styles": {
            "names": list(dict.fromkeys([*latest.get("styles", []), *(r["style"] for r in records if r["style"])]))
        },
        "device": made_on(history),
    }


def add_input_previews(records: list[dict], items: list, sink, long_side: int) -> None:
    """Give each done job without its input preview (an output made without --report, --contact-sheet or
    --save-controls) its photo's `<photo>.input.jpg`: found in the output, else written from the photo as a run
    writes it (decoded upright, at the working size; no model). A job whose photo is gone keeps none: the report
    says "before not kept". The records change in place, the journal does not."""
    wanted = [r for r in records if r.get("status") == "ok" and not (r.get("outputs") or {}).get("input")]
    if not wanted:
        return
    from pipeline.outputs.names import photo_stems

    by_id = {item.identity: item for item in items}
    stems = photo_stems(items)
    found: dict[str, str | None] = {}
    for record in wanted:
        item = by_id.get(record.get("id"))
        if item is None:
            continue
        if item.identity not in found:
            found[item.identity] = input_preview(item, stems[item], sink, long_side)
        if found[item.identity]:
            record["outputs"] = {**(record.get("outputs") or {}), "input": found[item.identity]}


def input_preview(item, photo: str, sink, long_side: int) -> str | None:
    """The location of the photo's input preview: the one the output has, else one written now; None when the
    photo cannot be read or decoded."""
    from pipeline.outputs.names import PHOTO_MAPS
    from pipeline.outputs.writer import working_image, write_input_preview

    relative = photo + PHOTO_MAPS["input"][1]
    try:
        if sink.size(relative):  # already there: a HEAD on R2, not a download
            return sink.locate(relative)
        return write_input_preview(sink, photo, working_image(item.read(), item.display, long_side))
    except (OSError, ImageError, ModomoError):
        return None
