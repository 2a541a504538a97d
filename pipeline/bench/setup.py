"""What `modomo bench` needs before any model loads, from its options: the run config, device, price, model
preset and load options, every option checked by the plan `transform` uses (`run.plan.model_plan`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pipeline.config import RunConfig
from pipeline.errors import UsageError
from pipeline.models.placement import LoadOptions
from pipeline.models.presets import ModelSpec
from pipeline.options import BenchCommandOptions, TransformOptions, field_names
from pipeline.run.cost import Price

BENCH_STYLE = "boho"  # the style a restyle or a staging is timed in when --style is not given
FEW_STEPS = "its passes are timed at their recipe's steps and strengths (--steps), with no few-step recipe"
# What the bench cannot time in a declutter or a staging, each refused in one line (transform's own refusals,
# --style and --style-ref with a declutter among them, come from the plan): flag -> why.
MODE_REFUSES = {
    "sweep": ("--sweep", "the sweep's grid times restyles (its modes are standard and fast); time it without --sweep"),
    "compare": ("--compare", "--compare sets results files side by side and times nothing"),
    "fast": ("--fast", FEW_STEPS),
    "fast_recipe": ("--fast-recipe", FEW_STEPS),
}


@dataclass
class BenchSetup:
    """The bench's config, device, price, model preset and load options."""

    config: RunConfig
    device: object  # torch.device
    price: Price
    spec: ModelSpec
    load: LoadOptions
    synthetic_size: tuple[int, int]


def synthetic_size(text: str) -> tuple[int, int]:
    """'1024x768' -> (1024, 768), or a usage error."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--synthetic-size {text!r}: expected WxH, e.g. 768x512") from None
    return width, height


def bench_mode(o: BenchCommandOptions) -> str:
    """The mode the bench times, read as transform reads it (--mode, else declutter with --remove, else restyle);
    in a declutter or a staging, what the bench cannot time there is a one-line usage error, and only a staging
    has a second pass to leave out."""
    mode = TransformOptions(mode=o.mode, remove=o.remove).chosen_mode
    if not o.second_pass and mode != "stage":
        raise UsageError(f"--no-second-pass: only a staging (--mode stage) has a second pass, not --mode {mode}")
    if mode in ("declutter", "stage"):
        for name, (flag, why) in MODE_REFUSES.items():
            if getattr(o, name):
                raise UsageError(f"{flag} with --mode {mode}: {why}")
    return mode


def transform_options(o: BenchCommandOptions) -> TransformOptions:
    """The bench's options that transform has too, as transform's options object (they mean the same there); a
    restyle or a staging without --style is timed in BENCH_STYLE."""
    options = TransformOptions(**{name: getattr(o, name) for name in field_names(TransformOptions) if hasattr(o, name)})
    if options.style is None and options.chosen_mode in ("restyle", "stage"):
        options = replace(options, style=BENCH_STYLE)
    return options


def without_second_pass(style):
    """A staging without its second pass: the first pass's picture, composed, is the result."""
    return replace(style, staging=replace(style.staging, second_pass=False)) if style.staging else style


def bench_setup(o: BenchCommandOptions) -> BenchSetup:
    """Check every option of the bench before any model loads; the room defaults as `transform`'s does."""
    from pipeline.bench.sweep import check_sweep_options
    from pipeline.inputs.references import ReferenceReader
    from pipeline.models.placement import pick_device
    from pipeline.models.runtime import gpu_name
    from pipeline.r2 import Remote
    from pipeline.run.cost import resolve_price
    from pipeline.run.plan import model_plan, with_references

    if o.images < 1 or o.warmup < 0:
        raise UsageError("--images must be >= 1 and --warmup >= 0")
    bench_mode(o)
    check_sweep_options(o.sweep, o.inputs, o.sweep_batches, o.sweep_sizes, o.sweep_modes, o.sweep_dtypes)
    # The bench's options that transform has too mean the same there: they make the same options object.
    options = transform_options(o)
    spec, stock, config, _ = model_plan(options)  # as transform plans it; a prompt word here: no room warning
    if not o.second_pass:  # the first pass alone, the recipe's second pass left out (its results say so)
        config = replace(config, styles=tuple(without_second_pass(s) for s in config.styles))
    if config.options.style_ref:  # read and checked before any model loads, as transform does
        config = with_references(config, stock, ReferenceReader(Remote()))
    device = pick_device(o.device)
    size = synthetic_size(o.synthetic_size)
    price = resolve_price(gpu_name(device), o.gpu_price, o.currency)
    # Fused at load, unless the standard model must be timed beside it (the bench then switches in place).
    fused = o.recipe if o.recipe and not o.compare_diffusers else None
    # --ablate also times the scene segmentation; a declutter needs it for its removal mask either way
    also = {"segmenter": True} if o.ablate else {}
    load = config.load_options(channels_last=o.channels_last, fast=fused, **also)
    return BenchSetup(config, device, price, spec, load, size)


def load_stacks(setup: BenchSetup, compare_diffusers: bool, on_model=None) -> tuple:
    """The run's stack and, when plain diffusers is timed beside a run that is not fp32, an fp32 generator with
    the same weights for the fp32 baseline (plain diffusers as it comes); on a GPU with --compile on, the run's
    modules compiled in place (a CPU compiles its packages per shape as the run meets them)."""
    import torch

    from pipeline.models.load import load_baseline, load_stack

    stack = load_stack(setup.spec, setup.device, on_model=on_model, options=setup.load)
    baseline = None
    if compare_diffusers and stack.dtype != torch.float32:
        baseline = load_baseline(stack, torch.float32, setup.load, on_model)
    if setup.config.options.compile == "on" and stack.device.type == "cuda":  # its plain diffusers baseline too
        from pipeline.models.compiling import compile_generator

        compile_generator(stack.pipe, stack.device)
    return stack, baseline
