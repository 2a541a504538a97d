"""Layers that pack their weights once for oneDNN (pipeline/models/prepacked.py), on the tiny UNet in bf16: the same
output as the plain layers, each pack made once and made again when the weights change, traced plain by
torch.export, and switched off by MODOMO_PREPACK=off."""

from __future__ import annotations

import pytest
import torch

from pipeline.models import prepacked

pytestmark = pytest.mark.skipif(not prepacked.available(), reason="this CPU's oneDNN runs no bf16 kernels")


@pytest.fixture
def unet(tiny_stack):
    """A bf16 channels-last copy of the tiny UNet (the session's stack is fp32 and shared)."""
    from diffusers import UNet2DConditionModel

    source = tiny_stack.pipe.unet
    model = UNet2DConditionModel.from_config(source.config)
    model.load_state_dict(source.state_dict())
    return model.to(torch.bfloat16).to(memory_format=torch.channels_last).eval()


def inputs(unet, batch: int = 2, seed: int = 0) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    size = unet.config.sample_size
    sample = torch.randn(batch, unet.config.in_channels, size, size + 8, generator=generator)
    text = torch.randn(batch, 77, unet.config.cross_attention_dim, generator=generator)
    return sample.to(torch.bfloat16), torch.tensor([500] * batch), text.to(torch.bfloat16)


def call(unet, args) -> torch.Tensor:
    with torch.inference_mode():
        return unet(args[0], args[1], encoder_hidden_states=args[2]).sample


def test_packed_layers_give_the_plain_layers_output_at_any_batch(unet):
    plain = [call(unet, inputs(unet, batch)) for batch in (2, 1)]
    assert prepacked.prepack([unet]) > 0
    layers, held = prepacked.packed(unet)
    assert layers > 0 and held == 0  # packed at the first call, not before
    for batch, expected in zip((2, 1), plain, strict=True):  # packed once, for a fixed size: any batch after
        assert torch.equal(call(unet, inputs(unet, batch)), expected)
    assert prepacked.packed(unet)[1] > 0


def test_each_pack_is_made_once_and_again_when_the_weights_change(unet):
    prepacked.prepack([unet])
    args = inputs(unet)
    call(unet, args)
    conv = unet.down_blocks[0].resnets[0].conv1  # conv_in takes the contiguous latents: plain
    pack = conv.__dict__[prepacked.PACK][0]
    call(unet, args)
    assert conv.__dict__[prepacked.PACK][0] is pack  # the second call reused it
    before = call(unet, args)
    with torch.no_grad():  # as loading other weights does (load_state_dict copies in place)
        unet.load_state_dict({name: value * 1.5 for name, value in unet.state_dict().items()})
    after = call(unet, args)
    assert conv.__dict__[prepacked.PACK][0] is not pack
    prepacked.forget(unet)
    assert prepacked.packed(unet)[1] == 0
    prepacked.unpack([unet])  # every layer plain: the new weights' own output
    assert not torch.equal(after, before) and torch.equal(after, call(unet, args))


def test_export_traces_the_plain_layers(unet):
    prepacked.prepack([unet])
    args = inputs(unet)
    call(unet, args)  # packs held: export must still see the weights, not the packs
    with torch.no_grad():
        program = torch.export.export(unet, args[:2], {"encoder_hidden_states": args[2]})
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert "aten.conv2d.default" in targets and not any("mkldnn" in target for target in targets)


def test_prepack_off_leaves_every_layer_plain(monkeypatch):
    prepacked.available.cache_clear()
    monkeypatch.setenv("MODOMO_PREPACK", "off")
    try:
        assert not prepacked.available()
        from pipeline.models.placement import LoadOptions

        assert LoadOptions().packed_modules(None, torch.device("cpu"), torch.bfloat16) == []
    finally:
        prepacked.available.cache_clear()


def test_a_package_taking_over_drops_the_eager_packs(unet, tmp_path):
    """Packs made by an eager batch go when the model's package runs it (the stand-in backend: plain export)."""
    from pipeline.models.compiled.backends import ExportOnly
    from pipeline.models.compiled.denoisers import CompiledModels, Denoisers

    prepacked.prepack([unet])
    args = inputs(unet)
    eager = call(unet, args)
    assert prepacked.packed(unet)[1] > 0
    run = Denoisers(CompiledModels(1, backend=ExportOnly(), root=tmp_path), "on", queue=2)
    with torch.inference_mode(), run.batch("32x40", 2):
        out = run.call("unet", unet, (args[0], args[1], args[2]), lambda: pytest.fail("the batch ran eager"))
    assert prepacked.packed(unet)[1] == 0
    torch.testing.assert_close(out.float(), eager.float(), rtol=0.05, atol=0.05)  # the same model, exported


def test_the_packs_are_made_only_where_the_memory_holds_them_twice(unet):
    need = sum(p.numel() * p.element_size() for m in unet.modules() if prepacked._packable(m) for p in [m.weight])
    assert prepacked.fits([unet], free=2 * need) and not prepacked.fits([unet], free=2 * need - 1)


def test_the_benchs_plain_diffusers_runs_the_models_plain_layers(unet, tmp_path, monkeypatch):
    """The bf16 baseline runs on the run's own models: their layers plain while it is timed, packed again after."""
    from types import SimpleNamespace

    from pipeline.bench import baselines

    prepacked.prepack([unet])
    call(unet, inputs(unet))
    seen = []

    def timed_run(config, stack, items, out, on_event=None):
        seen.append((prepacked.packed(unet), any(isinstance(m, prepacked.PackedConv2d) for m in unet.modules())))

    monkeypatch.setattr(baselines, "timed_run", timed_run)
    stack = SimpleNamespace(
        pipe=SimpleNamespace(components={"unet": unet, "scheduler": object()}), dtype=torch.bfloat16
    )
    baselines.Baselines(None, {"diffusers": stack}, [], 0, False, tmp_path).time("after")
    assert seen == [((0, 0), False)]  # no packed layer, no pack held
    assert prepacked.packed(unet)[0] > 0  # packed again for modomo's own run
