"""Loaders for the vision models (YOLO detector, SAM2 segmenter) and tiny random stand-ins for tests."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ModomoError

if TYPE_CHECKING:
    from sam2.modeling.sam2_base import SAM2Base
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    from ultralytics import YOLO

# The same mask-decoder settings sam2.build_sam.build_sam2 applies by default (apply_postprocessing=True).
_SAM2_POSTPROCESSING = {
    "dynamic_multimask_via_stability": True,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
}
TINY_YOLO_YAML = "yolo11n.yaml"
TINY_SAM2_IMAGE_SIZE = 256


def ultralytics_offline() -> None:
    """Keep ultralytics offline (no DNS probe, telemetry or auto-install); call before importing it."""
    os.environ.setdefault("YOLO_OFFLINE", "1")


@contextmanager
def keep_torch_threads():
    """Ultralytics resets torch's CPU thread count to cores - 1 whenever it picks a device; put it back."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def load_yolo(weights: str | Path, device: str) -> YOLO:
    """Load a YOLO detector from a local .pt (never downloads); ModomoError when missing or unreadable."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModomoError(
            f"YOLO weight '{weights}' not found in {path.parent.resolve()}; run `modomo models download sd15` "
            "with network, pass a local bundle, or try modomo without any download: --models tiny"
        )
    ultralytics_offline()
    from ultralytics import YOLO

    try:
        with keep_torch_threads():
            model = YOLO(str(path), task="detect")
            model.to(device)
    except Exception as exc:  # corrupt file, wrong format, bad device
        raise ModomoError(f"cannot load YOLO weight '{path}': {' '.join(str(exc).split())}") from exc
    return model


def sam2_package_config(name: str = "sam2.1/sam2.1_hiera_t.yaml") -> Path:
    """Path of a config yaml shipped inside the installed sam2 package."""
    import sam2

    path = Path(sam2.__file__).resolve().parent / "configs" / name
    if not path.is_file():
        raise ModomoError(f"SAM2 config '{name}' is not in the installed sam2 package ({path.parent})")
    return path


def build_sam2_model(config: Path, checkpoint: Path | None = None, device: str = "cpu") -> SAM2Base:
    """Build a SAM2 model from a yaml anywhere on disk; `checkpoint=None` keeps random init (tests only)."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    config = Path(config)
    missing = [str(p) for p in (config, checkpoint) if p is not None and not Path(p).is_file()]
    if missing:
        raise ModomoError(f"SAM2 file(s) not found: {', '.join(missing)}")
    cfg = OmegaConf.load(config)
    if "model" not in cfg:
        raise ModomoError(f"SAM2 config '{config}' has no `model` section")
    extra = cfg.model.get("sam_mask_decoder_extra_args") or {}
    cfg.model.sam_mask_decoder_extra_args = {**_SAM2_POSTPROCESSING, **extra}
    OmegaConf.resolve(cfg)
    try:
        model = instantiate(cfg.model, _recursive_=True)
    except Exception as exc:
        raise ModomoError(f"cannot build SAM2 from '{config}': {' '.join(str(exc).split())}") from exc
    if checkpoint is not None:
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
            model.load_state_dict(state, strict=True)
        except Exception as exc:  # unreadable file, no "model" key, keys/shapes not matching the config
            reason = " ".join(str(exc).split())[:300]
            raise ModomoError(f"SAM2 checkpoint '{checkpoint}' does not fit '{config}': {reason}") from exc
    return model.eval().to(device)


def load_sam2(config: Path, checkpoint: Path | None, device: str) -> SAM2ImagePredictor:
    """Load SAM2 (config yaml + `{"model": state_dict}` checkpoint) as an image predictor; None = random."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    model = build_sam2_model(config, checkpoint, device)
    predictor = SAM2ImagePredictor(model)
    # The predictor hard-codes the feature sizes of a 1024 px model; derive them from this model's size.
    size, stride = model.image_size, model.backbone_stride
    predictor._bb_feat_sizes = [(size // s, size // s) for s in (stride // 4, stride // 2, stride)]
    return predictor


def coco_names() -> dict[int, str]:
    """The 80 COCO class names, from the dataset yaml shipped inside ultralytics."""
    ultralytics_offline()
    import ultralytics
    from ultralytics.utils import YAML

    data = YAML.load(Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco.yaml")
    return {int(k): str(v) for k, v in data["names"].items()}


TINY_YOLO_BIAS = {"couch": 1.0, "chair": 0.9, "potted plant": 0.8, "bed": 0.7}


def bias_towards_furniture(net) -> None:
    """Shift the class logits so a random detector 'sees' furniture, and segmentation has boxes to work on.

    With plain random weights every class scores alike and the top class is 'person', which the
    furniture filter drops, so the tiny stack would never exercise the segment stage.
    """
    import torch

    head = net.model[-1]
    names = {v: k for k, v in net.names.items()}
    with torch.no_grad():
        for branch in head.cv3:
            bias = branch[-1].bias
            bias.fill_(-8.0)
            for label, value in TINY_YOLO_BIAS.items():
                bias[names[label]] = value


def build_tiny_yolo(path: Path, seed: int = 0) -> Path:
    """Write a randomly initialised yolo11n detector with the 80 COCO names as a .pt that YOLO() loads."""
    ultralytics_offline()
    import torch
    from ultralytics import YOLO

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = YOLO(TINY_YOLO_YAML, task="detect")  # yaml ships inside ultralytics: built, not downloaded
    model.model.names = coco_names()
    bias_towards_furniture(model.model)
    model.save(path)
    return path


def _tiny_sam2_overrides(size: int) -> dict[str, Any]:
    """The shrunken dimensions of the tiny SAM2, as dotted-key overrides of the hiera tiny config."""
    feat = [size // 16, size // 16]
    return {
        "model.image_size": size,
        "model.image_encoder.trunk.embed_dim": 16,
        "model.image_encoder.trunk.num_heads": 1,
        "model.image_encoder.trunk.stages": [1, 1, 2, 1],
        "model.image_encoder.trunk.global_att_blocks": [3],
        "model.image_encoder.trunk.window_spec": [8, 4, 8, 4],
        "model.image_encoder.trunk.window_pos_embed_bkg_spatial_size": [4, 4],
        "model.image_encoder.neck.d_model": 64,
        "model.image_encoder.neck.position_encoding.num_pos_feats": 64,
        "model.image_encoder.neck.backbone_channel_list": [128, 64, 32, 16],
        "model.memory_attention.d_model": 64,
        "model.memory_attention.num_layers": 1,
        "model.memory_attention.layer.d_model": 64,
        "model.memory_attention.layer.dim_feedforward": 128,
        "model.memory_attention.layer.self_attention.embedding_dim": 64,
        "model.memory_attention.layer.self_attention.feat_sizes": feat,
        "model.memory_attention.layer.cross_attention.embedding_dim": 64,
        "model.memory_attention.layer.cross_attention.feat_sizes": feat,
        "model.memory_attention.layer.cross_attention.kv_in_dim": 32,
        "model.memory_encoder.out_dim": 32,
        "model.memory_encoder.in_dim": 64,
        "model.memory_encoder.position_encoding.num_pos_feats": 32,
        "model.memory_encoder.mask_downsampler.embed_dim": 64,
        "model.memory_encoder.fuser.layer.dim": 64,
        "model.memory_encoder.fuser.num_layers": 1,
    }


def build_tiny_sam2(folder: Path, seed: int = 0, image_size: int = TINY_SAM2_IMAGE_SIZE) -> tuple[Path, Path]:
    """Write `sam2.yaml` (a shrunken sam2.1 hiera tiny) and `sam2.pt` (its seeded random weights)."""
    import torch
    from omegaconf import OmegaConf

    from pipeline.models.awaken import awaken_embeddings

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = OmegaConf.load(sam2_package_config())
    for key, value in _tiny_sam2_overrides(image_size).items():
        OmegaConf.update(cfg, key, value, force_add=True)
    config, checkpoint = folder / "sam2.yaml", folder / "sam2.pt"
    OmegaConf.save(cfg, config)
    torch.manual_seed(seed)
    model = build_sam2_model(config, None, "cpu")
    awaken_embeddings(model, seed)
    torch.save({"model": model.state_dict()}, checkpoint)
    return config, checkpoint
