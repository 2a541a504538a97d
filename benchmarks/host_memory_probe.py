"""What the host allocator and the layout do to an eager bf16 UNet call on this CPU: the random-sd15 UNet (full SD1.5
size, random weights) called as the sampler calls it at 256x192 with batch 2 and guidance (4 latents of 32x24),
contiguous and channels-last, in processes with the host memory kept (what a modomo CPU run sets,
pipeline/models/host_memory.py) and with glibc's own behaviour (`MODOMO_MALLOC=system`). The allocator is a
process's setting, so each case runs in a process of its own; the two alternate, `--rounds` times each, and the
best call of each counts (the median beside it). Page faults are counted over the timed calls.

    python benchmarks/host_memory_probe.py [--rounds 2] [--out benchmarks/cpu/host-memory-probe-random-sd15-unet.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALLS = 6  # timed calls per layout, after two warm-ups


def one_process() -> dict:
    """Both layouts' calls in this process, with the allocator as the environment says."""
    import resource
    import time

    import torch
    from diffusers import UNet2DConditionModel

    from pipeline.models.host_memory import keep_host_memory
    from pipeline.models.random_sd15 import configs

    state = keep_host_memory()
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(configs()["unet"]).to(torch.bfloat16).eval()
    inputs = (torch.randn(4, 4, 24, 32).to(torch.bfloat16), torch.tensor([500] * 4))
    text = torch.randn(4, 77, 768).to(torch.bfloat16)
    found = {"host_memory": state, "threads": torch.get_num_threads()}
    for layout in ("contiguous", "channels_last"):
        if layout == "channels_last":
            unet.to(memory_format=torch.channels_last)
        times, faults = [], 0
        with torch.inference_mode():
            for i in range(CALLS + 2):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                unet(*inputs, encoder_hidden_states=text)
                if i >= 2:
                    times.append(time.perf_counter() - start)
                    faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        found[layout] = {"seconds": times, "page_faults_per_call": faults // CALLS}
    return found


def summarise(runs: list[dict]) -> dict:
    """Per case and layout: the best and median call over every round."""
    out = {}
    for run in runs:
        case = out.setdefault(run["host_memory"], {})
        for layout in ("contiguous", "channels_last"):
            row = case.setdefault(layout, {"seconds": [], "page_faults_per_call": []})
            row["seconds"] += run[layout]["seconds"]
            row["page_faults_per_call"].append(run[layout]["page_faults_per_call"])
    for case in out.values():
        for row in case.values():
            seconds = sorted(row.pop("seconds"))
            row["best_seconds"], row["median_seconds"] = round(seconds[0], 3), round(seconds[len(seconds) // 2], 3)
    return out


def main() -> None:
    if os.environ.get("PROBE_CHILD"):
        print(json.dumps(one_process()))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/cpu/host-memory-probe-random-sd15-unet.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from pipeline.bench.peak import cpu_model

    runs = []
    for _ in range(args.rounds):
        for malloc in ("system", "kept"):
            env = {**os.environ, "PROBE_CHILD": "1", "MODOMO_MALLOC": malloc, "PYTHONPATH": str(ROOT)}
            done = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.splitlines()[-1]))
            print(malloc, {k: v for k, v in runs[-1].items() if k not in ("host_memory", "threads")}, flush=True)
    found = {
        "date": date.today().isoformat(),
        "cpu": cpu_model(),
        "threads": runs[0]["threads"],
        "command": "python benchmarks/host_memory_probe.py",
        "shape": "random-sd15 UNet, bf16, eager, 4 latents 32x24 (256x192, batch 2, guidance)",
        "results": summarise(runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(found, indent=2) + "\n")
    print(json.dumps(found["results"], indent=2))


if __name__ == "__main__":
    main()
