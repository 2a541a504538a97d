"""`--dry-run`: the whole run checked without loading a model. The plan is built as for a real run (options,
inputs listed, manifest rows, output names, the output reachable and writable), the journal says what is
done, and what the run would do is described: jobs, styles, outputs, to do and done, and each problem a row
or an input would hit, one line each; weights the run would stop for end it with the real run's exit code (1).
A catalogue team validates a 10,000-row manifest this way before renting a GPU."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pipeline.errors import ImageError, ModomoError
from pipeline.inputs import imaging
from pipeline.outputs.names import variation_stem
from pipeline.run.owners import Owners
from pipeline.run.plan import RunPlan
from pipeline.run.resume import split

EXAMPLES = 3  # output names shown, per style


def problems(plan: RunPlan, refused: list | None = None) -> list[str]:
    """What would fail before any pixel is made: bad manifest rows, inputs that are not there or do not decode
    (each local photo is decoded in full, as the run would; R2 objects are known by their listing's headers only),
    names another photo's result holds."""
    found = [record.error for record in refused or []]
    local = []
    for item in plan.items:
        if item.job is not None and item.job.error:
            found.append(item.job.error)
        elif item.path is not None:
            local.append(item)
    with ThreadPoolExecutor(max(1, plan.config.options.workers)) as pool:
        found += [reason for reason in pool.map(unreadable, local) if reason]
    return found


def unreadable(item) -> str | None:
    """Why a local input cannot be rendered (missing, unreadable, not a whole picture), as the run says it."""
    if not item.path.is_file():
        reason = f"{item.display}: no such file"
    else:
        try:
            imaging.decode(item.read(), item.display)
            return None
        except OSError as exc:
            reason = f"{item.display}: cannot read: {exc.strerror or exc}"
        except ImageError as exc:
            reason = f"{item.display}: {exc}"
    return item.job.fail(reason) if item.job is not None else reason


def examples(plan: RunPlan, todo: dict[str, list[str]]) -> list[str]:
    """A few `input -> output` lines per style, as the run would name them (each variation's name with
    --variations)."""
    lines = []
    extension = imaging.extension(plan.config.options.format)
    for style in [*plan.config.styles, *plan.config.job_styles]:
        stems = plan.stems(style.name)
        chosen = [item for item in plan.items if style.name in todo.get(item.identity, [])][:EXAMPLES]
        for item in chosen:
            results = plan.config.variations_for(style, item.job)
            names = [
                variation_stem(plan.config, item, style.name, stems[item], n, results) + extension
                for n in range(1, results + 1)
            ]
            lines.append(f"{item.display} -> {names[0]}" + (f" ... {names[-1]}" if len(names) > 1 else ""))
    return lines


def replaced(plan: RunPlan, work) -> list[str]:
    """The results a run would write over: its own jobs' earlier results, made with other settings."""
    owners = Owners(plan.journal.lines()).by_stem
    lines = []
    for style in [s.name for s in [*plan.config.styles, *plan.config.job_styles]]:
        stems = plan.stems(style)
        for item in (i for i in plan.items if style in work.todo.get(i.identity, [])):
            entry = owners.get(stems[item])
            if entry is not None and (entry["id"] == item.identity or (item.identity, style) in work.was):
                lines.append(f"{item.display} ({style}): replaces {entry['outputs'].get('result', stems[item])}")
    return lines


def checked(plan: RunPlan) -> str:
    """How the inputs were checked: local photos decoded in full, R2 objects by their listing's headers only (a full
    decode would download every one)."""
    local = sum(item.path is not None for item in plan.items)
    remote = len(plan.items) - local
    parts = [f"{local} local photo(s) decoded in full"] if local else []
    parts += [f"{remote} R2 object(s) checked by their headers only, not downloaded"] if remote else []
    return "; ".join(parts)


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


def removals(plan: RunPlan, todo: dict[str, list[str]]) -> list[str]:
    """What the declutters to do ask to take out, with how many jobs ask it: `couch, tv (2 jobs)`. What each photo
    holds of it is found by the models, so a dry run cannot say."""
    from pipeline.stages.removal import declutter_table, describe
    from styles import EMPTY

    asked: dict[str, int] = {}
    for item in plan.items:
        if EMPTY in todo.get(item.identity, []):
            own = item.job.remove if item.job is not None and item.job.remove is not None else None
            labels = own if own is not None else plan.config.remove_labels
            words = describe(labels, declutter_table()) if labels is not None else "everything movable"
            asked[words] = asked.get(words, 0) + 1
    return [f"{words} ({count} job{'s' if count != 1 else ''})" for words, count in asked.items()]


def weights(plan: RunPlan) -> str | None:
    """Why the real run would stop while loading its models (weights this machine lacks and loading cannot fetch),
    from the same inventory the load asks first; None when they are there."""
    from pipeline.models.inventory import check_weights

    try:
        check_weights(plan.spec)
    except ModomoError as exc:
        return str(exc)
    return None


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
        "modes": {s.name: s.mode for s in [*plan.config.styles, *plan.config.job_styles]},
        "out": plan.config.options.out,
        "engine": plan.engine,
        "models": plan.spec.name,
        "shard": str(plan.shard) if plan.shard else None,
        "examples": examples(plan, todo),
        "problems": problems(plan, [record for record in work.records if record.status == "failed"]),
        "weights": weights(plan),
        "checked": checked(plan),
        "moved": len(work.moved),
        "replaces": replaced(plan, work),
        "removes": removals(plan, todo),
        **look(plan),
    }
