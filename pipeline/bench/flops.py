"""FLOPs of the generate stage, counted from the model configurations.

Each model is rebuilt from its config on PyTorch's meta device (no memory, no arithmetic) and run
once at the run's shapes under `torch.utils.flop_counter.FlopCounterMode`, which counts the FLOPs
of every matmul and convolution (2 per multiply-add). At 512x512 this gives, per forward at batch
1: UNet 803 GFLOP, each ControlNet 283 (of which 14.7 is the conditioning embedding), VAE decode
2,514. Per image, with classifier-free guidance doubling every denoiser forward:

    diffusers: steps x 2 x (UNet + all ControlNets) + VAE decode
    modomo:    steps x 2 x UNet + active steps x 2 x (ControlNet - embedding) + 2 x embedding + VAE decode

A pass that starts from a picture (a declutter, strength below 1) runs the last int(steps x strength) steps of
the schedule (diffusers' `get_timesteps`) and encodes its start with the VAE: diffusers' inpaint pipeline
encodes the picture and the masked picture (two encodes), modomo the picture alone (one).
"""

from __future__ import annotations

import copy
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from pipeline.models.controls import held_controls
from pipeline.stages.settings import SpeedOptions, control_windows


def _count(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


_COUNTED: dict[str, dict] = {}  # counted once per process for each set of model configs and size


def forward_flops(pipe, height: int, width: int) -> dict:
    """FLOPs of one batch-1 forward of each model at this size, from configs on the meta device (a second call
    with the same configs and size reads what the first counted: a sweep's cells and the estimate share it)."""
    nets = list(pipe.controlnet.nets)
    key = json.dumps(
        [type(pipe.unet).__name__, dict(pipe.unet.config), [dict(n.config) for n in nets], dict(pipe.vae.config),
         list(held_controls(pipe)), pipe.tokenizer.model_max_length, height, width],
        sort_keys=True,
        default=str,
    )  # fmt: skip
    if key not in _COUNTED:
        _COUNTED[key] = count_forward(pipe, height, width)
    return copy.deepcopy(_COUNTED[key])


def count_forward(pipe, height: int, width: int) -> dict:
    """forward_flops, counted."""
    unet_cls, vae_cls = type(pipe.unet), type(pipe.vae)
    nets = list(pipe.controlnet.nets)
    h, w = height // pipe.vae_scale_factor, width // pipe.vae_scale_factor
    with torch.device("meta"):
        unet = unet_cls.from_config(pipe.unet.config)
        controlnets = [type(net).from_config(net.config) for net in nets]
        vae = vae_cls.from_config(pipe.vae.config)
        latents = torch.empty(1, pipe.unet.config.in_channels, h, w)
        step = torch.tensor([999])
        text = torch.empty(1, pipe.tokenizer.model_max_length, pipe.unet.config.cross_attention_dim)
        control = torch.empty(1, 3, height, width)
    return {
        "unet": _count(lambda: unet(latents, step, encoder_hidden_states=text)),
        "controlnets": {
            name: _count(lambda n=n: n(latents, step, encoder_hidden_states=text, controlnet_cond=control))
            for name, n in zip(held_controls(pipe), controlnets, strict=True)
        },
        "embeddings": {
            name: _count(lambda n=n: n.controlnet_cond_embedding(control))
            for name, n in zip(held_controls(pipe), controlnets, strict=True)
        },
        "vae_decode": _count(lambda: vae.decode(latents)),
        "vae_encode": _count(lambda: vae.encode(control)),
    }


def denoising_steps(settings) -> int:
    """The steps a pass runs: all of them from noise, the last int(steps x strength) from a picture."""
    if settings.strength >= 1.0:
        return settings.steps
    return min(int(settings.steps * settings.strength), settings.steps)


def per_image(forward: dict, settings, options: SpeedOptions) -> dict[str, float]:
    """FLOPs per image for plain diffusers and for modomo's loop with these options (the ControlNets of the
    settings' controls: a stack may hold one more than a style uses)."""
    guided = 2 if settings.guidance_scale > 1.0 else 1
    steps = denoising_steps(settings)
    keep = control_windows(steps, settings.control_guidance_start, settings.control_guidance_end)
    nets = [forward["controlnets"][name] for name in settings.controls]
    embeds = [forward["embeddings"][name] for name in settings.controls]
    encodes = (2, 1) if settings.strength < 1.0 else (0, 0)  # diffusers', modomo's VAE encodes of the start
    plain = steps * guided * (forward["unet"] + sum(nets)) + forward["vae_decode"] + encodes[0] * forward["vae_encode"]
    ours = steps * guided * forward["unet"] + forward["vae_decode"] + encodes[1] * forward["vae_encode"]
    scales = settings.controlnet_conditioning_scale
    for k, (net, embed) in enumerate(zip(nets, embeds, strict=True)):
        calls = sum(step[k] > 0 and scales[k] != 0 for step in keep) if options.skip_idle_controlnets else steps
        if options.cache_control_embeddings:
            ours += guided * (calls * (net - embed) + (embed if calls else 0))
        else:
            ours += guided * calls * net
    return {"diffusers": plain, "modomo": ours}
