"""`--dry-run`: the whole run checked without loading a model. The plan is built as for a real run (options,
inputs listed, manifest rows, output names, the output reachable and writable), the journal says what is
done, and what the run would do is described: jobs, styles, outputs, to do and done, and each problem a row
or an input would hit, one line each. A catalogue team validates a 10,000-row manifest this way before
renting a GPU."""

from __future__ import annotations

from pipeline.inputs import imaging
from pipeline.outputs.names import stems_for
from pipeline.run.owners import entry_stem
from pipeline.run.plan import RunPlan
from pipeline.run.resume import split

EXAMPLES = 3  # output names shown, per style


def problems(plan: RunPlan, refused: list | None = None) -> list[str]:
    """What would fail before any pixel is made: bad manifest rows, inputs that are not there, names another
    photo's result holds."""
    found = [record.error for record in refused or []]
    for item in plan.items:
        if item.job is not None and item.job.error:
            found.append(item.job.error)
        elif item.path is not None and not item.path.is_file():
            reason = f"{item.display}: no such file"
            found.append(item.job.fail(reason) if item.job is not None else reason)
    return found


def examples(plan: RunPlan, todo: dict[str, list[str]]) -> list[str]:
    """A few `input -> output` lines per style, as the run would name them."""
    lines = []
    count = {item: len(plan.styles_for(item)) for item in plan.everything}
    extension = imaging.extension(plan.config.format)
    for style in [s.name for s in [*plan.config.styles, *plan.config.job_styles]]:
        stems = stems_for(plan.everything, style, plan.config, count.get)
        chosen = [item for item in plan.items if style in todo.get(item.identity, [])][:EXAMPLES]
        lines += [f"{item.display} -> {stems[item]}{extension}" for item in chosen]
    return lines


def replaced(plan: RunPlan, work) -> list[str]:
    """The results a run would write over: its own jobs' earlier results, made with other settings."""
    owners = {entry_stem(entry): entry for entry in plan.journal.lines()}
    count = {item: len(plan.styles_for(item)) for item in plan.everything}
    lines = []
    for style in [s.name for s in [*plan.config.styles, *plan.config.job_styles]]:
        stems = stems_for(plan.everything, style, plan.config, count.get)
        for item in (i for i in plan.items if style in work.todo.get(i.identity, [])):
            entry = owners.get(stems[item])
            if entry is not None and (entry["id"] == item.identity or (item.identity, style) in work.was):
                lines.append(f"{item.display} ({style}): replaces {entry['outputs'].get('result', stems[item])}")
    return lines


def look(plan: RunPlan) -> dict:
    """The references the jobs follow (as named) and each room set's photos, its anchor first."""
    named = {
        *plan.config.references,
        *(item.job.style_ref for item in plan.items if item.job is not None and item.job.reference is not None),
    }
    sets: dict[str, list[str]] = {}
    for item in sorted(plan.items, key=lambda i: bool(i.anchor)):
        if item.group:
            sets.setdefault(item.group, []).append(item.key)
    return {"references": sorted(named), "sets": sets}


def describe(plan: RunPlan) -> dict:
    """The run the plan would make, and its problems."""
    work = split(plan)
    todo = work.todo
    skipped = [record for record in work.records if record.status == "skipped"]
    jobs = sum(len(plan.styles_for(item)) for item in plan.items)
    return {
        "inputs": len(plan.items),
        "of": len(plan.everything),
        "jobs": jobs,
        "to_do": sum(len(styles) for styles in todo.values()),
        "done": len(skipped),
        "styles": [s.name for s in [*plan.config.styles, *plan.config.job_styles]],
        "out": plan.config.out,
        "engine": plan.engine,
        "models": plan.spec.name,
        "shard": str(plan.shard) if plan.shard else None,
        "examples": examples(plan, todo),
        "problems": problems(plan, [record for record in work.records if record.status == "failed"]),
        "moved": len(work.moved),
        "replaces": replaced(plan, work),
        **look(plan),
    }
