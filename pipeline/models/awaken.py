"""Give the layers that libraries zero-initialise on purpose small seeded random weights.

A model built from its config is not a trained model in one way that matters for testing: some
layers start at exactly zero by design. diffusers zero-initialises every ControlNet's output
convolutions (the conditioning embedding's `conv_out`, `controlnet_down_blocks`,
`controlnet_mid_block`), so a fresh ControlNet adds nothing to the UNet whatever its control image,
scale or window; a broken sampler would then give the same images as a correct one. transformers'
DPT and sam2's Hiera start their position embeddings at zero, which hides how positions are
interpolated. A trained model has none of these at zero; the random presets (`tiny`, `random-sd15`)
give them weights of the scale an ordinary layer of the same fan-in starts with, times `gain`.
"""

from __future__ import annotations

import math

import torch

# Parameters that are zero by design, by name: (module attribute path, or parameter-name suffix).
CONTROLNET_OUTPUTS = ("controlnet_cond_embedding.conv_out", "controlnet_down_blocks", "controlnet_mid_block")
EMBEDDING_GAIN = 2.0  # about variance-preserving through a SiLU convolution
ZERO_EMBEDDINGS = ("position_embeddings", "cls_token", "pos_embed", "pos_embed_window")


def _fill(param: torch.Tensor, generator: torch.Generator, gain: float) -> None:
    """Normal values, std gain / sqrt(fan_in) for weights, gain * 0.02 for biases and embeddings."""
    fan_in = math.prod(param.shape[1:]) if param.dim() > 1 else 0
    std = gain / math.sqrt(fan_in) if fan_in else gain * 0.02
    values = torch.randn(param.shape, generator=generator, dtype=torch.float32) * std
    param.copy_(values.to(device=param.device, dtype=param.dtype))


@torch.no_grad()
def awaken_controlnet(net: torch.nn.Module, seed: int, gain: float = 0.5) -> list[str]:
    """Seeded random weights for a ControlNet's zero-initialised output layers; returns their names.

    The conditioning embedding (conv_in, blocks, conv_out) is re-drawn too, variance-preserving with zero
    biases: with the default init the control image fades through its seven SiLU convolutions until the
    output is the biases' constant pattern, and a flipped depth map changes nothing. A trained embedding
    carries the control image; this one does too, at the scale of the latent features it is added to."""
    generator = torch.Generator("cpu").manual_seed(seed)
    embedding = net.controlnet_cond_embedding
    for conv in (embedding.conv_in, *embedding.blocks):
        _fill(conv.weight, generator, EMBEDDING_GAIN)
        conv.bias.zero_()
    _fill(embedding.conv_out.weight, generator, 1.0)
    embedding.conv_out.bias.zero_()
    filled = ["controlnet_cond_embedding.conv_out.weight"]
    for name, param in net.named_parameters():
        if name.startswith(CONTROLNET_OUTPUTS[1:]):
            _fill(param, generator, gain)
            filled.append(name)
    return filled


@torch.no_grad()
def awaken_embeddings(model: torch.nn.Module, seed: int, gain: float = 1.0) -> list[str]:
    """Seeded random values for position/class embeddings that a library starts at exactly zero."""
    generator = torch.Generator("cpu").manual_seed(seed)
    filled = []
    for name, param in model.named_parameters():
        if name.rsplit(".", 1)[-1] in ZERO_EMBEDDINGS and not param.any():
            param.copy_((torch.randn(param.shape, generator=generator) * 0.02 * gain).to(param))
            filled.append(name)
    return filled


def zero_weights(model: torch.nn.Module) -> list[str]:
    """Names of parameters other than biases that are exactly zero (biases start at zero in any fresh model
    and shift a layer's output without hiding it)."""
    return [
        name
        for name, p in model.named_parameters()
        if p.numel() and not p.detach().any() and not name.endswith(".bias")
    ]
