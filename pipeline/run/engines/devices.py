"""`--devices`: one worker process per device on one machine, each loading the models once and doing its
part of this machine's shard into the same output; a worker that dies fails only its own images.

Pod i of N (from --shard or the job environment) with D devices runs worker k on shard i + N*k of
N*D: a key's shard of N*D, taken modulo N, is its shard of N, so the D workers split exactly pod i's
inputs and N pods with D devices each cover every input once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.models.compiled.reports import merge_compile_reports
from pipeline.outputs.records import ImageRecord
from pipeline.run.batching import merge_reports
from pipeline.run.cost import Price, resolve_price
from pipeline.run.events import RECORD_LOG
from pipeline.run.hooks import Hooks
from pipeline.run.plan import RunPlan
from pipeline.run.result import RunResult
from pipeline.run.shards import Shard
from pipeline.run.signals import on_stop_signals


@dataclass
class Worker:
    device: str
    shard: Shard
    process: subprocess.Popen | None = None
    summary: dict | None = None
    returncode: int | None = None
    stderr: str = ""

    @property
    def died(self) -> str | None:
        """Why the worker produced no summary, or None when it did."""
        if self.summary is not None:
            return None
        code = self.returncode
        if code is not None and code < 0:
            return f"worker on {self.device} was killed ({signal.Signals(-code).name})"
        tail = self.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"worker on {self.device} exited with {code}: {tail[0]}"


def worker_shards(pod: Shard | None, count: int) -> list[Shard]:
    """The shards of `count` workers that together are exactly the pod's shard."""
    index, total = (pod.index, pod.count) if pod else (0, 1)
    return [Shard(index + total * k, total * count) for k in range(count)]


class RecordTail(threading.Thread):
    """Follows the workers' record files and reports each finished record once, as it appears."""

    def __init__(self, paths: list[Path], emit):
        super().__init__(daemon=True)
        self.paths, self.emit = paths, emit
        self.offsets = dict.fromkeys(paths, 0)
        self.seen: set[tuple[str, str | None]] = set()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            self.poll()

    def poll(self) -> None:
        for path in self.paths:
            try:
                with path.open("rb") as handle:
                    handle.seek(self.offsets[path])
                    data = handle.read()
            except FileNotFoundError:
                continue
            complete = data[: data.rfind(b"\n") + 1]
            self.offsets[path] += len(complete)
            for line in complete.decode("utf-8").splitlines():
                record = ImageRecord.from_json(json.loads(line))
                self.seen.add((record.id, record.style))
                self.emit(record)

    def finish(self) -> None:
        self.stopping.set()
        self.join()
        self.poll()


def start(argv: list[str], workers: list[Worker], records: Path) -> None:
    """Start `modomo transform argv --device D --shard s --json` for every worker, each in its own session
    (a terminal's Ctrl-C reaches them through the parent only, once). CPU workers share the cores
    rather than each taking all of them."""
    cpu_workers = sum(w.device == "cpu" for w in workers)
    threads = str(max(1, (os.cpu_count() or 1) // max(1, cpu_workers)))
    for worker in workers:
        cmd = [
            sys.executable,
            "-m",
            "modomo_cli",
            "transform",
            *argv,
            "--device",
            worker.device,
            "--shard",
            str(worker.shard),
            "--json",
            "--no-progress",
        ]
        env = {**os.environ, RECORD_LOG: str(records / f"{worker.shard.index}.jsonl")}
        if worker.device == "cpu":
            env["OMP_NUM_THREADS"] = threads
        worker.process = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
        )


def wait(workers: list[Worker]) -> None:
    for worker in workers:
        out, err = worker.process.communicate()
        worker.returncode, worker.stderr = worker.process.returncode, err
        try:
            worker.summary = json.loads(out) if out.strip() else None
        except ValueError:
            worker.summary = None


def forward(workers: list[Worker], signum: int = signal.SIGINT) -> None:
    """Pass a stop request on to every worker still running."""
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.send_signal(signum)


def merge_records(workers: list[Worker], plan: RunPlan) -> list[ImageRecord]:
    """Every worker's records; a dead worker's inputs are `ok` where the journal has them finished with this
    run's settings and the input's current version, else `failed` with the reason it died."""
    records: list[ImageRecord] = []
    hashes, done = plan.result_hashes(), None
    for worker in workers:
        if worker.summary is not None:
            records += [ImageRecord.from_json(r) for r in worker.summary["images"]]
            continue
        done = plan.journal.load() if done is None else done
        for item in (i for i in plan.items if worker.shard.owns(i.group_key)):
            for style in plan.styles_for(item):
                entry = done.get((item.identity, hashes[style]))
                if entry is not None and entry.get("version") == item.version:
                    records.append(ImageRecord.from_journal(item, style, entry, "ok", plan.sink.locate))
                else:
                    records.append(ImageRecord.failed(item, style, worker.died))
    return records


def device_price(plan: RunPlan, devices: list[str]) -> Price:
    """The price of one device times the devices: they are all held for the whole run."""
    import torch

    from pipeline.models.runtime import gpu_name

    gpu = next((d for d in devices if d.startswith("cuda")), None)
    one = resolve_price(
        gpu_name(torch.device(gpu)) if gpu else None, plan.config.options.gpu_price, plan.config.options.currency
    )
    return Price(one.per_hour * len(devices), one.currency, f"{one.source} x {len(devices)} devices")


def run(plan: RunPlan, hooks: Hooks) -> RunResult:
    workers = [Worker(d, s) for d, s in zip(plan.devices, worker_shards(plan.shard, len(plan.devices)), strict=True)]
    hooks.notice(f"devices     {len(workers)} workers: " + ", ".join(f"{w.device} (shard {w.shard})" for w in workers))
    hooks.on_event("start", total=sum(len(plan.styles_for(item)) for item in plan.items))
    start_time = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modomo-devices-") as scratch:
        tail = RecordTail(
            [Path(scratch) / f"{w.shard.index}.jsonl" for w in workers],
            lambda record: hooks.on_event("done", record=record),
        )
        start(plan.worker_argv, workers, Path(scratch))
        tail.start()
        with on_stop_signals(lambda: forward(workers), lambda: forward(workers), hooks.notice) as received:
            wait(workers)
        tail.finish()
    summaries = [w.summary for w in workers if w.summary]
    spans = [s["span"] for s in summaries if s.get("span")]
    # Processing after the models loaded: from the first worker's start of work to the last one's end; the
    # workers' start-up and loading are reported apart (the longest, and their sum).
    seconds = max(e for _, e in spans) - min(b for b, _ in spans) if spans else time.perf_counter() - start_time
    result = RunResult(
        records=merge_records(workers, plan),
        seconds=seconds,
        settings=plan.config.summary_settings(),
        price=device_price(plan, plan.devices),
    )
    result.load_seconds = max((s.get("load_seconds", 0.0) for s in summaries), default=0.0)
    result.extra["load_seconds_total"] = sum(s.get("load_seconds", 0.0) for s in summaries)
    result.batching = merge_reports(plan.config.options.batch_size, [s.get("batching", {}) for s in summaries])
    result.oom = [event for s in summaries for event in s.get("oom", [])]
    result.compile = merge_compile_reports([s.get("compile", {}) for s in summaries])
    result.shared_seconds_saved = sum(s.get("styles", {}).get("shared_seconds_saved", 0.0) for s in summaries)
    result.interrupted = bool(received) or any(s.get("stopped") == "interrupted" for s in summaries)
    result.fatal = next(
        (s["stopped"] for s in summaries if s.get("stopped") not in (None, "interrupted", "fail-fast")), None
    )
    result.stopped = (
        result.fatal
        or ("interrupted" if result.interrupted else None)
        or next((s["stopped"] for s in summaries if s.get("stopped")), None)
    )
    result.sort(plan.items, [s.name for s in plan.config.styles])
    for record in result.records:  # what no worker reported as it went: a dead worker's inputs
        if (record.id, record.style) not in tail.seen:
            hooks.on_event("done", record=record)
    for worker in workers:
        if worker.died:
            hooks.notice(f"failed      {worker.died}")
    result.extra.update(
        engine="devices",
        models=plan.config.result_models(plan.spec),
        devices=[
            {"device": w.device, "shard": str(w.shard), "returncode": w.returncode, "error": w.died} for w in workers
        ],
    )
    return result
