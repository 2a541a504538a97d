"""`--compile on` on a GPU: `torch.compile` of the denoising models in place, the UNet and every ControlNet (CUDA
graphs and kernels are built during the first calls of each shape; the bench's warm-up runs every shape first).

On the CPU, --compile builds ahead-of-time packages per working shape instead (models.compiled): in-place
`torch.compile` with frozen weights kept a copy of the weights per shape in memory, traced again in every run,
and, without freezing, ran slower than eager there (docs/benchmarking.md, "Compiled on the CPU").
"""

from __future__ import annotations

import torch


def compile_generator(pipe, device: torch.device) -> list:
    """Compile the pipeline's UNet and ControlNets in place; the modules compiled."""
    modules = [pipe.unet, *pipe.controlnet.nets]
    for module in modules:
        module.compile()
    return modules
