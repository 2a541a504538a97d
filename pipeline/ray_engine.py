"""`--engine ray`: Ray Data `map_batches` over an actor pool, one actor per GPU (or CPU slot), models loaded
once per actor, per-image errors returned as data. Local with `ray.init()`, a cluster through RAY_ADDRESS.

Each actor lists the inputs itself (cheap; keeps R2 clients out of pickles), runs modomo's own Runner on
the keys it is handed, and writes into the shared output: names are decided on the whole list and the
journal merges, exactly as with shards.
"""

from __future__ import annotations

import json
import os
import time

from pipeline.config import RunConfig
from pipeline.errors import ModomoError
from pipeline.frames import Item
from pipeline.result import RunResult


class TransformActor:
    """Loads the stack once, then restyles each batch of input keys it is given."""

    def __init__(self, config: RunConfig, models: str, device: str):
        from pipeline.journal import Journal
        from pipeline.models.load import load_stack, pick_device
        from pipeline.models.presets import resolve
        from pipeline.r2 import Remote
        from pipeline.runner import Runner
        from pipeline.sinks import open_sink
        from pipeline.sources import collect_inputs

        remote = Remote(pool_size=config.workers * 2 + 2)
        self.everything = collect_inputs(config.inputs, remote)
        self.by_key = {item.key: item for item in self.everything}
        sink = open_sink(config.out, remote)
        stack = load_stack(resolve(models), pick_device(device))
        self.runner = Runner(config, stack, sink, journal=Journal(sink))

    def __call__(self, batch: dict) -> dict:
        items = [self.by_key[key] for key in batch["key"]]
        try:
            result = self.runner.run(items, self.everything)
            records = result.records
        except Exception as exc:  # noqa: BLE001 - a broken batch comes back as data, not a lost block
            reason = " ".join(str(exc).split()) or type(exc).__name__
            records = [{"input": i.display, "key": i.key, "status": "failed", "error": f"actor failed: {reason}",
                        "outputs": {}, "timings": {}} for i in items]
        return {"record": [json.dumps(r) for r in records]}


def run(config: RunConfig, models: str, everything: list[Item], actors: int | None = None) -> RunResult:
    """Restyle every input on a Ray actor pool; returns the merged records in input order."""
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
    gpus = int(ray.cluster_resources().get("GPU", 0))
    pool = actors or max(1, gpus or 1)
    device = "cuda" if gpus else "cpu"
    start = time.perf_counter()
    dataset = ray.data.from_items([{"key": item.key} for item in everything])
    records_ds = dataset.map_batches(
        TransformActor,
        fn_constructor_kwargs={"config": config, "models": models, "device": device},
        batch_size=config.batch_size,
        concurrency=pool,
        num_gpus=1 if gpus else 0,
        num_cpus=1,
    )
    records = [json.loads(row["record"]) for row in records_ds.take_all()]
    order = {item.key: i for i, item in enumerate(everything)}
    records.sort(key=lambda r: order.get(r["key"], len(order)))
    return RunResult(records=records, seconds=time.perf_counter() - start, settings=config.summary_settings())
