"""SegFormer for ADE20K scene parsing: random ones built from configs, real ones loaded from a folder or the hub.

`b0` is the architecture of nvidia/segformer-b0-finetuned-ade-512-512 (MiT-b0 with its 150-class head);
`tiny` is the same shape of model shrunk until a CPU runs it in milliseconds. Both carry the real label list,
so a random model's label maps name the classes a trained one's would.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pipeline.models.ade20k import ade20k_labels

ADE20K_LABELS: tuple[str, ...] = ade20k_labels()

# The encoder and decoder sizes that differ from SegformerConfig's defaults (which are MiT-b0's), and the
# processor's square input side: the real checkpoint's is 512.
SIZES: dict[str, tuple[dict, int]] = {
    "b0": (
        {
            "hidden_sizes": [32, 64, 160, 256],
            "depths": [2, 2, 2, 2],
            "num_attention_heads": [1, 2, 5, 8],
            "sr_ratios": [8, 4, 2, 1],
            "decoder_hidden_size": 256,
        },
        512,
    ),
    "tiny": (
        {
            "hidden_sizes": [8, 16, 16, 32],
            "depths": [1, 1, 1, 1],
            "num_attention_heads": [1, 1, 1, 1],
            "sr_ratios": [8, 4, 2, 1],
            "decoder_hidden_size": 16,
        },
        64,
    ),
}
# transformers initialises every layer at std 0.02: through the decoder the features shrink about 1000-fold, so
# every pixel's softmax is near uniform (top probability ~1/150, logits 1e-4 apart), and a wider classifier with a
# bias alone lets the bias pick one class for the whole photo. The random models redraw the decoder's projections
# variance-preserving (std 1/sqrt(fan_in)) and its classifier wide with a random bias: logits of a trained model's
# scale, and a label map that varies over a photo as a trained one's does.
HEAD_STD = 1.0
HEAD_BIAS_STD = 0.5


def config(size: str):
    """The SegformerConfig of `size` ("b0" or "tiny") with the ADE20K head and labels."""
    from transformers import SegformerConfig

    if size not in SIZES:
        raise ValueError(f"segformer size {size!r}: choose from {', '.join(SIZES)}")
    return SegformerConfig(
        **SIZES[size][0],
        num_labels=len(ADE20K_LABELS),
        id2label=dict(enumerate(ADE20K_LABELS)),
        label2id={name: index for index, name in enumerate(ADE20K_LABELS)},
        semantic_loss_ignore_index=255,
    )


def processor(size: str):
    """The image processor: resize to the square side, ImageNet normalisation, ADE20K's reduced labels."""
    from transformers import SegformerImageProcessor

    side = SIZES[size][1]
    return SegformerImageProcessor(size={"height": side, "width": side}, do_reduce_labels=True)


@torch.no_grad()
def wake_decoder(head) -> None:
    """Redraw a SegformerDecodeHead's projections (std 1/sqrt(fan_in)) and classifier (std HEAD_STD, random bias)
    from torch's global RNG."""
    for layer in (*(mlp.proj for mlp in head.linear_projections), head.linear_fuse):
        layer.weight.normal_(0.0, math.prod(layer.weight.shape[1:]) ** -0.5)
    head.classifier.weight.normal_(0.0, HEAD_STD)
    head.classifier.bias.normal_(0.0, HEAD_BIAS_STD)


def build_in_memory(
    size: str = "tiny", device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
):
    """A random SegFormer of `size` on `device` in eval mode, and its processor; the caller's RNG is untouched."""
    from transformers import SegformerForSemanticSegmentation

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SegformerForSemanticSegmentation(config(size))
        wake_decoder(model.decode_head)
    return model.to(device=device, dtype=dtype).eval(), processor(size)


def build_random(folder: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save a random SegFormer of `size` and its processor into `folder` (save_pretrained); returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, image_processor = build_in_memory(size, seed=seed)
    model.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    return folder


def load(path_or_id: str, device: str | torch.device, dtype: torch.dtype, local_files_only: bool = False):
    """A semantic-segmentation model and its processor from a folder or hub id, on `device`, in eval mode.

    OSError (missing files, no network) propagates: the caller words it for the user."""
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    model = AutoModelForSemanticSegmentation.from_pretrained(str(path_or_id), local_files_only=local_files_only)
    image_processor = AutoImageProcessor.from_pretrained(str(path_or_id), local_files_only=local_files_only)
    return model.to(device=device, dtype=dtype).eval(), image_processor
