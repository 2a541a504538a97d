"""What an ahead-of-time compiled denoiser costs on this CPU: the tiny UNet (the suite's random bundle) exported with
`torch.export`, compiled into a package by AOTInductor with frozen weights (`freezing`: constants folded, weights
pre-packed), then loaded back; the seconds of each step, the package's size, and the largest difference from the
eager model on the same inputs, in bf16 (fp32 with --dtype fp32).

    python benchmarks/aoti_probe.py [--dtype bf16] [--out benchmarks/cpu/aoti-probe-tiny-unet.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path

import torch


class Denoiser(torch.nn.Module):
    """The UNet's call as the sampler makes it, with plain tensors in and out (what export takes)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, latents, step, text):
        return self.unet(latents, step, encoder_hidden_states=text, return_dict=False)[0]


def probe(dtype: torch.dtype, folder: Path) -> dict:
    from diffusers import UNet2DConditionModel

    from pipeline.bench.peak import cpu_model
    from pipeline.models.catalog import tiny

    unet = UNet2DConditionModel.from_pretrained(Path(tiny().sd) / "unet", torch_dtype=dtype).eval()
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, unet.config.in_channels, 16, 16, generator=generator).to(dtype)
    text = torch.randn(2, 77, unet.config.cross_attention_dim, generator=generator).to(dtype)
    inputs = (latents, torch.tensor([500, 500]), text)
    model = Denoiser(unet)
    with torch.inference_mode():
        eager = model(*inputs)
    seconds = {}
    start = time.perf_counter()
    exported = torch.export.export(model, inputs)
    seconds["export"] = time.perf_counter() - start
    start = time.perf_counter()
    package = torch._inductor.aoti_compile_and_package(
        exported, package_path=str(folder / "unet.pt2"), inductor_configs={"freezing": True}
    )
    seconds["compile"] = time.perf_counter() - start
    start = time.perf_counter()
    loaded = torch._inductor.aoti_load_package(package)
    seconds["load"] = time.perf_counter() - start
    with torch.inference_mode():
        compiled = loaded(*inputs)
    return {
        "date": date.today().isoformat(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "model": "tiny UNet (pipeline.models.catalog.tiny), batch 2, 16x16 latents",
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "package_bytes": Path(package).stat().st_size,
        "max_difference": float((compiled.float() - eager.float()).abs().max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/cpu/aoti-probe-tiny-unet.json"))
    args = parser.parse_args()
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    with tempfile.TemporaryDirectory(prefix="modomo-aoti-") as folder:
        found = probe(dtype, Path(folder))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(found, indent=2) + "\n")
    print(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
