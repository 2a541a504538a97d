"""LaMa, the inpainting network of --mode declutter's first fill, read by spandrel.

The sd15 preset's network is big-lama (LaMa: Fourier-convolution ResNet generator, 4 input channels for the image
and its mask, 9 FFC blocks, 51.0 M parameters), in the file IOPaint (formerly lama-cleaner) downloads:

    repo     signature-ai/big-lama              (Hugging Face hub)
    file     big-lama.pt                        205,669,692 bytes (196 MiB), TorchScript of the generator alone
    sha256   344c77bbcb158f17dd143070d1e789f38a66c04202311ae3a258ef66667a9ea9
    licence  Apache-2.0: the weights of the LaMa project (github.com/advimman/lama, Suvorov et al., Samsung AI
             Center, "Resolution-robust Large Mask Inpainting with Fourier Convolutions", WACV 2022); the hub
             repository is marked apache-2.0 too.

The file's home is the GitHub release IOPaint fetches and checks by MD5 (e3aa4aaa15225a33ec84f9f4bc47e500):
github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt, the file spandrel's own tests load. `modomo
models download` is a Hugging Face hub client, so the preset names a hub copy instead: the same object by its
SHA-256 and size (the hub's LFS pointer) as that release file, in a repository that holds nothing else and carries
the upstream licence. Other hub copies of the same object exist (gaspardbruno/BigLama, aaronb/remove_anything);
copies that differ from it (a re-exported TorchScript, a Lightning checkpoint, a safetensors conversion) were not
chosen. A bundle replaces it with any inpainting weight spandrel reads in its `lama/` folder (the release file as
it is, for one). spandrel reads the TorchScript's state dict, whose names are those of its own LaMa class
(`model.model.N...`, the key it detects LaMa by), into that class; it runs in fp32 (spandrel marks LaMa as not
supporting fp16, and at the 512 px it works at it costs little next to the diffusion pass).

The random presets use the same architecture with seeded weights: the default initialisation, with every
BatchNorm's running statistics measured on a seeded probe (as a trained network's were measured on its data) and
the output convolution scaled so the sigmoid's input has unit spread. With the default running statistics (mean 0,
variance 1) the features shrink through the nine blocks and the fill is a flat grey (0.5 +- 0.002) that barely
moves when the photo or the mask changes, so a test of "the fill came from LaMa" would pass on a constant.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ModomoError

TINY_FILE = "big-lama-random.safetensors"
PROBE_SIZE = 128  # the side of the probe that sets a random network's BatchNorm statistics


def load(path: str | Path, device):
    """A spandrel MaskedImageModelDescriptor for an inpainting weight file, on `device`, in eval mode, fp32."""
    import torch
    from spandrel import ModelLoader

    try:
        model = ModelLoader().load_from_file(path)
    except Exception as exc:  # noqa: BLE001 - unreadable file or unknown architecture: one message either way
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModomoError(f"{path}: cannot load LaMa: {reason}") from None
    return place(model, torch.device(device), str(path))


def place(model, device, name: str):
    """Check that `model` fills masked images, then move it to `device`."""
    from spandrel import MaskedImageModelDescriptor

    if not isinstance(model, MaskedImageModelDescriptor):
        raise ModomoError(f"{name}: not an inpainting model ({model.architecture.name}, {model.purpose})")
    return model.to(device).eval()


def build_random(seed: int = 0, device="cpu"):
    """spandrel's LaMa (the big-lama architecture: image and mask in, RGB out), with seeded weights that fill."""
    import torch
    from spandrel.architectures.LaMa import LaMa

    device = torch.device(device)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        with device:
            net = LaMa(in_nc=4, out_nc=3)
    awaken(net, seed)
    return net.eval()


def awaken(net, seed: int) -> None:
    """Running statistics for every BatchNorm, measured on a seeded probe (a smooth image, a box masked out), and
    the output convolution scaled and shifted so the sigmoid's input has mean 0 and std 1 on that probe."""
    import torch

    image, mask = probe(seed, PROBE_SIZE, next(net.parameters()))
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    generator = net.model
    with torch.no_grad():
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: after one pass, that pass's statistics
        generator.train()
        generator(image * (1 - mask), mask)
        generator.eval()
        for norm in norms:
            norm.momentum = 0.1  # the library's default again
        layers = generator.model
        last = layers[-2]  # the output convolution, before the sigmoid
        features = layers[:-2](torch.cat([image * (1 - mask), mask], dim=1))
        spread = last(features).std().clamp_min(1e-8)
        last.weight.div_(spread)
        last.bias.div_(spread)
        last.bias.sub_(last(features).mean())


def probe(seed: int, size: int, like):
    """A smooth seeded RGB image in [0, 1] and a centred box mask (1 = fill), shaped (1, C, size, size)."""
    import torch
    import torch.nn.functional as F

    coarse = torch.rand(1, 3, max(2, size // 16), max(2, size // 16), generator=torch.Generator().manual_seed(seed))
    image = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4 : size * 3 // 4, size // 4 : size * 3 // 4] = 1.0
    return image.to(like), mask.to(like)


def save(net, path: str | Path, dtype=None) -> Path:
    """Write a LaMa as safetensors under the names big-lama.pt's state dict has (spandrel detects and loads it back
    into its fp32 LaMa); `dtype` (torch.float16 for the tiny bundle: half the size) for its floating tensors."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for key, value in net.state_dict().items():
        value = value.detach().cpu()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value.contiguous()
    save_file(tensors, str(path))
    return path


def descriptor(net, device):
    """An in-memory LaMa through spandrel's detection, as if read from a file, placed like `load` places one."""
    import torch
    from spandrel import ModelLoader

    model = ModelLoader().load_from_state_dict(net.state_dict())
    return place(model, torch.device(device), "random LaMa")
