"""--fast: each recipe's LoRA fused at load, its scheduler and settings; modomo's loop against diffusers' own."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import config_for
from pipeline.errors import UsageError
from pipeline.models.catalog import resolve
from pipeline.models.fast_mode import fuse
from pipeline.models.recipes import RECIPES
from pipeline.options import TransformOptions
from pipeline.stages.generate import diffusers_pipe
from pipeline.stages.sampling import Sampler
from pipeline.stages.settings import GenerateSettings
from styles import STYLE_DIR, load_style
from tests.conftest import restyle
from tests.stages.test_sampling import SIZE, make_frames, pixels


def settings_for(name: str) -> GenerateSettings:
    recipe = RECIPES[name]
    return GenerateSettings(
        prompt="a bohemian living room",
        negative_prompt="blurry",
        steps=recipe.steps,
        guidance_scale=recipe.guidance_scale,
        controlnet_conditioning_scale=(0.9, 0.6),
        control_guidance_start=(0.0, 0.0),
        control_guidance_end=(1.0, 0.6),
        eta=recipe.eta,
    )


@pytest.fixture(scope="module")
def fused(tiny_bundle, tiny_stack):
    """Per recipe, a copy of the tiny pipeline with the recipe fused in (the shared stack stays as it is)."""
    spec = resolve(str(tiny_bundle))
    pipes = {}
    for name in RECIPES:
        pipe = copy.deepcopy(tiny_stack.pipe)
        fuse(pipe, spec, name)
        pipes[name] = pipe
    return pipes


@pytest.mark.parametrize("name", list(RECIPES))
def test_fast_loop_equals_diffusers_with_the_same_scheduler_and_fused_lora(fused, rooms, name):
    pipe, settings = fused[name], settings_for(name)
    assert type(pipe.scheduler).__name__ == RECIPES[name].scheduler
    frames = make_frames(rooms, 2)
    sampler = Sampler(pipe, None, torch.device("cpu"))
    controls = [[f.depth for f in frames], [f.edges for f in frames]]

    def ours(output_type):
        generators = [torch.Generator("cpu").manual_seed(f.seed) for f in frames]
        return sampler(settings, controls, generators, SIZE[1], SIZE[0], output_type=output_type)

    kwargs = {"eta": settings.eta} if settings.eta is not None else {}
    view = diffusers_pipe(pipe, settings.controls)  # the stack's depth and canny nets (it holds lines too)
    reference = view(
        prompt=[settings.prompt] * 2,
        negative_prompt=[settings.negative_prompt] * 2,
        image=[[f.depth, f.edges] for f in frames],
        height=SIZE[1],
        width=SIZE[0],
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        controlnet_conditioning_scale=list(settings.controlnet_conditioning_scale),
        control_guidance_start=list(settings.control_guidance_start),
        control_guidance_end=list(settings.control_guidance_end),
        generator=[torch.Generator("cpu").manual_seed(f.seed) for f in frames],
        output_type="latent",
        **kwargs,
    ).images
    assert torch.allclose(ours("latent"), reference, atol=1e-3), (ours("latent") - reference).abs().max()
    images = view(
        prompt=[settings.prompt] * 2,
        negative_prompt=[settings.negative_prompt] * 2,
        image=[[f.depth, f.edges] for f in frames],
        height=SIZE[1],
        width=SIZE[0],
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        controlnet_conditioning_scale=list(settings.controlnet_conditioning_scale),
        control_guidance_start=list(settings.control_guidance_start),
        control_guidance_end=list(settings.control_guidance_end),
        generator=[torch.Generator("cpu").manual_seed(f.seed) for f in frames],
        **kwargs,
    ).images
    for mine, made in zip(ours("pil"), images, strict=True):
        assert np.abs(pixels(mine) - pixels(made)).max() <= 2


@pytest.mark.parametrize("name", list(RECIPES))
def test_the_fused_lora_changes_the_result(fused, tiny_stack, rooms, name):
    """The same scheduler and settings on the unfused UNet give other latents: the LoRA does work."""
    plain = copy.deepcopy(tiny_stack.pipe)
    plain.scheduler = type(fused[name].scheduler).from_config(fused[name].scheduler.config)
    frames = make_frames(rooms, 1)
    settings = settings_for(name)
    runs = []
    for pipe in (fused[name], plain):
        generators = [torch.Generator("cpu").manual_seed(frames[0].seed)]
        runs.append(
            Sampler(pipe, None, torch.device("cpu"))(
                settings, [[frames[0].depth], [frames[0].edges]], generators, SIZE[1], SIZE[0], output_type="latent"
            )
        )
    assert (runs[0] - runs[1]).abs().max() > 1e-2
    assert not any("lora" in n for n, _ in fused[name].unet.named_modules())  # fused, no adapter left


def test_fast_settings_follow_the_recipe_and_the_styles_fast_table(tmp_path):
    style = load_style("boho")
    config = config_for(TransformOptions(inputs=["x"], fast=True), styles=[style])
    settings = config.generate_settings()
    assert (settings.steps, settings.guidance_scale) == (6, 1.0)
    assert settings.controlnet_conditioning_scale == (style.depth.scale, style.canny.scale)
    assert config_for(TransformOptions(inputs=["x"], fast_recipe="tcd"), styles=[style]).generate_settings().eta == 0.3
    own = tmp_path / "light.toml"
    own.write_text(
        (STYLE_DIR / "boho.toml").read_text().replace('name = "boho"', 'name = "light"')
        + "\n[fast]\nenabled = true\nsteps = 5\n[fast.controls.depth]\nscale = 0.5\n"
    )
    light = load_style(path=own)
    config = config_for(TransformOptions(inputs=["x"]), styles=[light])
    assert config.recipe == "lcm"  # the style asks for fast mode itself
    settings = config.generate_settings()
    assert settings.steps == 5 and settings.controlnet_conditioning_scale[0] == 0.5
    assert settings.control_guidance_end[0] == style.depth.end  # not overridden: the style's own
    standard = config_for(TransformOptions(inputs=["x"]), styles=[style])
    assert "fast" not in standard.settings_json() and config.settings_json()["fast"]["recipe"] == "lcm"
    with pytest.raises(UsageError, match="some styles run fast"):
        config_for(TransformOptions(inputs=["x"]), styles=[light, style])
    with pytest.raises(UsageError, match="--fast-recipe 'nope'"):
        config_for(TransformOptions(inputs=["x"], fast_recipe="nope"), styles=[style])


def test_fast_run_records_its_recipe_and_resumes_apart(tiny_bundle, rooms, tmp_path):
    photo = tmp_path / "room.jpg"
    shutil.copy(rooms / "living-room-02-small.jpg", photo)
    out = tmp_path / "out"
    fast = restyle(tiny_bundle, photo, out, "--fast")
    record = fast["images"][0]
    meta = json.loads(Path(record["outputs"]["metadata"]).read_text())
    assert meta["settings"]["fast"]["lora"] == RECIPES["lcm"].hub_id and meta["settings"]["guidance_scale"] == 1.0
    assert restyle(tiny_bundle, photo, out, "--fast")["images"][0]["status"] == "skipped"
    assert restyle(tiny_bundle, photo, out)["images"][0]["status"] == "ok"  # standard settings: another result
