"""The denoising loop through --compile's packages gives the eager loop's latents: each ControlNet scaled after its
package (the window's scale, 0 outside it), the UNet fed zero residuals at steps where no ControlNet runs (one
UNet package per shape, not two). The stand-in backend (plain torch.export) keeps the numbers the eager model's,
so the comparison is tight; AOTInductor's own kernels are checked end to end in tests/run/test_compile_run.py."""

from __future__ import annotations

from dataclasses import replace

import torch

from pipeline.models.compiled.backends import ExportOnly
from pipeline.models.compiled.denoisers import CompiledModels, Denoisers
from pipeline.stages.sampling import Sampler
from tests.stages.test_sampling import SETTINGS, SIZE, controls, make_frames, ours

# Every control ends before the last steps: those steps run the UNet with no ControlNet.
EARLY_END = replace(SETTINGS, control_guidance_end=(0.5, 0.6, 0.5))


def compiled(stack, settings, frames, models) -> tuple[torch.Tensor, Denoisers]:
    run = Denoisers(models, "on", queue=len(frames))
    sampler = Sampler(stack.pipe, None, stack.device, compiled=run)
    generators = [torch.Generator("cpu").manual_seed(f.seed) for f in frames]
    out = sampler(settings, controls(settings, frames), generators, SIZE[1], SIZE[0], output_type="latent")
    return out, run


def test_the_compiled_loop_gives_the_eager_loops_latents(tiny_stack, rooms, tmp_path):
    frames = make_frames(rooms)
    models = CompiledModels(1, backend=ExportOnly(), root=tmp_path)
    for settings in (SETTINGS, EARLY_END):
        eager, _ = ours(tiny_stack, settings, frames, output_type="latent")
        made, run = compiled(tiny_stack, settings, frames, models)
        torch.testing.assert_close(made, eager, rtol=1e-4, atol=1e-4)
        assert run.failed == {}
    held = [key for packages in models.held.shapes.values() for key in packages]
    assert sorted(key.split("-")[0] for key in held) == ["controlnet"] * 3 + ["unet"]  # one UNet package
    assert models.made == {"compiled": 4}  # the second settings ran on the first's packages
