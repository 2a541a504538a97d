"""`modomo bench --compile`: `auto` decided before anything is timed (each timed path all compiled or all eager),
by transform's rule with the FLOP estimate's eager time; and, when the run compiled on the CPU, the same images
again eager in the same run: the speed-up (kept for `auto`'s later decisions on this machine) and how far the
pictures differ."""

from __future__ import annotations

from pipeline.config import RunConfig
from pipeline.models.compiled import keys
from pipeline.models.compiled.policy import SPEEDUP, default_estimate, saving
from pipeline.models.compiled.store import PackageStore
from pipeline.models.load import ModelStack
from pipeline.models.precision import name_of


def compile_estimate(stack: ModelStack) -> tuple[float, str]:
    """Seconds the packages of one shape should take to compile: each model's measured compile on this machine
    (at any shape), else the default by its size."""
    from pipeline.models.compiled.backends import AOTInductor

    store = PackageStore(AOTInductor())
    seconds, sources = 0.0, set()
    for kind, module in [("unet", stack.pipe.unet), *(("controlnet", net) for net in stack.pipe.controlnet.nets)]:
        parameters = sum(p.numel() for p in module.parameters())
        measured = store.measured(kind, parameters)
        seconds += measured if measured is not None else default_estimate(parameters)
        sources.add("measured on this machine" if measured is not None else "default by model size")
    return seconds, " + ".join(sorted(sources))


def bench_compile(config: RunConfig, stack: ModelStack, guess: dict, images: int) -> dict:
    """The bench's compile decision: {choice, resolved (on or off), why, estimate_seconds}."""
    choice = config.options.compile
    if stack.device.type != "cpu":
        resolved = "on" if choice == "on" else "off"
        why = "torch.compile of the modules in place, at load" if resolved == "on" else "auto is off on a GPU"
        return {"choice": choice, "resolved": resolved, "why": why}
    if choice != "auto":
        return {"choice": choice, "resolved": choice, "why": f"--compile {choice}"}
    estimate, source = compile_estimate(stack)
    peak = (guess.get("peak_tflops") or {}).get(name_of(stack.dtype))
    modomo = guess["runs"][0]
    if not peak or not modomo["images"]:
        return {"choice": choice, "resolved": "off", "why": "no eager time to weigh it against"}
    per_image = modomo["tflop"] / modomo["images"] / (peak * guess["assumed_share"])
    speedup, measured = bench_speedup(stack)
    saved = saving(images, per_image, speedup)
    resolved = "on" if saved > estimate else "off"
    why = (
        f"{images} timed images at ~{per_image:.1f} s each eager would save ~{saved:.0f} s at {speedup:.2f}x "
        f"({measured}) against ~{estimate:.0f} s to compile ({source})"
    )
    return {"choice": choice, "resolved": resolved, "why": why, "estimate_seconds": round(estimate, 1)}


def bench_speedup(stack: ModelStack) -> tuple[float, str]:
    """The speed-up `auto` weighs: the bench's last measurement for these models on this machine, else assumed."""
    from pipeline.models.compiled import denoisers  # the backend the runs compile with

    key = keys.speedup_key(denoisers.AOTInductor.name, stack.pipe.unet)
    measured = PackageStore(denoisers.AOTInductor()).speedup(key)
    return (measured, "measured by the bench on this machine") if measured is not None else (SPEEDUP, "assumed")


def compiled_totals(stack: ModelStack) -> dict:
    """What the stack's packages have cost so far: seconds compiling and loading, packages compiled and loaded."""
    models = stack.compiled
    if models is None:
        return {"compile_seconds": 0.0, "load_seconds": 0.0, "compiled": 0, "loaded": 0, "released": 0}
    return {
        "compile_seconds": models.seconds["compile"],
        "load_seconds": models.seconds["load"],
        "compiled": models.made["compiled"],
        "loaded": models.made["loaded"],
        "released": len(models.held.released),
    }


def since(before: dict, after: dict) -> dict:
    """What a path's runs cost, as a run's `compile` report says it."""
    made = {name: round(after[name] - before[name], 2) for name in after}
    return {
        "compile_seconds": made["compile_seconds"],
        "load_seconds": made["load_seconds"],
        "packages": {"compiled": made["compiled"], "loaded": made["loaded"]},
        "shapes_released": made["released"],
    }


def eager_check(config: RunConfig, stack: ModelStack, timed, result) -> dict:
    """The compiled run's images again with --compile off, same models and seeds: generate seconds per image of
    each, the speed-up, and the compiled pictures' largest pixel difference and PSNR against the eager ones."""
    from pipeline.bench.baselines import generate_mean, pixel_differences

    models = stack.compiled
    if models is not None:  # the packages are done with: their memory goes to the eager layers' packs
        models.held.release_all()
    eager = timed.run(config.with_options(compile="off"), stack, "eager", "modomo eager (--compile off)")
    ours, theirs = generate_mean(result), generate_mean(eager)
    worst, psnr = pixel_differences(result, eager)
    if ours and theirs and models is not None and models.speedup_key:  # what `auto` weighs from now on
        models.store.note_speedup(models.speedup_key, theirs / ours, "generate stage, compiled against eager")
    return {
        "generate_seconds_per_image": theirs,
        "compiled_generate_seconds_per_image": ours,
        "speedup": theirs / ours if ours else None,
        "max_pixel_difference": worst,
        "psnr_db": psnr,
    }
