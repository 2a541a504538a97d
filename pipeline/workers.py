"""`--devices`: one worker process per device on one machine, each loading the models once and doing one
shard of the same input list into the same output; a worker that dies fails only its own images."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass

from pipeline.errors import UsageError


@dataclass
class Worker:
    device: str
    shard: str
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


def parse_devices(text: str) -> list[str]:
    """`all`, `0,1,2,3`, `cuda:0,cuda:1`, or `cpu,cpu` (several CPU workers)."""
    import torch

    if text == "all":
        count = torch.cuda.device_count()
        if count == 0:
            raise UsageError("--devices all: no CUDA GPU on this machine")
        return [f"cuda:{i}" for i in range(count)]
    devices = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        devices.append(f"cuda:{part}" if part.isdigit() else part)
    if not devices:
        raise UsageError(f"--devices {text!r}: name at least one device")
    for device in devices:
        if device.startswith("cuda") and int(device.split(":")[1] or 0) >= torch.cuda.device_count():
            raise UsageError(f"--devices: {device} is not on this machine ({torch.cuda.device_count()} GPU(s))")
    return devices


def run(argv: list[str], devices: list[str], on_start=None) -> list[Worker]:
    """Start `modomo transform argv --device D --shard k/N --json` for every device; wait for all."""
    workers = [Worker(device, f"{k}/{len(devices)}") for k, device in enumerate(devices)]
    for worker in workers:
        cmd = [sys.executable, "-m", "modomo_cli", "transform", *argv, "--device", worker.device,
               "--shard", worker.shard, "--json", "--no-progress"]
        worker.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if on_start:
            on_start(worker)
    for worker in workers:
        out, err = worker.process.communicate()
        worker.returncode, worker.stderr = worker.process.returncode, err
        try:
            worker.summary = json.loads(out) if out.strip() else None
        except ValueError:
            worker.summary = None
    return workers


def merge_records(workers: list[Worker], everything: list, styles: list[str], journal) -> list[dict]:
    """Every worker's records in input order; a dead worker's inputs are `ok` where the journal says it
    finished them, else `failed` with the reason it died."""
    from pipeline.shards import parse as parse_shard

    done = {(e["key"], e.get("style")): e for e in journal.load().values()}
    records: list[dict] = []
    for worker in workers:
        if worker.summary is not None:
            records += worker.summary["images"]
            continue
        part = parse_shard(worker.shard)
        for item in (i for i in everything if part.owns(i.key)):
            for style in styles:
                entry = done.get((item.key, style))
                records.append({"input": item.display, "key": item.key, "style": style,
                                "status": "ok" if entry else "failed", "error": None if entry else worker.died,
                                "outputs": entry.get("outputs", {}) if entry else {}, "seed": None,
                                "quality": entry.get("quality") if entry else None, "timings": {}})
    order = {item.key: i for i, item in enumerate(everything)}
    records.sort(key=lambda r: order.get(r["key"], len(order)))
    return records
