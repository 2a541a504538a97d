"""In this process: load the stack once, stream the plan's inputs through a Runner."""

from __future__ import annotations

import time

import torch

from pipeline.models.load import LoadOptions, load_stack, pick_device
from pipeline.run.cost import resolve_price
from pipeline.run.hooks import Hooks
from pipeline.run.plan import RunPlan
from pipeline.run.result import RunResult
from pipeline.run.runner import Runner
from pipeline.run.signals import on_stop_signals, raise_interrupt


def gpu_name(device: torch.device) -> str | None:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def run(plan: RunPlan, hooks: Hooks) -> RunResult:
    config = plan.config
    device = pick_device(config.device)
    name = gpu_name(device)
    price = resolve_price(name, config.gpu_price, config.currency)
    start = time.perf_counter()
    stack = load_stack(plan.spec, device, on_model=hooks.on_model, options=LoadOptions(fast=config.fast))
    load_seconds = time.perf_counter() - start
    runner = Runner(config, stack, plan.sink, on_event=hooks.on_event, journal=plan.journal)
    with on_stop_signals(runner.request_stop, raise_interrupt, hooks.notice):
        result = runner.run(plan.items, plan.everything)
    result.load_seconds = load_seconds
    result.price = price
    result.extra.update(engine="modomo", device={"type": device.type, "name": name or "cpu"},
                        models=plan.config.result_models(plan.spec), load=stack.load_seconds,
                        journal_reads=runner.journal.loads if runner.journal else 0)
    return result
