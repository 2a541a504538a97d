"""The packages `--compile` builds against the models a run calls eager, one call each, in one process: the
random-sd15 UNet and depth ControlNet (full SD1.5 size, random weights) in bf16, channels-last, their layers packed
once (pipeline/models/prepacked.py), the host memory kept, as a modomo CPU run has them; the packages built by the
run's own backend (AOTInductor, frozen weights, in a process of its own) from the same modules and called on dense
inputs, as the run calls them. Called as the sampler calls them at 256x192 with batch 2 and guidance (4 latents of
32x24; the UNet with the ControlNet's residuals). Eager and package alternate `--rounds` times; the best call of
each counts, the median beside it.

    python benchmarks/package_probe.py [--rounds 3] [--out benchmarks/cpu/package-probe-random-sd15.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prepack_probe import models, timed, write  # noqa: E402 - beside this script


def build(kind: str, model, inputs: tuple, folder: Path):
    """The run's package of this model call, built and loaded as a run builds and loads it; (callable, seconds,
    bytes)."""
    from pipeline.models.compiled.backends import AOTInductor
    from pipeline.models.compiled.denoisers import WRAPPERS
    from pipeline.models.prepacked import forget

    backend, path = AOTInductor(), folder / f"{kind}.pt2"
    forget(model)  # as the run does before a package takes a model over
    start = time.perf_counter()
    backend.compile(WRAPPERS[kind](model).eval(), inputs, path)
    return backend.load(path), time.perf_counter() - start, path.stat().st_size


def sampler_calls(found: dict) -> dict:
    """Each model's inputs as the sampler passes them: the ControlNet on the latents and its map, the UNet with
    the ControlNet's residuals."""
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(4, 4, 24, 32, generator=generator).to(torch.bfloat16)
    step, text = torch.tensor([500] * 4), torch.randn(4, 77, 768, generator=generator).to(torch.bfloat16)
    cond = torch.rand(4, 3, 192, 256, generator=generator).to(torch.bfloat16)
    with torch.inference_mode():
        down, mid = found["controlnet"](sample, step, encoder_hidden_states=text, controlnet_cond=cond)[:2]
    residuals = tuple(t.clone() for t in (*down, mid))
    return {"controlnet": (sample, step, text, cond), "unet": (sample, step, text, *residuals)}


def eager_call(kind: str, model, inputs: tuple):
    sample, step, text = inputs[:3]
    if kind == "unet":
        down, mid = list(inputs[3:-1]), inputs[-1]
        return lambda: model(
            sample, step, encoder_hidden_states=text, down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample  # fmt: skip

    def control():
        down = model(sample, step, encoder_hidden_states=text, controlnet_cond=inputs[3], return_dict=False)[0]
        return torch.cat([r.reshape(-1) for r in down])

    return control


def package_call(kind: str, package, inputs: tuple):
    from pipeline.models.compiled.backends import dense

    if kind == "unet":
        return lambda: package(*dense(inputs))
    return lambda: torch.cat([r.reshape(-1) for r in package(*dense(inputs))[:-1]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/cpu/package-probe-random-sd15.json"))
    args = parser.parse_args()
    from pipeline.models.host_memory import keep_host_memory
    from pipeline.models.prepacked import prepack

    state = keep_host_memory()
    found = models()
    prepack(found.values())
    inputs = sampler_calls(found)
    cases, built = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for kind, model in found.items():
            package, seconds, size = build(kind, model, inputs[kind], Path(folder))
            built[kind] = {"compile_seconds": round(seconds, 1), "package_bytes": size}
            cases[kind, "eager"] = eager_call(kind, model, inputs[kind])
            cases[kind, "package"] = package_call(kind, package, inputs[kind])
        seconds, outputs = {case: [] for case in cases}, {}
        for _ in range(args.rounds):
            for case, call in cases.items():
                times, outputs[case] = timed(call)
                seconds[case] += times
    results = {kind: {**summary(seconds, outputs, kind), **built[kind]} for kind in found}
    write(args.out, f"python benchmarks/package_probe.py --rounds {args.rounds}", state, results)


def summary(seconds: dict, outputs: dict, kind: str) -> dict:
    eager, compiled = seconds[kind, "eager"], seconds[kind, "package"]
    return {
        "eager_packed_best_s": round(min(eager), 4),
        "eager_packed_median_s": round(statistics.median(eager), 4),
        "package_best_s": round(min(compiled), 4),
        "package_median_s": round(statistics.median(compiled), 4),
        "speedup_best": round(min(eager) / min(compiled), 3),
        "speedup_median": round(statistics.median(eager) / statistics.median(compiled), 3),
        "max_difference": float((outputs[kind, "eager"].float() - outputs[kind, "package"].float()).abs().max()),
    }


if __name__ == "__main__":
    main()
