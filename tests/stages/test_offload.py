"""Model offload on the tiny models (CPU): every module the sampler calls was told to be on the execution device
for that phase, and where the models sit belongs to the loaded models, not to one run.

On a CPU the device and the offload target are one, so a move cannot be seen in the weights. The placer records
where it told each model to be (`offload.placement`, kept on the pipe); a forward pre-hook on each module the
sampler calls checks that record, and the module's weights, at the moment of the call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import RunConfig, config_for
from pipeline.inputs.sources import collect_inputs
from pipeline.options import TransformOptions
from pipeline.outputs.sinks import LocalSink
from pipeline.run.runner import Runner
from pipeline.stages import offload
from pipeline.stages.generate import Generator
from pipeline.stages.offload import DEVICE, MemoryState, ModelPlacer, placement
from tests.stages.test_sampling import SETTINGS, make_frames


class PlacementWatch:
    """Forward pre-hooks on every module the sampler calls (text encoder, UNet, each ControlNet and its conditioning
    embedding, the VAE's encoder and decoder): each call whose model was not told to be on the execution device,
    or whose weights are elsewhere, is a violation."""

    def __init__(self, pipe, device: torch.device):
        self.pipe, self.device = pipe, torch.device(device)
        self.calls: list[str] = []
        self.violations: list[str] = []
        self.handles = [
            module.register_forward_pre_hook(self.check(model, part)) for model, part, module in self.parts()
        ]

    def parts(self) -> list[tuple[str, str, torch.nn.Module]]:
        """(placement name, part, module) for every module the sampler calls directly or through its model."""
        pipe, vae = self.pipe, self.pipe.vae
        parts = [
            ("text_encoder", "text encoder", pipe.text_encoder),
            ("unet", "unet", pipe.unet),
            ("vae", "vae encoder", vae.encoder),
            ("vae", "vae decoder", vae.decoder),
        ]
        parts += [
            ("vae", name, getattr(vae, name))
            for name in ("quant_conv", "post_quant_conv")
            if getattr(vae, name, None) is not None
        ]
        for i, net in enumerate(pipe.controlnet.nets):
            parts += [
                ("controlnet", f"controlnet {i}", net),
                ("controlnet", f"controlnet {i} conditioning embedding", net.controlnet_cond_embedding),
            ]
        return parts

    def check(self, model: str, part: str):
        def hook(module, args):
            self.calls.append(part)
            told = placement(self.pipe)[model]
            weights = offload.device_of(module)
            if told != DEVICE:
                self.violations.append(f"{part} called while its {model} was told to be on the {told}")
            elif not offload.same_device(weights, self.device):
                self.violations.append(f"{part} called with its weights on {weights}, not {self.device}")

        return hook

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@pytest.fixture
def watch(tiny_stack):
    watching = PlacementWatch(tiny_stack.pipe, tiny_stack.device)
    yield watching
    watching.close()
    offload.restore_placement(tiny_stack.pipe, tiny_stack.device)


def with_keep_masks(frames):
    """Half of each photo held to the original, so the VAE's encoder runs too."""
    for frame in frames:
        width, height = frame.image.size
        keep = np.zeros((height, width), np.float32)
        keep[:, : width // 2] = 1.0
        frame.keep = keep
    return frames


def test_offloaded_phases_place_every_module_the_sampler_calls(tiny_stack, rooms, watch):
    memory = MemoryState(placer=ModelPlacer(tiny_stack.pipe, tiny_stack.device))
    memory.offload()
    assert placement(tiny_stack.pipe) == dict.fromkeys(offload.MODELS, offload.HOST)
    batch = with_keep_masks(make_frames(rooms, 2))
    Generator(tiny_stack.pipe, SETTINGS, tiny_stack.device, memory=memory)(batch)  # both ControlNets run
    assert all(frame.result is not None for frame in batch)
    assert watch.violations == []
    called = set(watch.calls)
    assert {part for _, part, _ in watch.parts()} <= called, "a module the sampler calls was never seen"
    assert memory.placer.moves >= 4 and memory.placer.resident == {"vae"}  # decode was the last phase


def refuse_batch_one_until_offloaded(monkeypatch, runs: list[bool]) -> None:
    """While `runs[0]` holds, every render raises CUDA's out-of-memory error until the run switches to offload."""
    real = Generator.render

    def render(self, group):
        if runs and runs[0] and not self.offloaded:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return real(self, group)

    monkeypatch.setattr(Generator, "render", render)


def tiny_run(folder: Path, rooms: Path) -> tuple[RunConfig, list]:
    inputs = folder / "in"
    inputs.mkdir(parents=True)
    (inputs / "room.jpg").write_bytes((rooms / "living-room-02-small.jpg").read_bytes())
    config = config_for(
        TransformOptions(
            inputs=[str(inputs)],
            out=str(folder / "out"),
            style="boho",
            models="tiny",
            size=96,
            steps=2,
            retries=0,
            device="cpu",
            resume=False,
            overwrite=True,
        )
    )
    return config, collect_inputs(config.options.inputs)


def test_the_next_run_on_the_same_models_finds_them_on_the_device(tiny_stack, rooms, tmp_path, monkeypatch, watch):
    """A run that switched to offload leaves the models on the CPU; the next Runner on the same models must not
    call them there (on a GPU: CUDA inputs against CPU weights, failing every frame)."""
    config, items = tiny_run(tmp_path, rooms)
    refusing = [True]
    refuse_batch_one_until_offloaded(monkeypatch, refusing)
    first = Runner(config, tiny_stack, LocalSink(tmp_path / "first"))
    done = first.run(items)
    assert done.counts["ok"] == 1 and first.memory.offloaded
    assert [e["action"] for e in done.oom] == ["model cpu offload"]
    assert placement(tiny_stack.pipe) != dict.fromkeys(offload.MODELS, DEVICE)  # the run left them offloaded
    refusing[0] = False
    watch.calls.clear()
    second = Runner(config, tiny_stack, LocalSink(tmp_path / "second"))
    assert not second.memory.offloaded
    assert placement(tiny_stack.pipe) == dict.fromkeys(offload.MODELS, DEVICE)
    again = second.run(items)
    assert again.counts["ok"] == 1 and again.oom == []
    assert watch.violations == [] and "unet" in watch.calls and "text encoder" in watch.calls
