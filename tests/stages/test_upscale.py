"""Results at the photo's own resolution: the upscaler model plumbing and the upscale stage.

The tiny bundle's upscaler is Real-ESRGAN's RRDBNet shrunk, random, saved under the real file's names and read
back by spandrel; these tests run it on the CPU at a few hundred pixels.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.errors import UsageError
from pipeline.frames import Frame, Item
from pipeline.models import upscaler
from pipeline.models.awaken import zero_weights
from pipeline.models.catalog import random_sd15
from pipeline.models.loaders import WeightLoaders
from pipeline.models.presets import bundle, sd15
from pipeline.stages.preserve import Compositor, soften
from pipeline.stages.upscale import Upscaler, output_size, windows

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def network(tiny_bundle):
    """The tiny bundle's upscaler, loaded as a run loads it."""
    return WeightLoaders(bundle(tiny_bundle)).upscaler(CPU)


@pytest.fixture(scope="module")
def photo(rooms) -> Image.Image:
    """A real room photo standing in for the full-resolution original (4:3, like a phone's)."""
    return Image.open(rooms / "living-room-02-small.jpg").convert("RGB").resize((288, 216), Image.LANCZOS)


def frame_of(result: Image.Image, target, original=None, keep=None, image=None) -> Frame:
    item = Item(key="room.jpg", path=Path("room.jpg"), root=Path("."))
    return Frame(
        item=item, seed=0, image=image or result, result=result, original=original, keep=keep, target_size=target
    )


def noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A stand-in for a generated result: smooth random colours, nothing like the photo."""
    rng = np.random.default_rng(seed)
    small = (rng.random((size[1] // 8, size[0] // 8, 3)) * 255).astype(np.uint8)
    return Image.fromarray(small).resize(size, Image.BICUBIC)


def test_tiny_upscaler_is_real_esrgan_read_by_spandrel(tiny_bundle, network):
    from safetensors import safe_open
    from spandrel import ImageModelDescriptor

    spec = bundle(tiny_bundle)
    path = Path(spec.upscaler)
    assert path.parent.name == "upscaler" and path.suffix == ".safetensors"
    with safe_open(str(path), "pt") as weights:  # Real-ESRGAN's own names, as in RealESRGAN_x4plus.pth
        assert {
            "conv_first.weight",
            "body.0.rdb1.conv1.weight",
            "conv_body.weight",
            "conv_up2.weight",
            "conv_last.weight",
        } <= set(weights.keys())
    assert isinstance(network, ImageModelDescriptor)
    assert network.architecture.id == "ESRGAN" and network.scale == 4 and network.purpose == "SR"
    assert network.device == CPU and network.dtype == torch.float32
    assert zero_weights(network.model) == []  # every layer contributes
    assert spec.upscaler_id == str(path) and "upscaler" not in spec.ids()  # results' hash: only when resized


def test_a_pth_in_the_real_files_layout_loads_the_same(tmp_path, tiny_bundle, network):
    """RealESRGAN_x4plus.pth is a pickle of {"params_ema": state_dict}: the same network read that way."""
    from safetensors.torch import load_file

    from pipeline.errors import ModomoError

    path = tmp_path / "RealESRGAN_tiny.pth"
    torch.save({"params_ema": load_file(bundle(tiny_bundle).upscaler)}, path)
    again = upscaler.load(path, CPU)
    probe = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again(probe), network(probe))
    (tmp_path / "broken.pth").write_bytes(b"not a weight")
    with pytest.raises(ModomoError, match="cannot load the upscaler") as error:
        upscaler.load(tmp_path / "broken.pth", CPU)
    assert "\n" not in str(error.value)


def test_presets_name_their_upscaler(tmp_path):
    spec = sd15()
    assert spec.upscaler == "hub:lllyasviel/Annotators/RealESRGAN_x4plus.pth"
    assert spec.upscaler_id == "lllyasviel/Annotators/RealESRGAN_x4plus.pth"
    assert "upscaler" not in spec.ids() and spec.upscaler_id not in spec.ids().values()
    assert WeightLoaders(spec).upscaler(CPU) is None  # not downloaded: Lanczos, and no network access
    assert random_sd15().upscaler.startswith("random:") and "upscaler" not in random_sd15().ids()
    folder = tmp_path / "bundle"  # a bundle without upscaler/: none
    for part in ("stable-diffusion", "controlnet-depth", "controlnet-canny", "depth", "sam2"):
        (folder / part).mkdir(parents=True)
    for part in ("yolo.pt", "sam2/sam2.yaml", "sam2/sam2.pt"):
        (folder / part).write_bytes(b"")
    (folder / "modomo-bundle.json").write_text('{"format": 1}')
    assert bundle(folder).upscaler is None
    (folder / "upscaler").mkdir()
    (folder / "upscaler" / "notes.txt").write_text("not a weight")
    (folder / "upscaler" / "4x.pth").write_bytes(b"")
    assert bundle(folder).upscaler == str(folder / "upscaler" / "4x.pth")


def test_random_sd15_upscaler_has_real_esrgan_x4plus_size():
    from spandrel.architectures.ESRGAN import ESRGAN

    net = ESRGAN(**upscaler.X4PLUS)  # what random_sd15.build_upscaler awakens: RealESRGAN_x4plus's shape
    assert sum(p.numel() for p in net.parameters()) == 16_697_987


def test_stage_returns_exactly_the_target_size(network, photo):
    result = photo.resize((96, 72), Image.LANCZOS)
    stage = Upscaler(network, CPU)
    for target in [(288, 216), (401, 299), (500, 375), (80, 60), (96, 150)]:
        frames = stage([frame_of(result, target)])
        assert frames[0].result.size == target and frames[0].result.mode == "RGB"


def test_network_does_the_work_not_lanczos(network, photo):
    result = photo.resize((96, 72), Image.LANCZOS)
    target = (288, 216)
    enlarged = np.asarray(Upscaler(network, CPU).resize(result, target), dtype=np.float32)
    lanczos = np.asarray(result.resize(target, Image.LANCZOS), dtype=np.float32)
    assert np.abs(enlarged - lanczos).mean() > 4.0  # the network changed it
    assert np.corrcoef(enlarged.ravel(), lanczos.ravel())[0, 1] > 0.8  # and it is still the picture


def test_tiles_match_one_pass(network, photo):
    result = photo.resize((96, 72), Image.LANCZOS)
    boxes = list(windows(96, 72, 32, 16))
    assert len(boxes) == 9 and len({(x1 - x0, y1 - y0) for _, (x0, y0, x1, y1) in boxes}) == 1
    covered = np.zeros((72, 96), dtype=int)
    for (x0, y0, x1, y1), (wx0, wy0, wx1, wy1) in boxes:
        covered[y0:y1, x0:x1] += 1
        assert wx0 <= x0 and wy0 <= y0 and x1 <= wx1 and y1 <= wy1
    assert covered.min() >= 1
    tiled = np.asarray(Upscaler(network, CPU, tile=32, overlap=16, batch=4).super_resolve(result), dtype=int)
    whole = np.asarray(Upscaler(network, CPU, tile=4096).super_resolve(result), dtype=int)
    assert tiled.shape == whole.shape == (288, 384, 3)
    assert np.abs(tiled - whole).max() <= 1 and np.abs(tiled - whole).mean() < 0.01


def keep_mask(size: tuple[int, int]) -> np.ndarray:
    """A kept object at the working size: a rectangle, grown and feathered as --preserve does."""
    width, height = size
    mask = np.zeros((height, width), dtype=bool)
    mask[height // 4 : height * 3 // 4, width // 3 : width * 2 // 3] = True
    return soften(mask, grow=2, feather=4)


@pytest.mark.parametrize("option", ["original", 240])
def test_kept_region_is_the_original_photo_at_full_resolution(network, photo, option):
    working = photo.resize((96, 72), Image.LANCZOS)
    frame = frame_of(noise((96, 72)), None, original=photo, keep=keep_mask((96, 72)), image=working)
    Compositor()([frame])  # the working-size result already holds the working-size copy where kept
    frame.target_size = output_size(photo.size, working.size, option)
    target = frame.target_size
    assert target == {"original": (288, 216), 240: (240, 180)}[option]
    plain = Upscaler(network, CPU).resize(frame.result, target)  # what enlarging alone gives
    Upscaler(network, CPU)([frame])
    out = np.asarray(frame.result, dtype=int)
    own = np.asarray(photo if photo.size == target else photo.resize(target, Image.LANCZOS), dtype=int)
    alpha = cv2.resize(frame.keep.astype(np.float32), target, interpolation=cv2.INTER_LINEAR)
    kept, free = alpha >= 1.0 - 1e-6, alpha <= 0.0
    assert kept.sum() > 2000 and free.sum() > 2000
    assert np.array_equal(out[kept], own[kept])  # the photo's own pixels, at full resolution
    from_working = np.asarray(Upscaler(network, CPU).resize(working, target), dtype=int)
    assert np.abs(from_working[kept] - own[kept]).mean() > 2.0  # the working-size copy enlarged is not that
    assert np.array_equal(out[free], np.asarray(plain, dtype=int)[free])  # elsewhere: the enlarged result


def test_lanczos_without_a_network_or_when_not_enlarging(network, photo):
    result = photo.resize((96, 72), Image.LANCZOS)
    lanczos = result.resize((288, 216), Image.LANCZOS)
    alone = Upscaler(None)([frame_of(result, (288, 216))])[0].result
    assert np.array_equal(np.asarray(alone), np.asarray(lanczos))
    smaller = Upscaler(network, CPU)([frame_of(result, (64, 48))])[0].result
    assert np.array_equal(np.asarray(smaller), np.asarray(result.resize((64, 48), Image.LANCZOS)))
    frame = frame_of(noise((96, 72)), (288, 216), original=photo, keep=keep_mask((96, 72)), image=result)
    out = np.asarray(Upscaler(None)([frame])[0].result)  # keeping the photo's pixels needs no network
    kept = cv2.resize(frame.keep.astype(np.float32), (288, 216), interpolation=cv2.INTER_LINEAR) >= 1.0 - 1e-6
    assert np.array_equal(out[kept], np.asarray(photo)[kept])


def test_frames_at_their_size_or_failed_are_left_alone(network, photo):
    result = photo.resize((96, 72))
    frames = [frame_of(result, None), frame_of(result, (96, 72)), frame_of(result, (288, 216))]
    frames[2].fail("generate failed")
    Upscaler(network, CPU)(frames)
    assert all(f.result is result for f in frames)


def test_output_size():
    phone, working = (4032, 3024), (768, 576)
    assert output_size(phone, working, "working") is None
    assert output_size(phone, working, "original") == (4032, 3024)
    assert output_size(phone, working, 2048) == output_size(phone, working, "2048") == (2048, 1536)
    assert output_size((3024, 4032), (576, 768), 2000) == (1500, 2000)  # portrait: the long side is the height
    assert output_size((1000, 333), (768, 256), 500) == (500, 167)  # the photo's aspect, rounded
    assert output_size((4000, 3000), (768, 576), 768) is None  # that is the working size: nothing to do
    assert output_size((640, 480), (640, 480), "original") is None  # a photo no larger than the working size
    assert output_size((3000, 3000), (768, 768), 1000) == (1000, 1000)
    assert output_size((1000, 750), (768, 512), 2000) == (2000, 1500)  # the photo's aspect, not the working size's
    for bad in ("large", 0, -5):
        with pytest.raises(UsageError):
            output_size(phone, working, bad)


def test_output_size_needs_no_torch():
    code = (
        "import sys; from pipeline.stages.upscale import output_size; "
        "assert output_size((400, 300), (128, 96), 'original') == (400, 300); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_sd15_download_and_doctor_include_the_upscaler(monkeypatch):
    import huggingface_hub

    from pipeline.doctor import model_files
    from pipeline.models import download as download_module

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: calls.append(repo) or repo)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name: calls.append(f"{repo}/{name}") or name)
    monkeypatch.setattr(download_module, "download_yolo", lambda name: Path(name))
    download_module.download(sd15(), report=lambda message: None)
    assert "lllyasviel/Annotators/RealESRGAN_x4plus.pth" in calls
    rows = {role: (model_id, path) for role, model_id, path in model_files(sd15())}
    assert rows["upscaler"] == ("lllyasviel/Annotators/RealESRGAN_x4plus.pth", None)
