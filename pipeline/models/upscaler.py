"""The super-resolution network behind results larger than the working size (--output-size), read by spandrel.

The sd15 preset's network is Real-ESRGAN x4plus (RRDBNet: 64 features, 23 RRDB blocks, x4, 16.7 M parameters):

    repo     lllyasviel/Annotators          (Hugging Face hub)
    file     RealESRGAN_x4plus.pth          67 MB, a pickle of {"params_ema": state_dict}
    licence  BSD-3-Clause: the weights of the Real-ESRGAN project (github.com/xinntao/Real-ESRGAN, Xintao Wang
             et al.); the hub repository itself is marked "other". The project's own release of the file has
             SHA-256 4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1

Why this network: it is trained on synthetic real-world degradations (blur, noise, JPEG), the kind a VAE decode
and a resize leave, rather than on clean bicubic downsamples, so it sharpens a generated room instead of
magnifying its artefacts; x4 takes a 768 px result to 3072 px in one pass and Lanczos does the last, smaller
step to the photo's size; spandrel recognises it from the file alone. Why this repository: its publisher is the
author of the preset's ControlNets, the file has sat at this path since April 2023 and is widely fetched from
it by Stable Diffusion tools, and the upstream release lives on GitHub, which `modomo models download` (a
Hugging Face hub client) does not fetch from. A bundle replaces it with any file spandrel reads in its
`upscaler/` folder.

The random presets use the same architecture with seeded random weights shaped to act like an upscaler: the
first three feature channels carry the picture through the network (nearest-neighbour upsampling) and every
other layer adds a small detail term to it, so the output resembles the input, every layer changes it, and
tiles overlap as the real network's do. With its default initialisation an RRDBNet's output bears little
likeness to its input, and a test of "the network did the work" would pass on noise.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from pipeline.errors import ModomoError

TINY_FILE = "realesrgan-tiny-x4.safetensors"
X4PLUS = {"num_filters": 64, "num_blocks": 23, "scale": 4}  # RealESRGAN_x4plus's hyperparameters
DETAIL = 0.05  # std of what the random networks add to the upsampled picture, in [0, 1] units
CARRIERS = 3  # feature channels that carry the RGB picture through a random network


def load(path: str | Path, device):
    """A spandrel ImageModelDescriptor for a super-resolution weight file, on `device`, in eval mode; half
    precision on CUDA when the architecture supports it (Real-ESRGAN runs in fp16 without visible loss)."""
    import torch
    from spandrel import ImageModelDescriptor, ModelLoader

    try:
        model = ModelLoader().load_from_file(path)
    except Exception as exc:  # noqa: BLE001 - unreadable file or unknown architecture: one message either way
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModomoError(f"{path}: cannot load the upscaler: {reason}") from None
    return place(model, torch.device(device), str(path), ImageModelDescriptor)


def place(model, device, name: str, descriptor_type=None):
    """Check that `model` enlarges images, then move it to `device` (fp16 on CUDA where supported)."""
    if descriptor_type is None:
        from spandrel import ImageModelDescriptor as descriptor_type
    if not isinstance(model, descriptor_type) or model.scale < 2:
        raise ModomoError(
            f"{name}: not a super-resolution model ({model.architecture.name}, scale {getattr(model, 'scale', '?')})"
        )
    model.to(device).eval()
    if device.type == "cuda" and model.supports_half:
        model.half()
    return model


def build_random(num_filters: int = 64, num_blocks: int = 23, scale: int = 4, seed: int = 0, device="cpu"):
    """spandrel's RRDBNet (the Real-ESRGAN architecture) with seeded weights that act like an upscaler."""
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    with torch.device(device):
        net = ESRGAN(num_filters=num_filters, num_blocks=num_blocks, scale=scale)
    awaken(net.eval(), seed)
    return net


def awaken(net, seed: int, detail: float = DETAIL) -> None:
    """Seeded weights for an RRDBNet: variance-preserving everywhere, the carrier channels copying the picture
    along the top-level convolutions, and the two layers that add to the carried picture (the trunk's last
    convolution, the output convolution) scaled so the output differs from the nearest-neighbour upsampled
    input by `detail` (std), measured on a seeded probe image."""
    import torch

    from pipeline.models.awaken import _fill

    generator = torch.Generator("cpu").manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                _fill(module.weight, generator, math.sqrt(2.0))  # He gain: a LeakyReLU follows most of them
                _fill(module.bias, generator, 1.0)
        top = [m for m in net.model if isinstance(m, torch.nn.Conv2d)]
        for conv in top[:-1]:  # conv_first, conv_upN, conv_hr: the carriers pass through unchanged
            conv.weight[:CARRIERS] = 0.0
            conv.bias[:CARRIERS] = 0.0
            for c in range(CARRIERS):
                conv.weight[c, c, 1, 1] = 1.0
        last, trunk_out = top[-1], net.model[1].sub[-1]
        last.bias.zero_()
        trunk_out.bias[:CARRIERS] = 0.0
        identity = torch.zeros_like(last.weight)
        for c in range(CARRIERS):
            identity[c, c, 1, 1] = 1.0
        last.weight += identity
        for _ in range(2):  # the detail is nearly linear in the two layers' scale: two steps reach the target
            factor = detail / max(_measure_detail(net, seed + 1), 1e-8)
            trunk_out.weight[:CARRIERS] *= factor
            last.weight.copy_(identity + (last.weight - identity) * factor)


def _measure_detail(net, seed: int) -> float:
    """Std of the network's output minus its nearest-neighbour upsampled input, on a smooth seeded probe."""
    import torch
    import torch.nn.functional as F

    param = next(net.parameters())
    coarse = torch.rand(1, 3, 6, 6, generator=torch.Generator("cpu").manual_seed(seed))
    probe = F.interpolate(coarse, size=(24, 24), mode="bilinear").to(device=param.device, dtype=param.dtype)
    with torch.inference_mode():
        out = net(probe).float()
    return float((out - F.interpolate(probe.float(), scale_factor=net.scale, mode="nearest")).std())


def basicsr_state_dict(net) -> dict:
    """An upconv RRDBNet's weights under Real-ESRGAN's own names (conv_first, body.N.rdbM.convK, conv_body,
    conv_upN, conv_hr, conv_last): the layout of RealESRGAN_x4plus.pth, so a saved random network takes
    spandrel's conversion path exactly as the real file does."""
    import torch

    names, ups = {}, 0
    top = list(net.model)
    for index, module in enumerate(top):
        if isinstance(module, torch.nn.Conv2d) and index:
            if isinstance(top[index - 1], torch.nn.Upsample):
                ups += 1
                names[f"model.{index}."] = f"conv_up{ups}."
    convs = [i for i, m in enumerate(top) if isinstance(m, torch.nn.Conv2d)]
    names.update({"model.0.": "conv_first.", f"model.{convs[-2]}.": "conv_hr.", f"model.{convs[-1]}.": "conv_last."})
    blocks = len(net.model[1].sub) - 1
    names[f"model.1.sub.{blocks}."] = "conv_body."
    out = {}
    for key, value in net.state_dict().items():
        match = re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", key)
        if match:
            out["body.{}.rdb{}.conv{}.{}".format(*match.groups())] = value
            continue
        prefix = next(p for p in names if key.startswith(p))
        out[names[prefix] + key[len(prefix) :]] = value
    return out


def save(net, path: str | Path) -> Path:
    """Write an RRDBNet as safetensors under Real-ESRGAN's names (spandrel detects and loads it back)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().float().cpu().contiguous() for k, v in basicsr_state_dict(net).items()}, str(path))
    return path


def descriptor(net, device):
    """An in-memory RRDBNet through spandrel's detection, as if read from a file, placed like `load` places one."""
    import torch
    from spandrel import ModelLoader

    model = ModelLoader().load_from_state_dict(basicsr_state_dict(net))
    return place(model, torch.device(device), "random upscaler")
