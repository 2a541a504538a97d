"""The session's shelf of loaded stacks hands a stack out again only while it is exactly as loaded."""

from __future__ import annotations

import torch

from pipeline.models.catalog import resolve
from pipeline.models.load import load_stack
from pipeline.models.placement import LoadOptions
from tests.stacks import StackShelf


def test_a_stack_is_shared_until_a_run_changes_it(tiny_bundle):
    shelf = StackShelf(load_stack)
    spec, cpu = resolve(str(tiny_bundle)), torch.device("cpu")
    first = shelf(spec, cpu, options=LoadOptions(dtype="fp32"))
    assert shelf(spec, cpu, options=LoadOptions(dtype="fp32")) is first
    assert shelf(spec, cpu, options=LoadOptions(dtype="fp32", controls=("depth",))) is not first  # other options
    with torch.no_grad():
        first.pipe.controlnet.nets[1].controlnet_cond_embedding.conv_in.weight[0, 0, 0, 0] += 1e-3
    again = shelf(spec, cpu, options=LoadOptions(dtype="fp32"))
    assert again is not first and shelf.loads == 3 and shelf.reuses == 1
    first.pipe.scheduler = type(first.pipe.scheduler).from_config(first.pipe.scheduler.config, solver_order=1)
    again.pipe.scheduler = first.pipe.scheduler
    assert shelf(spec, cpu, options=LoadOptions(dtype="fp32")) is not again  # a swapped scheduler counts too
