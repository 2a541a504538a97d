"""--mode declutter's models: LaMa read by spandrel and the inpaint ControlNet, in the tiny bundle, random-sd15 and
the sd15 preset's inventory, loaded through the code real weights take.

The tiny bundle's LaMa is big-lama's architecture at full size (spandrel sizes it from the file), random, in fp16
safetensors under big-lama.pt's names; one forward at 128 px takes a fraction of a second on the CPU.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.errors import ModomoError
from pipeline.models import lama
from pipeline.models.awaken import zero_weights
from pipeline.models.catalog import random_sd15
from pipeline.models.controls import CONTROLS, STYLE_CONTROLS, held_controls
from pipeline.models.inventory import OPTIONAL_ROLES, declutter_missing, inventory
from pipeline.models.load import load_stack
from pipeline.models.loaders import WeightLoaders, load_generator
from pipeline.models.placement import LoadOptions
from pipeline.models.presets import bundle, hub_parts, sd15
from tests.cli.test_doctor import empty_caches, fake_hub_cache  # noqa: F401 - fixture used by name

CPU = torch.device("cpu")
DECLUTTER = ("controlnet inpaint", "lama")


@pytest.fixture(scope="module")
def spec(tiny_bundle):
    return bundle(tiny_bundle)


@pytest.fixture(scope="module")
def network(spec):
    """The tiny bundle's LaMa, loaded as a run loads it."""
    return WeightLoaders(spec).lama(CPU)


def photo_and_mask(size: int = 128, seed: int = 0):
    """A smooth random picture (1, 3, size, size) in [0, 1] and a box mask (1 = fill) off its centre."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, size // 16, size // 16), dtype=np.float32))
    image = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 8 : size // 2, size // 4 : size * 3 // 4] = 1.0
    return image, mask


def test_tiny_bundle_has_lama_and_the_inpaint_controlnet(spec, network):
    from safetensors import safe_open
    from spandrel import MaskedImageModelDescriptor

    path = Path(spec.lama)
    assert path.parent.name == "lama" and path.suffix == ".safetensors"
    with safe_open(str(path), "pt") as weights:  # big-lama.pt's names: spandrel detects LaMa by the first
        assert "model.model.1.bn_l.running_mean" in weights.keys()
        assert weights.get_tensor("model.model.1.ffc.convl2l.weight").dtype == torch.float16  # half the size
    assert Path(spec.controlnet_inpaint).name == "controlnet-inpaint"
    stock = inventory(spec)
    assert all(stock.has(role) and not stock.part(role).required for role in DECLUTTER)
    assert declutter_missing(spec, stock) is None
    assert isinstance(network, MaskedImageModelDescriptor) and network.architecture.id == "LaMa"
    assert network.purpose == "Inpainting" and network.device == CPU and network.dtype == torch.float32
    assert sum(p.numel() for p in network.model.parameters()) > 50_000_000  # big-lama's size, as the real one
    assert "lama" not in spec.ids() and "controlnet_inpaint" not in spec.ids()


def test_the_inpaint_controlnet_loads_last_under_its_name(spec):
    from diffusers import ControlNetModel

    pipe = load_generator(spec, CPU, torch.float32, ("depth", "inpaint"))
    assert held_controls(pipe) == ("depth", "inpaint") and CONTROLS[-1] == "inpaint"
    depth, inpaint = pipe.controlnet.nets
    own = ControlNetModel.from_pretrained(spec.controlnet_inpaint)
    for (name, ours), theirs in zip(inpaint.state_dict().items(), own.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name
    assert not torch.equal(inpaint.controlnet_down_blocks[0].weight, depth.controlnet_down_blocks[0].weight)


def test_load_stack_takes_lama_and_inpaint_only_when_asked_and_present(spec, tmp_path):
    plain = load_stack(spec, CPU, options=LoadOptions(dtype="fp32"))  # a plain run: neither, though both are here
    assert held_controls(plain.pipe) == STYLE_CONTROLS and plain.lama is None and "lama" not in plain.load_seconds
    stack = load_stack(spec, CPU, options=LoadOptions(dtype="fp32", controls=CONTROLS, lama=True))
    assert held_controls(stack.pipe) == CONTROLS and stack.lama is not None and "lama" in stack.load_seconds
    image, mask = photo_and_mask(64)
    direct = lama.load(spec.lama, CPU)
    with torch.inference_mode():
        assert torch.equal(stack.lama(image, mask), direct(image, mask))
    lacking = tmp_path / "bundle"  # the same bundle without the declutter parts
    lacking.mkdir()
    for part in Path(spec.sd).parent.iterdir():
        if part.name not in ("controlnet-inpaint", "lama"):
            (lacking / part.name).symlink_to(part)
    stack = load_stack(bundle(lacking), CPU, options=LoadOptions(dtype="fp32", controls=CONTROLS, lama=True))
    assert held_controls(stack.pipe) == STYLE_CONTROLS and stack.lama is None and "lama" not in stack.load_seconds


def test_lama_load_equals_spandrel_on_the_same_file(spec, network):
    from spandrel import ModelLoader

    direct = ModelLoader().load_from_file(spec.lama).eval()  # as spandrel's README runs a model
    image, mask = photo_and_mask(128, seed=1)
    with torch.inference_mode():
        ours, theirs = network(image, mask), direct(image, mask)
    assert torch.equal(ours, theirs)
    assert torch.equal(ours * (1 - mask), image * (1 - mask))  # LaMa keeps what is not masked


def test_a_file_that_is_not_lama_is_one_line(spec, tmp_path):
    with pytest.raises(ModomoError) as caught:
        lama.load(spec.upscaler, CPU)  # a real spandrel model, but a super-resolution one
    message = str(caught.value)
    assert message.startswith(f"{spec.upscaler}: not an inpainting model") and len(message.splitlines()) == 1
    broken = tmp_path / "big-lama.pt"
    broken.write_bytes(b"not a weight\n" * 8)
    message = str(pytest.raises(ModomoError, lama.load, broken, CPU).value)
    assert message.startswith(f"{broken}: cannot load LaMa") and len(message.splitlines()) == 1


def test_the_random_lama_fills_from_the_image_and_the_mask(network):
    """Default initialisation fills a flat grey whatever the input; the seeded one must not."""
    assert zero_weights(network.model) == []
    norms = [m for m in network.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not any(torch.equal(m.running_var, torch.ones_like(m.running_var)) for m in norms)  # measured stats
    image, mask = photo_and_mask(128, seed=2)
    other_image, _ = photo_and_mask(128, seed=3)
    other_mask = torch.zeros_like(mask)
    other_mask[..., 40:100, 8:72] = 1.0  # overlaps the first mask's lower left
    inside = mask.bool().expand_as(image)
    with torch.inference_mode():
        out = network(image, mask)
        moved = network(other_image * (1 - mask) + image * mask, mask)  # only what LaMa sees changes
        remasked = network(image, other_mask)
    assert torch.isfinite(out).all() and 0.0 <= out.min() and out.max() <= 1.0
    fill = out[inside]
    assert fill.std() > 0.05 and (fill - image[inside]).abs().mean() > 0.05, float(fill.std())
    assert (moved[inside] - fill).abs().mean() > 0.02  # the fill comes from the picture around it
    both = inside & other_mask.bool().expand_as(image)
    assert (remasked[both] - out[both]).abs().mean() > 0.02  # and depends on the mask's shape


def test_build_random_is_seeded_and_saves_back_exactly(tmp_path):
    net = lama.build_random(seed=5)
    path = lama.save(net, tmp_path / "lama" / "random.safetensors")  # fp32: exactly what was built
    loaded = lama.load(path, CPU)
    image, mask = photo_and_mask(64, seed=4)
    with torch.inference_mode():
        assert torch.equal(loaded(image, mask), lama.descriptor(net, CPU)(image, mask))
    first = next(iter(net.state_dict().values()))
    assert torch.equal(first, next(iter(lama.build_random(seed=5).state_dict().values())))


def test_random_sd15_builds_lama_and_the_inpaint_controlnet():
    from pipeline.models import random_sd15 as module

    spec = random_sd15()
    assert spec.controlnet_inpaint.startswith("random:") and spec.lama.startswith("random:")
    stock = inventory(spec)
    assert all(stock.has(role) for role in DECLUTTER) and declutter_missing(spec, stock) is None
    pipe = module.build_generator(torch.device("meta"), torch.float16, CONTROLS)
    assert held_controls(pipe) == CONTROLS and len({id(net) for net in pipe.controlnet.nets}) == 4


def test_sd15_names_big_lama_and_the_v11_inpaint_controlnet(empty_caches):  # noqa: F811
    spec = sd15()
    assert spec.controlnet_inpaint == "lllyasviel/control_v11p_sd15_inpaint"
    assert hub_parts(spec.lama) == ("signature-ai/big-lama", "big-lama.pt")
    stock = inventory(spec)
    for role in DECLUTTER:
        assert not stock.has(role) and not stock.part(role).required
        assert OPTIONAL_ROLES[role].startswith("--mode declutter")
    message = declutter_missing(spec, stock)
    assert len(message.splitlines()) == 1 and "`modomo models download sd15 --declutter`" in message
    assert "lllyasviel/control_v11p_sd15_inpaint" in message and "signature-ai/big-lama/big-lama.pt" in message
    fake_hub_cache(empty_caches, *hub_parts(spec.lama))
    message = declutter_missing(spec, inventory(spec))
    assert "controlnet inpaint (" in message and "lama (" not in message  # only what is missing
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        fake_hub_cache(empty_caches, spec.controlnet_inpaint, name)
    stock = inventory(spec)
    assert all(stock.has(role) for role in DECLUTTER) and declutter_missing(spec, stock) is None


def test_doctor_and_models_list_show_them_as_optional(empty_caches):  # noqa: F811
    from modomo_cli.app import app

    result = CliRunner().invoke(app, ["doctor", "--json"])
    checks = {(c["area"], c["name"]): c for c in json.loads(result.stdout)}
    for role in DECLUTTER:
        row = checks[("sd15", role)]
        assert row["status"] == "warn" and not row["required"] and row["enables"].startswith("--mode declutter")
    rows = json.loads(CliRunner().invoke(app, ["models", "list", "--json"]).stdout)
    listed = {row["model"]: row for row in rows if row["preset"] == "sd15"}
    assert listed["lama"]["id"] == "signature-ai/big-lama/big-lama.pt" and not listed["lama"]["cached"]
    assert listed["controlnet inpaint"]["id"] == "lllyasviel/control_v11p_sd15_inpaint"


def test_download_declutter_fetches_both_and_fails_in_one_line(empty_caches, monkeypatch):  # noqa: F811
    import huggingface_hub

    from modomo_cli.app import app
    from pipeline.models import download

    asked = []
    with monkeypatch.context() as hub:
        hub.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: asked.append((repo, kw)) or repo)
        hub.setattr(huggingface_hub, "hf_hub_download", lambda repo, name: asked.append((repo, name)) or name)
        fetched = download.download_declutter(sd15(), report=lambda line: None)
        assert download.download_declutter(replace(sd15(), local=True)) == []  # a bundle carries its own
        assert download.download_declutter(random_sd15()) == []  # built in memory
    assert fetched == ["lllyasviel/control_v11p_sd15_inpaint", "big-lama.pt"]
    assert asked == [
        ("lllyasviel/control_v11p_sd15_inpaint", {"allow_patterns": download.CONTROLNET_FILES}),
        ("signature-ai/big-lama", "big-lama.pt"),
    ]
    monkeypatch.setattr(download, "download", lambda spec, report: [])  # the plain part: tested elsewhere
    result = CliRunner().invoke(app, ["models", "download", "sd15", "--declutter"])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: cannot download lllyasviel/control_v11p_sd15_inpaint")
    assert "Traceback" not in result.output
