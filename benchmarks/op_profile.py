"""Where an eager bf16 UNet call's time goes on this CPU, and how close each kind of op comes to the measured bf16
matmul peak: the random-sd15 UNet (full SD1.5 size, random weights) with packed layers, channels-last, called as
the sampler calls it at 256x192 with batch 2 and guidance (4 latents of 32x24). torch's profiler times each op
(self time); the convolutions' and linear layers' FLOPs are counted from their modules' calls, attention's from
its shapes. The last line of the table is the bound it sets: the call's FLOPs over the time of its matrix work
alone, as a share of the peak (what the call would reach if every other op took no time).

    python benchmarks/op_profile.py [--calls 3] [--batch 2] [--out benchmarks/cpu/op-profile-random-sd15-unet.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = {  # profiler op name -> kind
    "mkldnn::_convolution_pointwise": "convolution",
    "mkldnn::_linear_pointwise": "linear",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "attention",
}


def unet():
    from diffusers import UNet2DConditionModel

    from pipeline.models.prepacked import prepack
    from pipeline.models.random_sd15 import configs

    torch.manual_seed(0)
    model = UNet2DConditionModel.from_config(configs()["unet"])
    model = model.to(torch.bfloat16).to(memory_format=torch.channels_last).eval()
    prepack([model])
    return model


class Counted:
    """FLOPs per kind of one call (forward hooks on the layers, the attention's inputs), and each convolution's
    FLOPs and seconds by the resolution it runs at while `timing`."""

    def __init__(self, model):
        self.on, self.timing, self.flops, self.levels, self.started = True, False, Counter(), {}, 0.0
        attention = torch.nn.functional.scaled_dot_product_attention

        def sdpa(q, k, v, *args, **kwargs):
            if self.on:
                self.flops["attention"] += 4 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.shape[3]
            return attention(q, k, v, *args, **kwargs)

        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.register_forward_pre_hook(self.start)
                module.register_forward_hook(self.conv if isinstance(module, torch.nn.Conv2d) else self.linear)
        torch.nn.functional.scaled_dot_product_attention = sdpa

    def start(self, module, inputs):
        self.started = time.perf_counter()

    def conv(self, module, inputs, output):
        kh, kw = module.kernel_size
        flops = 2 * output.numel() * module.in_channels // module.groups * kh * kw
        if self.timing:
            level = self.levels.setdefault(f"{inputs[0].shape[3]}x{inputs[0].shape[2]}", Counter())
            level["flops"] += flops
            level["seconds"] += time.perf_counter() - self.started
        self.flops["convolution"] += flops if self.on else 0

    def linear(self, module, inputs, output):
        self.flops["linear"] += 2 * output.numel() * module.in_features if self.on else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2, help="images a call (each twice: guidance)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/cpu/op-profile-random-sd15-unet.json"))
    args = parser.parse_args()
    from pipeline.bench.peak import cpu_model, probe

    model = unet()
    generator = torch.Generator().manual_seed(1)
    latents = 2 * args.batch
    sample = torch.randn(latents, 4, 24, 32, generator=generator).to(torch.bfloat16)
    step = torch.tensor([500] * latents)
    text = torch.randn(latents, 77, 768, generator=generator).to(torch.bfloat16)
    counted = Counted(model)
    with torch.inference_mode():
        model(sample, step, encoder_hidden_states=text)  # packs the layers, counts one call's FLOPs
        counted.on, counted.timing = False, True
        for _ in range(args.calls):  # each convolution timed apart, by the resolution it runs at
            model(sample, step, encoder_hidden_states=text)
        counted.timing = False
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            for _ in range(args.calls):
                model(sample, step, encoder_hidden_states=text)
    seconds: Counter = Counter()
    for event in profile.key_averages():
        seconds[KINDS.get(event.key, "other")] += event.self_cpu_time_total / 1e6 / args.calls
    peak = probe(torch.bfloat16)
    report(args, counted, seconds, peak, cpu_model())


def report(args, counted: Counted, seconds: Counter, peak: float, cpu: str) -> None:
    flops = counted.flops
    total = sum(seconds.values())
    rows = {}
    for kind in ("convolution", "linear", "attention", "other"):
        rate = flops[kind] / seconds[kind] / 1e12 if flops[kind] else None
        rows[kind] = {
            "seconds_per_call": round(seconds[kind], 4),
            "share_of_call": round(seconds[kind] / total, 3),
            "gflops": round(flops[kind] / 1e9, 2),
            "tflops": round(rate, 3) if rate else None,
            "share_of_peak": round(rate / peak, 3) if rate else None,
        }
        print(f"{kind:12s} {seconds[kind]:7.3f} s  {seconds[kind] / total:5.1%} of the call", end="")
        print(f"  {rate:5.2f} TFLOP/s, {rate / peak:5.1%} of peak" if rate else "")
    levels = {}
    for name, level in counted.levels.items():
        rate = level["flops"] / level["seconds"] / 1e12
        levels[name] = {"seconds_per_call": round(level["seconds"] / args.calls, 4), "tflops": round(rate, 3),
                        "share_of_peak": round(rate / peak, 3)}  # fmt: skip
        print(f"convolutions at {name:6s} {level['seconds'] / args.calls:6.3f} s  {rate:5.2f} TFLOP/s, "
              f"{rate / peak:5.1%} of peak")  # fmt: skip
    matrix = sum(seconds[k] for k in ("convolution", "linear", "attention"))
    whole, bound = sum(flops.values()) / total / 1e12, sum(flops.values()) / matrix / 1e12
    print(f"the call     {total:7.3f} s  {whole:5.2f} TFLOP/s, {whole / peak:5.1%} of the {peak:.2f} TFLOP/s peak")
    print(f"bound: every other op free: {bound:5.2f} TFLOP/s, {bound / peak:5.1%} of peak")
    result = {
        "date": str(date.today()),
        "cpu": cpu,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "command": f"python benchmarks/op_profile.py --calls {args.calls} --batch {args.batch}",
        "shape": f"random-sd15 UNet, bf16, packed layers, channels-last, {2 * args.batch} latents 32x24 (256x192, "
        f"batch {args.batch}, guidance)",
        "peak_tflops": round(peak, 3),
        "kinds": rows,
        "convolutions_by_resolution": levels,
        "call": {"seconds": round(total, 4), "tflops": round(whole, 3), "share_of_peak": round(whole / peak, 3)},
        "bound_share_of_peak": round(bound / peak, 3),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
