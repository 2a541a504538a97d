"""The IP-Adapter: the tiny bundle's loads through diffusers' `load_ip_adapter` with every weight where the file
puts it and steers the picture; random ones have the published file's layout; a missing one is one line with the
command that fetches it, in a run, in `modomo doctor` and in `modomo models download --style-ref`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.errors import ModomoError
from pipeline.models import ip_adapter, random_sd15
from pipeline.models.catalog import resolve, tiny
from pipeline.models.loaders import WeightLoaders, load_generator
from pipeline.models.presets import sd15
from tests.cli.test_doctor import cache_required, empty_caches, fake_hub_cache  # noqa: F401 - fixture used by name

CPU = torch.device("cpu")
SIZE = 64  # pixels: two tiny-UNet latents per side at the VAE's factor of 8 and the UNet's three downsamplings


def cross_attention(unet) -> list[str]:
    """The UNet's cross-attention processors in the order diffusers numbers the adapter's layers."""
    return [name for name in unet.attn_processors if name.endswith("attn2.processor")]


@pytest.fixture(scope="module")
def spec():
    return tiny()


@pytest.fixture(scope="module")
def plain(spec):
    """The tiny generator without an adapter."""
    return load_generator(spec, CPU, torch.float32)


@pytest.fixture(scope="module")
def adapted(spec):
    """The tiny generator with the bundle's adapter, through the code a run takes."""
    pipe = load_generator(spec, CPU, torch.float32)
    WeightLoaders(spec).ip_adapter(pipe, CPU, torch.float32)
    return pipe


def test_the_bundles_adapter_loads_where_the_file_says(spec, adapted):
    from diffusers.models.attention_processor import IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0
    from transformers import CLIPVisionModelWithProjection

    processors = adapted.unet.attn_processors
    names = cross_attention(adapted.unet)
    assert names and all(isinstance(processors[n], (IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0)) for n in names)
    assert not any(isinstance(p, IPAdapterAttnProcessor2_0) for n, p in processors.items() if n not in names)
    assert isinstance(adapted.image_encoder, CLIPVisionModelWithProjection)
    folder = Path(spec.ip_adapter) / ip_adapter.SUBFOLDER
    weights = load_file(str(folder / ip_adapter.WEIGHT))
    for k, name in enumerate(names):  # diffusers reads layer 2k+1 of the file into the k-th cross-attention
        assert torch.equal(processors[name].to_k_ip[0].weight, weights[f"ip_adapter.{2 * k + 1}.to_k_ip.weight"])
        assert torch.equal(processors[name].to_v_ip[0].weight, weights[f"ip_adapter.{2 * k + 1}.to_v_ip.weight"])
    projection = adapted.unet.encoder_hid_proj.image_projection_layers[0]
    assert torch.equal(projection.image_embeds.weight, weights["image_proj.proj.weight"])
    encoder = load_file(str(folder / ip_adapter.ENCODER / "model.safetensors"))
    assert torch.equal(adapted.image_encoder.visual_projection.weight, encoder["visual_projection.weight"])


def render(pipe, reference: Image.Image | None, scale: float = 1.0) -> np.ndarray:
    """Two steps of diffusers' own pipeline on one seed, with guidance (so the negative image embeds run too)."""
    control = Image.new("RGB", (SIZE, SIZE), (120, 110, 100))
    extra = {}
    if reference is not None:
        pipe.set_ip_adapter_scale(scale)
        extra["ip_adapter_image"] = reference
    return pipe(
        prompt="a bright living room",
        negative_prompt="blurry",
        image=[control, control],
        height=SIZE,
        width=SIZE,
        num_inference_steps=2,
        guidance_scale=5.0,
        output_type="np",
        generator=torch.Generator("cpu").manual_seed(3),
        **extra,
    ).images[0]


def test_the_reference_changes_the_picture(adapted, plain):
    a, b = Image.new("RGB", (48, 48), (200, 30, 30)), Image.new("RGB", (48, 48), (30, 30, 200))
    with_a, with_b, unscaled = render(adapted, a), render(adapted, b), render(adapted, a, scale=0.0)
    assert np.abs(with_a - with_b).mean() > 3e-3  # another reference, another picture (0.012 on these two)
    assert np.abs(with_a - unscaled).mean() > 3e-3  # (0.017)
    assert np.abs(unscaled - render(plain, None)).max() <= 1e-6  # at scale 0 the adapter adds nothing


def test_random_adapters_have_the_published_layout(adapted):
    """SD1.5's block layout at small widths: one key/value pair per cross-attention, numbered 1, 3, ..., 31 as in
    ip-adapter_sd15.safetensors, and the projection of a ViT-H/14 embedding to four 768-wide tokens."""
    from diffusers import UNet2DConditionModel

    config = {**random_sd15.configs()["unet"], "block_out_channels": [32, 32, 64, 64], "sample_size": 8}
    unet = UNet2DConditionModel.from_config(config)
    state = ip_adapter.random_state_dict(unet, ip_adapter.VIT_H["projection_dim"])
    layers = cross_attention(unet)
    assert len(layers) == 16
    assert set(state["ip_adapter"]) == {f"{k}.to_{kv}_ip.weight" for k in range(1, 32, 2) for kv in "kv"}
    assert state["image_proj"]["proj.weight"].shape == (768 * 4, 1024)
    assert {key: tuple(v.shape) for key, v in state["image_proj"].items() if key != "proj.weight"} == {
        "proj.bias": (3072,),
        "norm.weight": (768,),
        "norm.bias": (768,),
    }
    for k, name in enumerate(layers):  # training's start: the image projections are copies of the text ones
        attention = unet.get_submodule(name.removesuffix(".processor"))
        assert torch.equal(state["ip_adapter"][f"{2 * k + 1}.to_k_ip.weight"], attention.to_k.weight)
        assert torch.equal(state["ip_adapter"][f"{2 * k + 1}.to_v_ip.weight"], attention.to_v.weight)
    unet._load_ip_adapter_weights([state])  # what `load_ip_adapter` hands a state dict to: every key is taken
    tiny_state = ip_adapter.random_state_dict(adapted.unet, 16)
    assert len(tiny_state["ip_adapter"]) == 2 * len(cross_attention(adapted.unet))


def test_the_random_encoder_is_vit_h_14():
    from transformers import CLIPVisionModelWithProjection

    config = ip_adapter.encoder_config()
    assert (
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.intermediate_size,
        config.patch_size,
        config.image_size,
        config.projection_dim,
    ) == (1280, 32, 16, 5120, 14, 224, 1024)
    with torch.device("meta"):  # shapes only: the real build is 2.5 GB
        encoder = CLIPVisionModelWithProjection(config)
    count = sum(p.numel() for p in encoder.parameters())
    assert 630e6 < count < 634e6  # the published encoder's model.safetensors: 2.53 GB of fp32


def test_the_random_presets_need_nothing_fetched(spec, empty_caches):  # noqa: F811
    from pipeline.models.download import download_ip_adapter
    from pipeline.models.inventory import inventory

    for preset in (spec, random_sd15.spec()):
        assert inventory(preset).has("ip-adapter") and download_ip_adapter(preset, report=print) == []
    assert not inventory(sd15()).has("ip-adapter")  # the empty cache has none


def without_adapter(bundle: Path, target: Path) -> Path:
    """A copy of the bundle (links to its parts) that lacks `ip-adapter/`."""
    target.mkdir()
    for part in bundle.iterdir():
        if part.name != ip_adapter.BUNDLE_FOLDER:
            (target / part.name).symlink_to(part)
    return target


def test_a_bundle_without_the_adapter_says_so_in_one_line(spec, plain, tmp_path):
    bundle = resolve(str(without_adapter(Path(spec.ip_adapter).parent, tmp_path / "bundle")))
    assert bundle.ip_adapter is None
    message = str(pytest.raises(ModomoError, WeightLoaders(bundle).ip_adapter, plain, CPU, torch.float32).value)
    assert len(message.splitlines()) == 1 and "modomo models download" in message and "ip-adapter/" in message
    (tmp_path / "bundle" / ip_adapter.BUNDLE_FOLDER / ip_adapter.SUBFOLDER).mkdir(parents=True)
    (tmp_path / "bundle" / ip_adapter.BUNDLE_FOLDER / ip_adapter.SUBFOLDER / ip_adapter.WEIGHT).symlink_to(
        Path(spec.ip_adapter) / ip_adapter.SUBFOLDER / ip_adapter.WEIGHT
    )
    half = resolve(str(tmp_path / "bundle"))  # the adapter without its image encoder is not one either
    message = str(pytest.raises(ModomoError, WeightLoaders(half).ip_adapter, plain, CPU, torch.float32).value)
    assert len(message.splitlines()) == 1 and "image_encoder/" in message


def test_sd15_without_the_adapter_names_the_download(empty_caches, plain):  # noqa: F811
    message = str(pytest.raises(ModomoError, WeightLoaders(sd15()).ip_adapter, plain, CPU, torch.float32).value)
    assert len(message.splitlines()) == 1 and "`modomo models download sd15 --style-ref`" in message


def test_doctor_lists_the_adapter_as_optional(empty_caches):  # noqa: F811
    spec = sd15()
    cache_required(empty_caches)
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output  # transform's defaults need no adapter
    warning = next(line for line in result.stderr.splitlines() if line.startswith("warning sd15 ip-adapter:"))
    assert "--style-ref" in warning and "room sets" in warning
    checks = {(c["area"], c["name"]): c for c in json.loads(CliRunner().invoke(app, ["doctor", "--json"]).stdout)}
    row = checks[("sd15", "ip-adapter")]
    assert row["status"] == "warn" and not row["required"]
    assert spec.ip_adapter in row["detail"] and "modomo models download sd15 --style-ref" in row["detail"]
    weight, *encoder = ip_adapter.hub_files()
    fake_hub_cache(empty_caches, spec.ip_adapter, weight)  # the adapter without its encoder cannot run
    checks = {(c["area"], c["name"]): c for c in json.loads(CliRunner().invoke(app, ["doctor", "--json"]).stdout)}
    assert checks[("sd15", "ip-adapter")]["status"] == "warn"
    for name in encoder:
        fake_hub_cache(empty_caches, spec.ip_adapter, name)
    checks = {(c["area"], c["name"]): c for c in json.loads(CliRunner().invoke(app, ["doctor", "--json"]).stdout)}
    assert checks[("sd15", "ip-adapter")]["status"] == "ok"
    listed = json.loads(CliRunner().invoke(app, ["models", "list", "--json"]).stdout)
    assert {"preset": "sd15", "model": "ip-adapter", "id": spec.ip_adapter, "cached": True} in listed


@pytest.fixture
def hub_calls(monkeypatch):
    """The hub fetches `modomo models download` asks for, answered without network; the YOLO weight skipped."""
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: calls.append(repo) or repo)
    monkeypatch.setattr(
        huggingface_hub, "hf_hub_download", lambda repo, name, **kw: calls.append(f"{repo}/{name}") or f"{repo}/{name}"
    )
    monkeypatch.setattr("pipeline.models.download.download_yolo", lambda name: Path(name))
    return calls


def test_the_download_fetches_the_adapter_only_on_request(hub_calls):
    assert CliRunner().invoke(app, ["models", "download", "sd15"]).exit_code == 0
    assert hub_calls and not any(call.startswith(ip_adapter.REPO) for call in hub_calls)
    hub_calls.clear()
    result = CliRunner().invoke(app, ["models", "download", "sd15", "--style-ref"])
    assert result.exit_code == 0, result.output
    assert [call for call in hub_calls if call.startswith(ip_adapter.REPO)] == [
        f"{ip_adapter.REPO}/models/ip-adapter_sd15.safetensors",
        f"{ip_adapter.REPO}/models/image_encoder/config.json",
        f"{ip_adapter.REPO}/models/image_encoder/model.safetensors",
    ]


def test_the_adapter_download_offline_is_one_line(empty_caches, monkeypatch):  # noqa: F811
    # The rest of the preset is taken as fetched, so the adapter's own fetch is the one that fails.
    monkeypatch.setattr("pipeline.models.download.download", lambda spec, report: [])
    result = CliRunner().invoke(app, ["models", "download", "sd15", "--style-ref"])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: cannot download {ip_adapter.REPO}/") and "Traceback" not in result.output
    assert "HF_HUB_OFFLINE" in lines[-1]
