"""Run a plan on its engine, then write the views of the output the plan asks for (index, report, sheet)."""

from __future__ import annotations

from pipeline.run.hooks import Hooks
from pipeline.run.plan import RunPlan
from pipeline.run.result import RunResult


def run(plan: RunPlan, hooks: Hooks | None = None) -> RunResult:
    """Run the plan on its engine."""
    from pipeline.run.events import fan_out, record_log_hook

    hooks = hooks or Hooks()
    hooks = Hooks(fan_out(hooks.on_event, record_log_hook()), hooks.on_model, hooks.notice)
    if plan.engine == "devices":
        from pipeline.run.engines.devices import run as engine
    elif plan.engine == "ray":
        from pipeline.run.engines.ray import run as engine
    else:
        from pipeline.run.engines.local import run as engine
    result = engine(plan, hooks)
    if not result.fatal:
        from pipeline.errors import ModomoError
        from pipeline.outputs.index import write_index

        try:
            result.extra["index"] = write_index(plan.sink)
        except (OSError, ModomoError) as exc:
            hooks.notice(f"index: not written: {exc}")
    return result


def write_report(plan: RunPlan, summary: dict) -> str | None:
    """report.html into the output when the plan asks for it; its location."""
    if not plan.report:
        return None
    from pipeline.outputs.report import write_report as write

    return write(summary, plan.sink)


def write_contact_sheet(plan: RunPlan, summary: dict) -> list[str]:
    """contact-sheet.jpg (and its further pages) into the output when the plan asks for it; their locations."""
    if not plan.contact_sheet:
        return []
    from pipeline.errors import ModomoError
    from pipeline.outputs.contact_sheet import write_contact_sheet as write

    inputs = {item.identity: item for item in plan.everything}

    def read_input(record: dict) -> bytes | None:
        """The input as the models saw it when the run saved it (small, already upright), else the photo."""
        item = inputs.get(record.get("id"))
        try:
            preview = record.get("outputs", {}).get("input")
            if preview:
                return plan.sink.read(plan.sink.relative(preview))
            return item.read() if item is not None else None
        except (OSError, ModomoError):
            return None

    return write(summary["images"], plan.sink, read_input)
