"""In this process: load the stack once, stream the plan's inputs through a Runner."""

from __future__ import annotations

import time

from pipeline.errors import EXIT_INTERRUPTED, ModomoError
from pipeline.models.load import load_stack
from pipeline.models.placement import pick_device
from pipeline.models.precision import report as precision_report
from pipeline.models.runtime import gpu_name
from pipeline.run.cost import resolve_price
from pipeline.run.hooks import Hooks
from pipeline.run.plan import RunPlan
from pipeline.run.result import RunResult
from pipeline.run.runner import Runner
from pipeline.run.signals import on_stop_signals, raise_interrupt


def run(plan: RunPlan, hooks: Hooks) -> RunResult:
    config = plan.config
    device = pick_device(config.options.device)
    name = gpu_name(device)
    price = resolve_price(name, config.options.gpu_price, config.options.currency)
    start = time.perf_counter()
    try:
        stack = load_stack(
            plan.spec,
            device,
            on_model=hooks.on_model,
            options=config.load_options(),
        )
    except KeyboardInterrupt:  # Ctrl-C before any image: one line, not a library's traceback
        raise ModomoError("interrupted while loading the models; nothing was written", EXIT_INTERRUPTED) from None
    load_seconds = time.perf_counter() - start
    runner = Runner(config, stack, plan.sink, on_event=hooks.on_event, journal=plan.journal)
    begun = time.time()
    with on_stop_signals(runner.request_stop, raise_interrupt, hooks.notice):
        result = runner.run(plan.items, plan.everything)
    result.load_seconds = load_seconds
    # `seconds` is the stream after the models loaded (the runner's); its wall-clock span lets a --devices
    # parent span its workers the same way.
    result.extra.update(span=[begun, time.time()], load_seconds_total=load_seconds)
    result.price = price
    result.extra.update(
        engine="modomo",
        device={"type": device.type, "name": name or "cpu"},
        models=plan.config.result_models(plan.spec),
        load=stack.load_seconds,
        precision=precision_report(stack),
        journal_reads=runner.journal.loads if runner.journal else 0,
    )
    return result
