"""What `modomo bench` needs before any model loads, from its options: the run config, device, price, model
preset and load options, every option checked by the plan `transform` uses (`run.plan.model_plan`)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import RunConfig
from pipeline.errors import UsageError
from pipeline.models.placement import LoadOptions
from pipeline.models.presets import ModelSpec
from pipeline.options import BenchCommandOptions, TransformOptions, field_names
from pipeline.run.cost import Price


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
    check_sweep_options(o.sweep, o.inputs, o.sweep_batches, o.sweep_sizes, o.sweep_modes, o.sweep_dtypes)
    # The bench's options that transform has too mean the same there: they make the same options object.
    options = TransformOptions(**{name: getattr(o, name) for name in field_names(TransformOptions) if hasattr(o, name)})
    spec, stock, config, _ = model_plan(options)  # as transform plans it; a prompt word here: no room warning
    if config.options.style_ref:  # read and checked before any model loads, as transform does
        config = with_references(config, stock, ReferenceReader(Remote()))
    device = pick_device(o.device)
    size = synthetic_size(o.synthetic_size)
    price = resolve_price(gpu_name(device), o.gpu_price, o.currency)
    # Fused at load, unless the standard model must be timed beside it (the bench then switches in place).
    fused = o.recipe if o.recipe and not o.compare_diffusers else None
    # --ablate also times the scene segmentation
    load = config.load_options(channels_last=o.channels_last, fast=fused, segmenter=o.ablate)
    return BenchSetup(config, device, price, spec, load, size)


def load_stacks(setup: BenchSetup, compare_diffusers: bool, compile_models: bool, on_model=None) -> tuple:
    """The run's stack and, when plain diffusers is timed beside a run that is not fp32, an fp32 generator with
    the same weights for the fp32 baseline (plain diffusers as it comes); the run's compiled when asked."""
    import torch

    from pipeline.models.load import load_baseline, load_stack

    stack = load_stack(setup.spec, setup.device, on_model=on_model, options=setup.load)
    baseline = None
    if compare_diffusers and stack.dtype != torch.float32:
        baseline = load_baseline(stack, torch.float32, setup.load, on_model)
    if compile_models:  # the run's stack (its plain diffusers baseline too); the fp32 baseline stays plain
        from pipeline.models.compiling import compile_generator

        compile_generator(stack.pipe, stack.device)
    return stack, baseline
