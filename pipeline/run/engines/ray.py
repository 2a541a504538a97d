"""`--engine ray`: Ray Data `map_batches` over an actor pool, one actor per GPU (or CPU slot). Local with
`ray.init()`, a cluster through RAY_ADDRESS.

The driver plans once: it reads the journal (once), records what is already done as skipped, and
hands the actors only what is left. Each actor loads the models and sets up its Runner once (the
output names of the whole input list decided there, no journal reads), then restyles batch after
batch and hands back each batch's records with their journal lines; the driver writes those into
the run's one journal as they stream in, so cost stays linear in the number of batches.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace

from pipeline.config import RunConfig
from pipeline.errors import ModomoError
from pipeline.models.compiled.reports import merge_compile_reports, run_report
from pipeline.models.presets import ModelSpec
from pipeline.outputs.journal import Journal
from pipeline.outputs.records import ImageRecord
from pipeline.run.batching import WINDOW_BATCHES, batching_report
from pipeline.run.cost import Price, resolve_price
from pipeline.run.hooks import Hooks
from pipeline.run.plan import RunPlan
from pipeline.run.result import RunResult
from pipeline.run.resume import split


class TransformActor:
    """Loads the stack and sets up a Runner once, then restyles each batch of input identities it is given."""

    def __init__(self, config: RunConfig, spec: ModelSpec, device: str, cwd: str, queue: int = 0):
        from pipeline.models.inventory import inventory
        from pipeline.models.load import load_stack
        from pipeline.models.placement import pick_device
        from pipeline.models.precision import name_of
        from pipeline.models.runtime import gpu_name
        from pipeline.outputs.journal import JournalBuffer
        from pipeline.outputs.sinks import open_sink
        from pipeline.r2 import Remote
        from pipeline.run.plan import list_inputs
        from pipeline.run.runner import Runner

        os.chdir(cwd)  # the driver's: relative inputs, output, masks and LoRAs mean the same here
        remote = Remote(pool_size=config.options.workers * 2 + 2)
        everything, _ = list_inputs(config, inventory(spec), remote)  # cheap; keeps R2 clients out of pickles
        self.by_id = {item.identity: item for item in everything}
        start = time.perf_counter()
        load = config.load_options(dtype=config.options.dtype)  # each actor decides `auto` by its own device
        stack = load_stack(spec, pick_device(device), options=load)
        config = replace(config, precision=name_of(stack.dtype))  # `auto` by this actor's device, as hashed
        self.load_seconds = time.perf_counter() - start
        self.device = gpu_name(stack.device)
        self.journal = JournalBuffer()
        self.runner = Runner(config, stack, open_sink(config.options.out, remote), journal=self.journal)
        self.runner.prepare(everything)
        if self.runner.denoisers:  # its share of the run's images: what --compile auto weighs a compile against
            self.runner.denoisers.expect(queue)
        self.reported = {"calls": 0, "rendered": 0, "events": 0, "load": False}
        self.fatal: str | None = None  # an output error stops this actor's later batches too
        self.span: tuple[float, float] | None = None  # wall-clock start and end of its latest batch

    def __call__(self, batch: dict) -> dict:
        """One batch of rows, each a room set or a single input (a set is never split across actors)."""
        ids = [identity for row in batch["id"] for identity in json.loads(row)]
        wanted = [names for row in batch["styles"] for names in json.loads(row)]
        for row in batch["anchors"]:  # the sets' anchors the journal had done: their results, for the members
            self.runner.sets.outputs.update(
                {tuple(key.split("\t")): outputs for key, outputs in json.loads(row).items()}
            )
        for row in batch["was"]:  # jobs redone at their input's new place: the identity each replaces
            self.runner.writer.was.update({tuple(key.split("\t")): was for key, was in json.loads(row).items()})
        items = [self.by_id[identity] for identity in ids]
        todo = {
            identity: [run for run in self.runner.styles if run.style.name in names]
            for identity, names in zip(ids, wanted, strict=True)
        }
        result = RunResult()
        reason = f"not run: {self.fatal}" if self.fatal else None
        begun = time.time()  # wall clock: the driver spans every actor's batches with it
        if reason is None:
            try:
                self.runner.stream(items, todo, result)
                self.fatal = result.fatal
            except Exception as exc:  # noqa: BLE001 - a broken batch comes back as data, not a lost block
                reason = f"actor failed: {' '.join(str(exc).split()) or type(exc).__name__}"
        self.span = (begun, time.time())
        made = {(r.id, r.style) for r in result.records}
        records = result.records + [
            ImageRecord.failed(item, run.style.name, reason or "not run: the run stopped")
            for item in items
            for run in todo[item.identity]
            if (item.identity, run.style.name) not in made
        ]
        entries = {(e["id"], e["style"]): e for e in self.journal.drain()}
        rows = [json.dumps({"record": r.to_json(), "journal": entries.get((r.id, r.style))}) for r in records]
        return {"row": rows, "stats": [self.stats()] + [""] * (len(rows) - 1)}

    def stats(self) -> str:
        """What changed in this actor since its last batch: generate calls, memory events, its load."""
        calls = sum(run.generator.calls for run in self.runner.styles)
        rendered = sum(run.generator.rendered for run in self.runner.styles)
        events = self.runner.oom_events
        delta = {
            "calls": calls - self.reported["calls"],
            "rendered": rendered - self.reported["rendered"],
            "oom": events[self.reported["events"] :],
            "device": self.device,
            "fatal": self.fatal,
            "load_seconds": None if self.reported["load"] else self.load_seconds,
            "span": self.span,
            "actor": os.getpid(),
            "compile": run_report(self.runner.denoisers, self.runner.config.options.compile),
        }
        self.reported = {"calls": calls, "rendered": rendered, "events": len(events), "load": True}
        return json.dumps(delta)


def start_ray():
    try:
        import ray
    except ImportError:
        raise ModomoError("--engine ray needs Ray: pip install 'modomo[ray]'", 2) from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    return ray


def actor_share(rows: list[dict], variations: int, pool: int) -> int:
    """The images each actor of the pool can expect to generate: the jobs to do, shared out (rounded up)."""
    jobs = sum(len(styles) for row in rows for styles in json.loads(row["styles"]))
    return -(-jobs * variations // pool)


def plan_work(plan: RunPlan, result: RunResult, on_event) -> list[dict]:
    """Per room set (or single input) still to do, its inputs and their styles still to do; what the journal has
    finished with these settings and this input version is recorded as skipped, as an in-process run does. A set's
    row carries its anchor's earlier results, which its other photos follow."""
    work = split(plan)
    todo, skipped = work.todo, work.records
    for record in skipped:
        result.records.append(record)
        on_event("done", record=record)
    groups: dict[str, list[str]] = {}
    by_id = {item.identity: item for item in plan.items}
    for identity in todo:
        groups.setdefault(by_id[identity].group_key, []).append(identity)
    anchors = {record.id: [] for record in skipped}
    for record in skipped:
        anchors[record.id].append(record)
    rows = []
    for ids in groups.values():
        followed = {by_id[i].anchor for i in ids if by_id[i].anchor}
        done = {f"{r.id}\t{r.style}": r.outputs for a in followed for r in anchors.get(a, []) if r.outputs}
        was = {f"{i}\t{style}": work.was[(i, style)] for i in ids for style in todo[i] if (i, style) in work.was}
        rows.append(
            {
                "id": json.dumps(ids),
                "styles": json.dumps([todo[i] for i in ids]),
                "anchors": json.dumps(done),
                "was": json.dumps(was),
            }
        )
    return rows


def collect(rows, result: RunResult, journal: Journal, on_event) -> dict:
    """Records in as they stream; journal lines written; the actors' statistics summed."""
    totals = {"calls": 0, "rendered": 0, "load_seconds": [], "devices": [], "spans": [], "compile": {}}
    for row in rows:
        data = json.loads(row["row"])
        record = ImageRecord.from_json(data["record"])
        if data["journal"]:
            journal.record(data["journal"])
        result.records.append(record)
        on_event("done", record=record)
        if row["stats"]:
            stats = json.loads(row["stats"])
            totals["calls"] += stats["calls"]
            totals["rendered"] += stats["rendered"]
            result.oom += stats["oom"]
            result.fatal = result.fatal or stats["fatal"]
            if stats["load_seconds"] is not None:
                totals["load_seconds"].append(stats["load_seconds"])
                totals["devices"].append(stats["device"])
            totals["spans"].append(stats["span"])
            totals["compile"][stats["actor"]] = stats["compile"]  # each actor's latest: its whole run so far
    return totals


def run(plan: RunPlan, hooks: Hooks) -> RunResult:
    """Restyle the plan's inputs on a Ray actor pool; records in input order."""
    ray = start_ray()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    pool = plan.config.options.actors or max(1, gpus or 1)
    config = plan.config
    result = RunResult(settings=config.summary_settings())
    journal = plan.journal
    start = time.perf_counter()
    hooks.on_event("start", total=sum(len(plan.styles_for(item)) for item in plan.items))
    todo = plan_work(plan, result, hooks.on_event)
    pool = min(pool, len(todo))  # an actor per row to do at most: each loads the whole stack (none: all done)
    totals = {"calls": 0, "rendered": 0, "load_seconds": [], "devices": [], "spans": [], "compile": {}}
    try:
        if todo:
            # Ray batches as large as the in-process size-grouping window: photos of mixed sizes still
            # reach the models in full batches of one size.
            dataset = ray.data.from_items(todo).map_batches(
                TransformActor,
                fn_constructor_kwargs={
                    "config": config,
                    "spec": plan.spec,
                    "cwd": os.getcwd(),
                    "device": "cuda" if gpus else "cpu",
                    "queue": actor_share(todo, config.options.variations or 1, pool),
                },
                batch_size=config.options.batch_size * WINDOW_BATCHES,
                concurrency=pool,
                num_gpus=1 if gpus else 0,
                num_cpus=1,
            )
            totals = collect(dataset.iter_rows(), result, journal, hooks.on_event)
    except KeyboardInterrupt:
        result.interrupted, result.stopped = True, "interrupted"
    finally:
        journal.close()
    result.stopped = result.fatal or result.stopped
    # Processing after the models loaded: from the first batch any actor began to the last one it finished.
    spans = totals["spans"]
    result.seconds = max(e for _, e in spans) - min(b for b, _ in spans) if spans else time.perf_counter() - start
    one = resolve_price(
        next((d for d in totals["devices"] if d), None), config.options.gpu_price, config.options.currency
    )
    result.price = Price(one.per_hour * pool, one.currency, f"{one.source} x {pool} actors")
    result.load_seconds = max(totals["load_seconds"], default=0.0)
    result.extra["load_seconds_total"] = sum(totals["load_seconds"])
    result.batching = batching_report(config.options.batch_size, totals["calls"], totals["rendered"])
    result.compile = merge_compile_reports(list(totals["compile"].values()))
    result.sort(plan.items, [s.name for s in config.styles])
    result.extra.update(
        engine="ray", actors=pool, models=plan.config.result_models(plan.spec), journal_reads=journal.loads
    )
    return result
