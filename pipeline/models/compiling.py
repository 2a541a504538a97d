"""`torch.compile` of the denoising models, in place: the UNet and the ControlNets (`modomo bench --compile`).

On the CPU, inductor's frozen weights (`torch._inductor.config.freezing`: constants folded, weights pre-packed
for oneDNN) made a bf16 UNet + ControlNet step 1.43x faster than eager on the 2-core test machine, but each batch
shape compiled for about 80 s and kept its own frozen copy of the weights: a bench that also times plain
diffusers (other batch shapes) ran out of 24 GB. So it is not switched on here; plain compilation, without
freezing, was 0.83x eager's speed on that CPU (docs/benchmarking.md, "bfloat16 on the CPU").
"""

from __future__ import annotations

import torch


def compile_generator(pipe, device: torch.device) -> list:
    """Compile the pipeline's UNet and ControlNets in place; the modules compiled."""
    modules = [pipe.unet, *pipe.controlnet.nets]
    for module in modules:
        module.compile()
    return modules
