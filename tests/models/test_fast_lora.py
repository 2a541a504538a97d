"""The --fast LoRAs: the tiny bundle's files and the random ones carry the published files' exact layout, load through
`load_lora_weights` with every key used, and fuse into the UNet leaving no adapter behind."""

from __future__ import annotations

import copy
import json
import logging
import math
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.errors import ModomoError, UsageError
from pipeline.models import fast_lora, random_sd15
from pipeline.models.catalog import resolve
from pipeline.models.download import download_fast, fast_recipes
from pipeline.models.fast_lora import LAYOUTS, SD15_KEYS, layout, lora_shapes, lora_source, random_lora
from pipeline.models.presets import bundle_fast_loras, sd15
from pipeline.models.recipes import RECIPES
from pipeline.models.tiny import FAST_RANK
from tests.cli.test_doctor import empty_caches, fake_hub_cache  # noqa: F401 - the fixture is used by name

KEY = re.compile(r"lora_unet_[a-z0-9_]+\.(lora_down\.weight|lora_up\.weight|alpha)")
# Keys of the tiny UNet named as the published files name SD1.5's, with their shapes at the tiny rank (4).
TINY_KEYS = {
    "lora_unet_down_blocks_2_attentions_0_proj_in.lora_down.weight": (4, 32, 1, 1),
    "lora_unet_down_blocks_2_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 32),
    "lora_unet_up_blocks_0_attentions_1_transformer_blocks_0_attn1_to_out_0.lora_up.weight": (32, 4),
    "lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj.lora_up.weight": (256, 4),
    "lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_2.lora_down.weight": (4, 128),
    "lora_unet_down_blocks_1_resnets_0_conv_shortcut.lora_up.weight": (32, 4, 1, 1),
    "lora_unet_down_blocks_0_downsamplers_0_conv.lora_down.weight": (4, 16, 3, 3),
    "lora_unet_up_blocks_1_upsamplers_0_conv.alpha": (),
    "lora_unet_up_blocks_2_resnets_1_time_emb_proj.lora_down.weight": (4, 64),
    "lora_unet_mid_block_resnets_1_conv2.lora_up.weight": (32, 4, 1, 1),
}
TINY_MODULES = 92  # 4 transformers x 12, 11 resnets x 3, 7 shortcuts, 4 resamplers
# The same keys on SD1.5's UNet, at the published rank (64).
SD15_SHAPES = {
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (64, 320, 1, 1),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (64, 768),
    "lora_unet_up_blocks_3_resnets_2_conv1.lora_down.weight": (64, 640, 3, 3),
    "lora_unet_mid_block_resnets_0_time_emb_proj.lora_up.weight": (1280, 64),
    "lora_unet_up_blocks_0_upsamplers_0_conv.lora_down.weight": (64, 1280, 3, 3),
    "lora_unet_down_blocks_3_resnets_1_conv2.alpha": (),
}
NOT_ADAPTED = ("conv_in", "conv_out", "time_embedding", "norm", "lora_te")


@pytest.fixture(scope="module")
def sd15_unet():
    """SD1.5's UNet on the meta device: every module and shape, no memory, no weights."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel.from_config(random_sd15.configs()["unet"])


def file_size(shapes: dict, dtype: str, metadata: dict | None) -> int:
    """The size safetensors gives these tensors (one dtype): 8-byte length, JSON header padded to 8, data."""
    code, width = {"float16": ("F16", 2), "float32": ("F32", 4)}[dtype]
    header, offset = ({"__metadata__": metadata} if metadata else {}), 0
    for key in sorted(shapes):
        end = offset + width * math.prod(shapes[key])
        header[key] = {"dtype": code, "shape": list(shapes[key]), "data_offsets": [offset, end]}
        offset = end
    text = json.dumps(header, separators=(",", ":"))
    return 8 + len(text) + (-len(text) % 8) + offset


@contextmanager
def diffusers_warnings():
    """What diffusers warns while loading (the tiny stack keeps it quiet otherwise)."""
    from diffusers.utils import logging as diffusers_logging

    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    root = logging.getLogger("diffusers")
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_warning()
    root.addHandler(handler)
    try:
        yield messages
    finally:
        root.removeHandler(handler)
        diffusers_logging.set_verbosity(level)


def tuner_layers(module) -> dict[str, torch.nn.Module]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {name: m for name, m in module.named_modules() if isinstance(m, BaseTunerLayer)}


def unet_output(unet) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=generator)
    text = torch.randn(1, 7, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        return unet(sample, torch.tensor([500]), text).sample


@pytest.mark.parametrize("name", list(RECIPES))
def test_tiny_bundle_file_has_the_published_layout(tiny_bundle, name):
    path = tiny_bundle / "fast" / f"{name}.safetensors"
    state = load_file(path)
    assert all(KEY.fullmatch(key) for key in state), [k for k in state if not KEY.fullmatch(k)][:3]
    assert len(state) == 3 * TINY_MODULES
    for key, shape in TINY_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    assert not [k for k in state if any(part in k for part in NOT_ADAPTED)]
    assert {str(t.dtype) for t in state.values()} == {f"torch.{LAYOUTS[name].dtype}"}
    assert all(state[k].item() == FAST_RANK for k in state if k.endswith(".alpha"))
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata() == LAYOUTS[name].metadata


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_key_loads_and_fusing_leaves_only_the_weights(tiny_bundle, tiny_stack, name):
    pipe = copy.deepcopy(tiny_stack.pipe)  # the shared stack stays as it is
    unet, path = pipe.unet, tiny_bundle / "fast" / f"{name}.safetensors"
    state, keys_before = load_file(path), set(unet.state_dict())
    base, conv_in = unet_output(unet), unet.conv_in.weight.detach().clone()
    probe = "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_k"
    weight = unet.get_submodule(probe).weight.detach().clone()
    with diffusers_warnings() as warned:
        pipe.load_lora_weights(str(path), adapter_name="fast")
    assert not [m for m in warned if not m.startswith("No LoRA keys associated to CLIPTextModel")], warned
    wrapped = tuner_layers(unet)
    assert {"lora_unet_" + n.replace(".", "_") for n in wrapped} == {
        k.rsplit(".", 2)[0] for k in state if k.endswith(".lora_down.weight")
    }
    for module_name, module in wrapped.items():  # every tensor of the file is the one in use, alpha included
        base_key = "lora_unet_" + module_name.replace(".", "_")
        assert torch.equal(module.lora_A["fast"].weight, state[base_key + ".lora_down.weight"].float())
        assert torch.equal(module.lora_B["fast"].weight, state[base_key + ".lora_up.weight"].float())
        assert module.scaling["fast"] == state[base_key + ".alpha"].item() / FAST_RANK
    assert not tuner_layers(pipe.text_encoder)
    pipe.fuse_lora(lora_scale=1.0, adapter_names=["fast"])
    pipe.unload_lora_weights()
    assert not tuner_layers(unet) and set(unet.state_dict()) == keys_before
    key = "lora_unet_" + probe.replace(".", "_")
    delta = state[key + ".lora_up.weight"].float() @ state[key + ".lora_down.weight"].float()
    assert torch.allclose(unet.get_submodule(probe).weight, weight + delta, atol=1e-6)
    assert torch.equal(unet.conv_in.weight, conv_in)
    fused = unet_output(unet)
    change = ((fused - base).std() / base.std()).item()
    assert torch.isfinite(fused).all() and 0.01 < change < 0.2, change
    assert not tuner_layers(tiny_stack.pipe.unet)


def test_sizes_match_what_safetensors_writes(tiny_stack):
    for name in RECIPES:
        spec, state = layout(name), random_lora(tiny_stack.pipe.unet, name, rank=FAST_RANK)
        shapes = lora_shapes(tiny_stack.pipe.unet, name, FAST_RANK)
        assert len(save(state, metadata=spec.metadata)) == file_size(shapes, spec.dtype, spec.metadata)


@pytest.mark.parametrize("name", list(RECIPES))
def test_the_sd15_layout_is_the_published_file_to_the_byte(sd15_unet, name):
    shapes, spec = lora_shapes(sd15_unet, name), LAYOUTS[name]
    assert len(shapes) == SD15_KEYS == 834
    for key, shape in SD15_SHAPES.items():
        assert shapes[key] == shape, key
    assert sum(math.prod(s) for k, s in shapes.items() if not k.endswith(".alpha")) == 67_252_224
    assert file_size(shapes, spec.dtype, spec.metadata) == spec.size  # the size the hub lists for the real file


def test_random_sd15_builds_the_real_layout_in_memory(sd15_unet):
    state = random_sd15.build_fast_lora(sd15_unet, "tcd")
    assert {k: tuple(v.shape) for k, v in state.items()} == lora_shapes(sd15_unet, "tcd")
    assert {v.dtype for v in state.values()} == {torch.float16} and state[next(iter(SD15_SHAPES))].device.type == "cpu"
    down = state["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"].float()
    assert abs(down.std().item() - 320**-0.5) < 0.01  # scaled to its fan-in: sane at any width
    again = random_lora(sd15_unet, "tcd")
    assert all(torch.equal(state[k], again[k]) for k in SD15_SHAPES)
    other = random_lora(sd15_unet, "lcm")
    assert not torch.equal(state[next(iter(SD15_SHAPES))], other[next(iter(SD15_SHAPES))])


def test_where_each_preset_keeps_its_lora(tiny_bundle, empty_caches, tmp_path):  # noqa: F811
    spec = sd15()
    assert spec.fast_loras == {name: f"hub:{recipe.hub_id}" for name, recipe in RECIPES.items()}
    assert not any("lora" in value.lower() for value in spec.ids().values())
    assert lora_source(spec, "lcm") is None  # not cached: never fetched here
    fake_hub_cache(empty_caches, "latent-consistency/lcm-lora-sdv1-5", "pytorch_lora_weights.safetensors")
    assert Path(lora_source(spec, "lcm")).is_file() and lora_source(spec, "hyper") is None
    bundled = resolve(str(tiny_bundle))
    for name in RECIPES:
        assert lora_source(bundled, name) == str(tiny_bundle / "fast" / f"{name}.safetensors")
        assert lora_source(resolve("random-sd15"), name) == f"{fast_lora.RANDOM}{name}"
    assert bundle_fast_loras(tmp_path) == {}
    with pytest.raises(UsageError, match="lcm, tcd, hyper"):
        lora_source(spec, "turbo")


def test_download_fetches_the_chosen_recipes_only(empty_caches):  # noqa: F811
    assert fast_recipes(None) == ["lcm"] and fast_recipes("all") == list(RECIPES) and fast_recipes("tcd") == ["tcd"]
    with pytest.raises(UsageError, match="or all"):
        fast_recipes("turbo")
    fake_hub_cache(empty_caches, "h1t/TCD-SD15-LoRA", "pytorch_lora_weights.safetensors")
    assert [Path(p).name for p in download_fast(sd15(), ["tcd"], report=lambda _: None)] == [
        "pytorch_lora_weights.safetensors"
    ]
    with pytest.raises(ModomoError, match="cannot download ByteDance/Hyper-SD/Hyper-SD15-8steps-lora.safetensors"):
        download_fast(sd15(), ["hyper"], report=lambda _: None)
    assert download_fast(resolve("random-sd15"), list(RECIPES), report=lambda _: None) == []


def test_models_download_fast_options(tiny_bundle, empty_caches):  # noqa: F811
    result = CliRunner().invoke(app, ["models", "download", "sd15", "--fast-recipe", "turbo"])
    assert result.exit_code == 2 and "choose lcm, tcd, hyper or all" in result.stderr
    result = CliRunner().invoke(app, ["models", "download", str(tiny_bundle), "--fast"])
    assert result.exit_code == 0 and "nothing to download" in " ".join(result.stderr.split())
