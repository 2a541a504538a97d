"""Model presets: which weights make up the stack, by hub id or by a bundle folder on disk.

A bundle folder (`--models DIR`) has this layout, each part in its library's own format:

    modomo-bundle.json      {"format": 1, "name": ...}
    stable-diffusion/       diffusers: unet/ vae/ text_encoder/ tokenizer/ scheduler/
    controlnet-depth/       diffusers ControlNetModel
    controlnet-canny/       diffusers ControlNetModel
    controlnet-lines/       optional: diffusers ControlNetModel for straight-line (MLSD) maps, for styles'
                            [controls.lines]
    controlnet-inpaint/     optional: diffusers ControlNetModel for inpainting (control_v11p_sd15_inpaint), for
                            --mode declutter's refine pass
    depth/                  transformers depth-estimation model + image processor
    yolo.pt                 ultralytics detection weight
    sam2/sam2.yaml          sam2 model config (hydra `_target_` form)
    sam2/sam2.pt            sam2 checkpoint ({"model": state_dict})
    clip/                   optional: transformers CLIPModel + processor, for the style-adherence score
    segmentation/           optional: transformers semantic segmentation model (ADE20K classes) + processor, for
                            --preserve window, door, ... (parts of the room)
    upscaler/FILE           optional: one super-resolution weight spandrel loads (.safetensors, .pth, .pt, .ckpt),
                            for results larger than the working size (--output-size)
    ip-adapter/models/      optional: IP-Adapter for SD1.5 in the hub repo's layout (ip-adapter_sd15.safetensors and
                            image_encoder/), for --style-ref and room sets
    fast/RECIPE.safetensors optional, per recipe of models.recipes (lcm, tcd, hyper): the few-step LoRA that --fast
                            fuses into the UNet, in the layout of the recipe's published file
    lama/FILE               optional: one inpainting weight spandrel reads (big-lama.pt, or .safetensors, .pth,
                            .ckpt), the first fill of what --mode declutter takes out
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ModomoError

BUNDLE_FILE = "modomo-bundle.json"
BUNDLE_FORMAT = 1
# 3: ControlNet outputs and position embeddings are not zero; 4: with CLIP; 5: with an upscaler; 6: with fast LoRAs;
# 7: with the lines ControlNet and scene segmentation; 8: with an IP-Adapter. Parts a restyle never loads (the inpaint
# ControlNet and LaMa of --mode declutter) are added to a built bundle in place (`tiny.add_missing`): its other models,
# and so the results already made with them, stay as they are.
TINY_VERSION = 8
# Real-ESRGAN x4plus, for results above the working size (loaded by pipeline.models.upscaler)
SD15_REPO = "lllyasviel/Annotators"
SD15_FILE = "RealESRGAN_x4plus.pth"
SD15_UPSCALER = f"hub:{SD15_REPO}/{SD15_FILE}"
SD15_LINES = "lllyasviel/control_v11p_sd15_mlsd"
SD15_SEGMENTER = "nvidia/segformer-b0-finetuned-ade-512-512"
SD15_IP_ADAPTER = "h94/IP-Adapter"
SD15_INPAINT = "lllyasviel/control_v11p_sd15_inpaint"
SD15_LAMA = "hub:signature-ai/big-lama/big-lama.pt"  # big-lama, as IOPaint ships it (its source: models.lama)
UPSCALER_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")  # the weight formats spandrel reads


@dataclass(frozen=True)
class ModelSpec:
    """Where each model of the stack comes from: a hub id or a local path."""

    name: str
    sd: str
    controlnet_depth: str
    controlnet_canny: str
    depth: str
    yolo: str
    sam2_config: str
    sam2_checkpoint: str  # a path, or "hub:REPO/FILE" for a file in a hub repo
    local: bool = False
    # A preset built from seeds instead of read from weights: the module whose `Builders` makes its models
    # (pipeline.models.loaders.loaders_for); None for a preset whose weights are on disk or on the hub.
    builder: str | None = None
    clip: str | None = None  # optional: scores style adherence when its weights are present
    checkpoint: str | None = None  # a single-file SD1.5 fine-tune replacing UNet, VAE and text encoder
    # Optional super-resolution weight for results above the working size: a path, or "hub:REPO/FILE". Not in
    # `ids()`: it shapes a result only when the result leaves the working size, so the run adds it then.
    upscaler: str | None = None
    # Per few-step recipe (models.recipes), its LoRA: "hub:REPO/FILE", a path, or "random:RECIPE" (built in memory).
    # Not in `ids()`: a run records the recipe it fused on its own, and results without --fast stay as they were.
    fast_loras: dict[str, str] = field(default_factory=dict, hash=False)
    # Optional: the straight-line (MLSD) ControlNet for styles with [controls.lines], and an ADE20K semantic
    # segmentation model for --preserve's parts of the room. In `ids()` only for results they shape (see RunConfig).
    controlnet_lines: str | None = None
    segmenter: str | None = None
    # Optional: the IP-Adapter (hub repo or folder in its layout, pipeline.models.ip_adapter) for --style-ref and room
    # sets. Not in `ids()`: a result made with a reference records it with the reference (see RunConfig).
    ip_adapter: str | None = None
    # Optional, for --mode declutter: the inpaint ControlNet of its refine pass (a hub id or folder), and LaMa, the
    # inpainting network of its first fill (a path, or "hub:REPO/FILE"; spandrel reads it: pipeline.models.lama).
    # Not in `ids()`: a decluttered result records them with its mode.
    controlnet_inpaint: str | None = None
    lama: str | None = None

    @property
    def upscaler_id(self) -> str | None:
        """The upscaler as results record it (REPO/FILE on the hub, else its path); None when the preset has none."""
        return self.upscaler.removeprefix("hub:") if self.upscaler else None

    def ids(self) -> dict[str, str]:
        """The model ids recorded in metadata."""
        return {
            "preset": self.name,
            **({"clip": self.clip} if self.clip else {}),
            **({"checkpoint": self.checkpoint} if self.checkpoint else {}),
            "stable_diffusion": self.sd,
            "controlnet_depth": self.controlnet_depth,
            "controlnet_canny": self.controlnet_canny,
            "depth": self.depth,
            "yolo": self.yolo,
            "sam2": self.sam2_checkpoint,
        }


def _sam2_package_config() -> str:
    from pipeline.models.vision import sam2_package_config

    return str(sam2_package_config("sam2.1/sam2.1_hiera_t.yaml"))


def sd15() -> ModelSpec:
    """The default: public SD1.5, v1.1 depth and canny ControlNets, DPT-Large, YOLO11m, SAM2.1 tiny,
    Real-ESRGAN x4plus for results above the working size (its source: `pipeline.models.upscaler`), each
    few-step recipe's published LoRA for --fast, and for --mode declutter the v1.1 inpaint ControlNet and big-lama
    (its source: `pipeline.models.lama`)."""
    from pipeline.models.recipes import RECIPES

    return ModelSpec(
        name="sd15",
        sd="stable-diffusion-v1-5/stable-diffusion-v1-5",
        controlnet_depth="lllyasviel/control_v11f1p_sd15_depth",
        controlnet_canny="lllyasviel/control_v11p_sd15_canny",
        depth="Intel/dpt-large",
        yolo="yolo11m.pt",
        sam2_config=_sam2_package_config(),
        sam2_checkpoint="hub:facebook/sam2.1-hiera-tiny/sam2.1_hiera_tiny.pt",
        clip="openai/clip-vit-base-patch32",
        upscaler=SD15_UPSCALER,
        fast_loras={name: f"hub:{recipe.hub_id}" for name, recipe in RECIPES.items()},
        controlnet_lines=SD15_LINES,
        segmenter=SD15_SEGMENTER,
        ip_adapter=SD15_IP_ADAPTER,
        controlnet_inpaint=SD15_INPAINT,
        lama=SD15_LAMA,
    )


def hub_parts(name: str) -> tuple[str, str]:
    """`hub:REPO/FILE` (or `REPO/FILE`) -> (REPO, FILE): the one reader of a hub file's name."""
    repo, _, filename = name.removeprefix("hub:").rpartition("/")
    return repo, filename


def hub_file_cached(repo: str, filename: str) -> str | None:
    """The cached path of a hub file, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return found if isinstance(found, str) else None


def cache_dir() -> Path:
    """modomo's own cache (the built tiny bundle): $MODOMO_CACHE, else $XDG_CACHE_HOME/modomo."""
    if os.environ.get("MODOMO_CACHE"):
        return Path(os.environ["MODOMO_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "modomo"


def bundle(folder: str | Path) -> ModelSpec:
    """A bundle folder on disk (layout in this module's docstring)."""
    folder = Path(folder).expanduser().resolve()
    manifest_path = folder / BUNDLE_FILE
    if not manifest_path.is_file():
        raise ModomoError(f"{folder}: not a model bundle (no {BUNDLE_FILE}); see the README's bundle layout")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModomoError(f"{manifest_path}: unreadable bundle manifest: {exc}") from None
    if manifest.get("format") != BUNDLE_FORMAT:
        raise ModomoError(f"{manifest_path}: unsupported bundle format {manifest.get('format')!r}")
    spec = ModelSpec(
        name=str(folder),
        sd=str(folder / "stable-diffusion"),
        controlnet_depth=str(folder / "controlnet-depth"),
        controlnet_canny=str(folder / "controlnet-canny"),
        depth=str(folder / "depth"),
        yolo=str(folder / "yolo.pt"),
        sam2_config=str(folder / "sam2" / "sam2.yaml"),
        sam2_checkpoint=str(folder / "sam2" / "sam2.pt"),
        local=True,
        clip=str(folder / "clip") if (folder / "clip").is_dir() else None,
        upscaler=bundle_upscaler(folder),
        fast_loras=bundle_fast_loras(folder),
        controlnet_lines=str(folder / "controlnet-lines") if (folder / "controlnet-lines").is_dir() else None,
        segmenter=str(folder / "segmentation") if (folder / "segmentation").is_dir() else None,
        ip_adapter=str(folder / "ip-adapter") if (folder / "ip-adapter").is_dir() else None,
        controlnet_inpaint=str(folder / "controlnet-inpaint") if (folder / "controlnet-inpaint").is_dir() else None,
        lama=spandrel_file(folder / "lama"),
    )
    missing = [
        p
        for p in (
            spec.sd,
            spec.controlnet_depth,
            spec.controlnet_canny,
            spec.depth,
            spec.yolo,
            spec.sam2_config,
            spec.sam2_checkpoint,
        )
        if not Path(p).exists()
    ]
    if missing:
        raise ModomoError(f"{folder}: bundle is incomplete, missing {', '.join(missing)}")
    return spec


def bundle_upscaler(folder: Path) -> str | None:
    """The bundle's super-resolution weight: the first file in `upscaler/` spandrel can read, by name."""
    return spandrel_file(folder / "upscaler")


def spandrel_file(folder: Path) -> str | None:
    """The first file in `folder` of a weight format spandrel reads, by name; None when there is none."""
    found = sorted(p for p in folder.glob("*") if p.is_file() and p.suffix.lower() in UPSCALER_SUFFIXES)
    return str(found[0]) if found else None


def bundle_fast_loras(folder: Path) -> dict[str, str]:
    """The bundle's few-step LoRAs: `fast/<recipe>.safetensors` for each recipe whose file is there."""
    from pipeline.models.recipes import RECIPES

    files = {name: folder / "fast" / f"{name}.safetensors" for name in RECIPES}
    return {name: str(path) for name, path in files.items() if path.is_file()}
