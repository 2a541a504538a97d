"""Loaded stacks kept for the session: a test's in-process run takes the stack an earlier test loaded with the same
preset, device and load options, instead of reading the same tiny weights again (about half of a small run's time).

A stack is handed out again only while it is exactly as it was loaded: every parameter and buffer (name, device,
dtype, sum), each model's class, the attention processors, the scheduler and its config. A run that changes any of
it (a LoRA loaded, weights moved by an offload, a compiled UNet, a swapped scheduler) makes the next request load
afresh. The IP-Adapter's scale is left out: every batch sets it before it renders, in both backends
(`Sampler.reference_batch`, `generate.reference_kwargs`), so no run sees the one an earlier run left. A test about
loading itself takes `@pytest.mark.fresh_models`."""

from __future__ import annotations

import hashlib

import torch

MODEL_FIELDS = ("depth_model", "yolo", "sam2", "clip", "upscaler", "segmenter", "lama")


def _modules(stack) -> dict[str, object]:
    pipe = stack.pipe
    found = {name: getattr(pipe, name, None) for name in ("unet", "vae", "text_encoder", "controlnet", "image_encoder")}
    for name in MODEL_FIELDS:
        value = getattr(stack, name)
        found[name] = value[0] if isinstance(value, tuple) else value
    return {name: module for name, module in found.items() if module is not None}


def _torch_module(value):
    """The torch module inside a library wrapper (ultralytics' YOLO, sam2's predictor, spandrel's descriptor)."""
    for candidate in (value, getattr(value, "model", None)):
        if isinstance(candidate, torch.nn.Module):
            return candidate
    return None


def fingerprint(stack) -> str:
    """A digest of everything a run could change in a loaded stack."""
    digest = hashlib.sha256()
    for name, value in sorted(_modules(stack).items()):
        digest.update(f"{name}:{type(value).__qualname__}".encode())
        module = _torch_module(value)
        if module is None:
            continue
        with torch.no_grad():
            for key, tensor in [*module.named_parameters(), *module.named_buffers()]:
                total = float(tensor.detach().double().sum()) if tensor.is_floating_point() else int(tensor.sum())
                digest.update(f"{key}:{tensor.device}:{tensor.dtype}:{tuple(tensor.shape)}:{total!r}".encode())
        digest.update(str(sorted(getattr(module, "_forward_hooks", {}))).encode())
    unet = stack.pipe.unet
    for key, processor in sorted(getattr(unet, "attn_processors", {}).items()):
        digest.update(f"{key}:{type(processor).__qualname__}".encode())
    scheduler = stack.pipe.scheduler
    digest.update(f"{type(scheduler).__qualname__}:{sorted(dict(scheduler.config).items())!r}".encode())
    adapters = getattr(stack.pipe, "get_list_adapters", lambda: {})()
    digest.update(repr(adapters).encode())
    return digest.hexdigest()


class StackShelf:
    """Stacks by (preset, device, load options), each with the fingerprint it had when loaded."""

    def __init__(self, load):
        self.load = load
        self.kept: dict[tuple, tuple[object, str]] = {}
        self.loads = self.reuses = 0

    def __call__(self, spec, device, on_model=None, options=None):
        key = (spec, str(device), options)
        kept = self.kept.get(key)
        if kept is not None and fingerprint(kept[0]) == kept[1]:
            self.reuses += 1
            return kept[0]
        stack = self.load(spec, device, on_model=on_model, options=options)
        self.loads += 1
        self.kept[key] = (stack, fingerprint(stack))
        return stack
