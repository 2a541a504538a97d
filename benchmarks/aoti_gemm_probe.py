"""Whether inductor's C++ GEMM templates (AMX micro-kernels, chosen by `max_autotune`) make the full-size UNet's
compiled call faster on this CPU than the package `--compile` builds today (frozen weights, aten/oneDNN matmuls).

The random-sd15 UNet (full SD1.5 size, random weights) in bf16, called as the sampler calls it at 256x192 and batch
2 with guidance (4 latents of 32x24), exported under no_grad; one package per inductor config, each built in this
process with gradients off (as `--compile`'s own builds); then each call timed (the best of `--calls` after two
warm-ups) against eager on the same inputs.

    python benchmarks/aoti_gemm_probe.py [--calls 5] [--out benchmarks/cpu/aoti-gemm-probe-random-sd15-unet.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from aoti_probe import Denoiser  # the UNet's call as the sampler makes it (beside this script)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIGS = {
    "frozen (what --compile builds)": {"freezing": True},
    "frozen + C++ GEMM templates (max_autotune)": {
        "freezing": True,
        "max_autotune": True,
        "max_autotune_gemm_backends": "CPP,ATEN",
    },
}


def best(call, inputs, calls: int) -> float:
    times = []
    with torch.inference_mode():
        for i in range(calls + 2):
            start = time.perf_counter()
            call(*inputs)
            if i >= 2:
                times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/cpu/aoti-gemm-probe-random-sd15-unet.json"))
    args = parser.parse_args()
    from diffusers import UNet2DConditionModel

    from pipeline.bench.peak import cpu_model
    from pipeline.models.random_sd15 import configs

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(configs()["unet"]).to(torch.bfloat16).eval()
    model = Denoiser(unet)
    latents = torch.randn(4, 4, 24, 32).to(torch.bfloat16)
    inputs = (latents, torch.tensor([500] * 4), torch.randn(4, 77, 768).to(torch.bfloat16))
    found = {"eager": {"seconds_per_call": best(model, inputs, args.calls)}}
    print(f"eager: {found['eager']['seconds_per_call']:.3f} s/call", flush=True)
    with torch.no_grad():
        exported = torch.export.export(model, inputs)
        reference = model(*inputs).float()
    with tempfile.TemporaryDirectory() as folder:
        for n, (name, config) in enumerate(CONFIGS.items()):
            start = time.perf_counter()
            with torch.no_grad():  # inductor freezes and pre-packs weights only with gradients off
                path = torch._inductor.aoti_compile_and_package(
                    exported, package_path=f"{folder}/{n}.pt2", inductor_configs=config
                )
            built = time.perf_counter() - start
            package = torch._inductor.aoti_load_package(path)
            seconds = best(package, inputs, args.calls)
            with torch.inference_mode():
                worst = float((package(*inputs).float() - reference).abs().max())
            found[name] = {
                "config": config,
                "compile_seconds": round(built, 1),
                "seconds_per_call": seconds,
                "speedup_over_eager": found["eager"]["seconds_per_call"] / seconds,
                "max_difference": worst,
            }
            print(f"{name}: built in {built:.0f} s, {seconds:.3f} s/call, {found[name]['speedup_over_eager']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "date": date.today().isoformat(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    header["command"] = "python benchmarks/aoti_gemm_probe.py"
    header["shape"] = "random-sd15 UNet, bf16, 4 latents 32x24 (256x192, batch 2, guidance)"
    args.out.write_text(json.dumps({**header, "results": found}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
