"""Run a plan on its engine, then write the views of the output the plan asks for (index, report, sheet).

The journal is read once, before any engine starts: a run with nothing left to do loads no model. Every run
adds a line to the output's history; the index, the report and the contact sheet are rebuilt from the whole
output (its journal and history), so they describe everything the output holds, not the last run alone.
"""

from __future__ import annotations

from pipeline.errors import ModomoError
from pipeline.run.hooks import Hooks
from pipeline.run.plan import RunPlan
from pipeline.run.result import RunResult


def engine_for(plan: RunPlan):
    """The engine's `run(plan, hooks)`."""
    if plan.engine == "devices":
        from pipeline.run.engines.devices import run
    elif plan.engine == "ray":
        from pipeline.run.engines.ray import run
    else:
        from pipeline.run.engines.local import run
    return run


def run(plan: RunPlan, hooks: Hooks | None = None) -> RunResult:
    """Run the plan on its engine (or on none, when the journal has every job), then record it."""
    from pipeline.run.events import fan_out, record_log_hook
    from pipeline.run.resume import nothing_to_do, split

    hooks = hooks or Hooks()
    hooks = Hooks(fan_out(hooks.on_event, record_log_hook()), hooks.on_model, hooks.notice)
    work = split(plan)
    if work.moved and not is_worker():
        record_moves(plan, work.moved, hooks)
    result = engine_for(plan)(plan, hooks) if work.todo else nothing_to_do(plan, work.records, hooks)
    if not result.fatal and not is_worker():
        record(plan, result, hooks, index=bool(work.todo or work.moved))
    return result


def record_moves(plan: RunPlan, lines: list[dict], hooks: Hooks) -> None:
    """Done jobs found at their input's new place, recorded there before any engine starts: workers, actors and
    later runs know them by it, and the index lists each once."""
    try:
        for line in lines:
            plan.journal.moved(line)
        plan.journal.flush()
    except (OSError, ModomoError) as exc:
        hooks.notice(f"journal: cannot record {len(lines)} moved job(s): {exc}")
        return
    hooks.notice(f"moved       {len(lines)} done job(s) found at a new place; recorded there, nothing redone")


def is_worker() -> bool:
    """Whether this process is one of a --devices run's workers: the parent records the run."""
    import os

    from pipeline.run.events import RECORD_LOG

    return bool(os.environ.get(RECORD_LOG))


def record(plan: RunPlan, result: RunResult, hooks: Hooks, index: bool) -> None:
    """The run into the output's history; the index rebuilt when the run wrote anything, and then what earlier
    settings left that it no longer lists (`modomo prune`)."""
    from pipeline.outputs.history import record_run
    from pipeline.outputs.index import write_index
    from pipeline.outputs.journal import Journal
    from pipeline.outputs.prune import stale_files, totals

    try:
        record_run(plan.sink, result.to_json())
        if not index:
            return
        entries = Journal(plan.sink).entries()
        result.extra["index"] = write_index(plan.sink, entries)
    except (OSError, ModomoError) as exc:
        hooks.notice(f"index: not written: {exc}")
        return
    try:
        result.extra["stale"] = {**totals(stale_files(plan.sink, entries)), "out": plan.config.options.out}
    except (OSError, ModomoError) as exc:
        hooks.notice(f"prune: earlier results not checked: {exc}")


def write_report(plan: RunPlan) -> str | None:
    """report.html of the whole output when the plan asks for it; its location."""
    if not plan.config.options.report:
        return None
    from pipeline.outputs.report import write_report as write
    from pipeline.outputs.views import add_input_previews, output_summary

    summary = output_summary(plan.sink)
    add_input_previews(summary["images"], plan.everything, plan.sink, plan.config.long_side)  # --report added later
    return write(summary, plan.sink)


def write_contact_sheet(plan: RunPlan) -> list[str]:
    """contact-sheet.jpg (and its further pages) of the whole output when the plan asks for it; their
    locations."""
    if not plan.config.options.contact_sheet:
        return []
    from pipeline.outputs.contact_sheet import write_contact_sheet as write
    from pipeline.outputs.views import job_records

    inputs = {item.identity: item for item in plan.everything}

    def read_input(record: dict) -> bytes | None:
        """The input as the models saw it when the run saved it (small, already upright), else the photo."""
        item = inputs.get(record.get("id"))
        try:
            preview = record.get("outputs", {}).get("input")
            if preview:
                data = plan.sink.read(plan.sink.relative(preview))
                if data:
                    return data
            return item.read() if item is not None else None
        except (OSError, ModomoError):
            return None

    records = job_records(plan.sink, [s.name for s in plan.config.styles])
    return write(records, plan.sink, read_input, signing=plan.config.signing)
