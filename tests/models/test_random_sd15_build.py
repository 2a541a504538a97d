"""The random-sd15 generator: each model built once, on the device it runs on.

The full-size build runs under the meta device (shapes, no memory, no initialisation work), so it takes
seconds on a CPU; each model's constructor is counted and records the default device it ran under.
"""

from __future__ import annotations

import functools
from collections import Counter

import pytest
import torch

from pipeline.models import random_sd15

META = torch.device("meta")


@pytest.fixture
def constructions(monkeypatch):
    """Per model class, the default device at each construction of that very class (not a subclass)."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel

    made: dict[str, list[torch.device]] = {}
    for cls in (AutoencoderKL, CLIPTextModel, UNet2DConditionModel, ControlNetModel):
        original = cls.__init__

        @functools.wraps(original)  # diffusers reads the signature to pick a config's arguments
        def counted(self, *args, __cls=cls, __original=original, **kwargs):
            if type(self) is __cls:
                made.setdefault(__cls.__name__, []).append(torch.get_default_device())
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counted)
    return made


def test_each_model_is_built_once_on_the_requested_device(constructions):
    pipe = random_sd15.build_generator(META, torch.float16)
    assert Counter({name: len(devices) for name, devices in constructions.items()}) == Counter(
        AutoencoderKL=1, CLIPTextModel=1, UNet2DConditionModel=1, ControlNetModel=2
    )
    for name, devices in constructions.items():
        assert all(device.type == "meta" for device in devices), f"{name} built on {devices}"
    models = {"unet": pipe.unet, "vae": pipe.vae, "text_encoder": pipe.text_encoder}
    models.update({f"controlnet {k}": net for k, net in enumerate(pipe.controlnet.nets)})
    for name, model in models.items():
        assert {p.device.type for p in model.parameters()} == {"meta"}, name
        assert {p.dtype for p in model.parameters()} == {torch.float16}, name
    assert len(pipe.controlnet.nets) == 2 and pipe.controlnet.nets[0] is not pipe.controlnet.nets[1]
    assert sum(p.numel() for p in pipe.unet.parameters()) > 800_000_000  # the full-size SD1.5 UNet


def test_every_control_gets_its_own_controlnet(constructions):
    """The inpaint ControlNet of --mode declutter is built like the styles' ones, last, under its name."""
    from pipeline.models.controls import CONTROLS, held_controls

    pipe = random_sd15.build_generator(META, torch.float16, CONTROLS)
    assert len(constructions["ControlNetModel"]) == len(CONTROLS) == 4
    assert held_controls(pipe) == ("depth", "canny", "lines", "inpaint")
    assert len({id(net) for net in pipe.controlnet.nets}) == 4
    spec = random_sd15.spec()
    assert spec.controlnet_inpaint.startswith("random:") and spec.lama.startswith("random:")
    assert callable(random_sd15.Builders(spec).lama)
