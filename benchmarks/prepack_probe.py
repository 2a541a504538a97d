"""What packing the weights once for oneDNN (pipeline/models/prepacked.py) does to eager bf16 calls on this CPU: the
random-sd15 UNet and depth ControlNet (full SD1.5 size, random weights) called as the sampler calls them at 256x192
with batch 2 and guidance (4 latents of 32x24), bf16, channels-last, the host memory kept (as in a modomo CPU run).
In one process, the same models alternate between their plain layers and their packed ones, `--rounds` times; the
best call of each counts (the median beside it), with the largest difference between the two outputs and the bytes
the packs hold.

    python benchmarks/prepack_probe.py [--rounds 3] [--out benchmarks/cpu/prepack-probe-random-sd15.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CALLS = 4  # timed calls per round and case, after one warm-up


def models():
    from diffusers import ControlNetModel, UNet2DConditionModel

    from pipeline.models.random_sd15 import configs

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(configs()["unet"])
    controlnet = ControlNetModel.from_unet(unet)
    return {
        name: model.to(torch.bfloat16).to(memory_format=torch.channels_last).eval()
        for name, model in (("unet", unet), ("controlnet", controlnet))
    }


def calls(found: dict) -> dict:
    """Each model's call on the sampler's inputs."""
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(4, 4, 24, 32, generator=generator).to(torch.bfloat16)
    step = torch.tensor([500] * 4)
    text = torch.randn(4, 77, 768, generator=generator).to(torch.bfloat16)
    cond = torch.rand(4, 3, 192, 256, generator=generator).to(torch.bfloat16)
    return {
        "unet": lambda: found["unet"](sample, step, encoder_hidden_states=text).sample,
        "controlnet": lambda: found["controlnet"](sample, step, encoder_hidden_states=text, controlnet_cond=cond)[1],
    }


def switch(model, packed: bool) -> None:
    """The model's layers as packed layers (packed again at the warm-up call), or as their plain classes."""
    from pipeline.models import prepacked

    if packed:
        prepacked.prepack([model])
    else:
        prepacked.unpack([model])


def timed(call) -> tuple[list[float], torch.Tensor]:
    times = []
    with torch.inference_mode():
        out = call()
        for _ in range(CALLS):
            start = time.perf_counter()
            out = call()
            times.append(time.perf_counter() - start)
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/cpu/prepack-probe-random-sd15.json"))
    args = parser.parse_args()
    from pipeline.models import prepacked
    from pipeline.models.host_memory import keep_host_memory

    state = keep_host_memory()
    found = models()
    runs = calls(found)
    seconds = {(name, case): [] for name in found for case in ("plain", "packed")}
    outputs = {}
    for _ in range(args.rounds):
        for case in ("plain", "packed"):
            for name, model in found.items():
                switch(model, case == "packed")
                times, outputs[name, case] = timed(runs[name])
                seconds[name, case] += times
    results = {}
    for name, model in found.items():
        plain, packed = seconds[name, "plain"], seconds[name, "packed"]
        results[name] = {
            "plain_best_s": round(min(plain), 4),
            "plain_median_s": round(statistics.median(plain), 4),
            "packed_best_s": round(min(packed), 4),
            "packed_median_s": round(statistics.median(packed), 4),
            "speedup_best": round(min(plain) / min(packed), 3),
            "speedup_median": round(statistics.median(plain) / statistics.median(packed), 3),
            "max_difference": float((outputs[name, "plain"].float() - outputs[name, "packed"].float()).abs().max()),
            "packed_layers": prepacked.packed(model)[0],
            "pack_bytes": prepacked.packed(model)[1],
            "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        }
    write(args.out, f"python benchmarks/prepack_probe.py --rounds {args.rounds}", state, results)


def write(out: Path, command: str, host_memory: str, results: dict) -> None:
    """A probe's results with the machine, torch and the command that made them, as JSON at `out`."""
    from pipeline.bench.peak import cpu_model

    report = {
        "date": date.today().isoformat(),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "host_memory": host_memory,
        "command": command,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
