"""Whether pre-packing a convolution's weights once for oneDNN (what a compiled package's frozen weights do) pays in
an eager bf16 call on this CPU: the UNet's 3x3 convolutions at their sizes for 256x192 with batch 2 and guidance
(4 latents), channels-last, called as `torch.nn.Conv2d` (oneDNN reorders the weights at every call) and as
`torch.ops.mkldnn._convolution_pointwise` on weights reordered once (`mkldnn_reorder_conv2d_weight`); the best of
20 calls each, and the largest difference between the two outputs. The host memory kept, as in a modomo run.

    python benchmarks/conv_prepack_probe.py [--out benchmarks/cpu/conv-prepack-probe-bf16.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (in channels, out channels, latent height, latent width) of the UNet's 3x3 convolutions at 256x192
SHAPES = [(320, 320, 24, 32), (640, 640, 12, 16), (1280, 1280, 12, 16), (2560, 1280, 6, 8)]
PAD = STRIDE = DILATION = [1, 1]


def best_ms(call, calls: int = 20) -> float:
    times = []
    with torch.inference_mode():
        for i in range(calls + 3):
            start = time.perf_counter()
            call()
            if i >= 3:
                times.append(time.perf_counter() - start)
    return round(min(times) * 1e3, 3)


def one(shape: tuple) -> dict:
    cin, cout, height, width = shape
    conv = torch.nn.Conv2d(cin, cout, 3, padding=1).to(torch.bfloat16).to(memory_format=torch.channels_last)
    x = torch.randn(4, cin, height, width).to(torch.bfloat16).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
            conv.weight.to_mkldnn(), PAD, STRIDE, DILATION, 1, list(x.shape)
        )

        def prepacked():
            return torch.ops.mkldnn._convolution_pointwise(
                x, packed, conv.bias, PAD, STRIDE, DILATION, 1, "none", [], ""
            )

        difference = float((conv(x).float() - prepacked().float()).abs().max())
    eager, once = best_ms(lambda: conv(x)), best_ms(prepacked)
    return {
        "shape": shape,
        "eager_ms": eager,
        "prepacked_ms": once,
        "speedup": round(eager / once, 2),
        "max_difference": difference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/cpu/conv-prepack-probe-bf16.json"))
    args = parser.parse_args()
    from pipeline.bench.peak import cpu_model
    from pipeline.models.host_memory import keep_host_memory

    keep_host_memory()
    found = {
        "date": date.today().isoformat(),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "command": "python benchmarks/conv_prepack_probe.py",
        "results": [one(shape) for shape in SHAPES],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(found, indent=2) + "\n")
    print(json.dumps(found["results"], indent=2))


if __name__ == "__main__":
    main()
