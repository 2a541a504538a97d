"""ADE20K labels, random SegFormers and the scene-parsing stage, on real photos (CPU, offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.frames import Frame, Item
from pipeline.models import segformer
from pipeline.models.segformer import ADE20K_LABELS
from pipeline.stages.architecture import SceneSegmenter
from pipeline.stages.parts import ARCHITECTURE_SET, PART_ALIASES, PARTS, class_ids, part_names, part_region
from tests.conftest import ROOMS

CPU = torch.device("cpu")
KNOWN = {
    0: "wall",
    3: "floor",
    5: "ceiling",
    7: "bed",
    8: "windowpane",
    14: "door",
    42: "column",
    49: "fireplace",
    53: "stairs",
    58: "screen door",
    59: "stairway",
    95: "bannister",
    121: "step",
    146: "radiator",
    149: "flag",
}
B0_PARAMETERS = 3_752_694  # nvidia/segformer-b0-finetuned-ade-512-512


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """Two real room photos, at two different sizes (long side 256 and 224)."""
    paths = sorted(p for p in ROOMS.iterdir() if p.suffix.lower() in (".jpg", ".png"))[:2]
    assert len(paths) == 2, f"need two photos in {ROOMS}"
    images = []
    for path, side in zip(paths, (256, 224), strict=True):
        with Image.open(path) as image:
            image.thumbnail((side, side))
            images.append(image.convert("RGB"))
    assert images[0].size != images[1].size
    return images


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return segformer.build_random(tmp_path_factory.mktemp("segformer"), "tiny", seed=0)


@pytest.fixture(scope="module")
def segmenter(folder) -> SceneSegmenter:
    """The tiny random model, read back from disk through `load` (the from_pretrained path real weights take)."""
    model, processor = segformer.load(str(folder), CPU, torch.float32, local_files_only=True)
    return SceneSegmenter(model, processor, CPU, torch.float32)


def test_ade20k_labels():
    assert len(ADE20K_LABELS) == 150
    assert len(set(ADE20K_LABELS)) == 150
    assert all(name == name.strip() and name for name in ADE20K_LABELS)
    for index, name in KNOWN.items():
        assert ADE20K_LABELS[index] == name, index


def test_saved_model_carries_the_ade20k_head(folder, segmenter):
    config = segmenter.model.config
    assert config.num_labels == 150
    assert [config.id2label[i] for i in range(150)] == list(ADE20K_LABELS)
    assert config.label2id["fireplace"] == 49
    assert (folder / "preprocessor_config.json").is_file()
    assert segmenter.processor.size == {"height": 64, "width": 64}


def test_label_maps_have_each_images_size_and_several_classes(segmenter, photos):
    maps = segmenter.segment(photos)  # one batch
    assert len(maps) == 2
    for image, scene in zip(photos, maps, strict=True):
        width, height = image.size
        assert scene.shape == (height, width)
        assert scene.dtype == np.uint8
        assert int(scene.max()) < 150
        assert len(np.unique(scene)) >= 3, "a random head should not collapse to one class"


def test_random_head_is_confident_as_a_trained_one(segmenter, photos):
    """The random decoder is redrawn at a trained scale: softmax is far from uniform (1/150), so a caller may
    threshold on probability; at transformers' own init every pixel's top probability is about 1/150."""
    pixels = segmenter.processor(images=photos, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        top = segmenter.model(pixel_values=pixels).logits.softmax(dim=1).amax(dim=1)
    assert float(top.median()) > 0.1


def test_batch_and_one_by_one_agree(segmenter, photos):
    batch = segmenter.segment(photos)
    for image, scene in zip(photos, batch, strict=True):
        np.testing.assert_array_equal(segmenter.segment([image])[0], scene)


def test_loaded_model_is_the_built_one(segmenter, photos):
    model, processor = segformer.build_in_memory("tiny", CPU, torch.float32, seed=0)
    fresh = SceneSegmenter(model, processor, CPU, torch.float32).segment(photos[:1])[0]
    np.testing.assert_array_equal(fresh, segmenter.segment(photos[:1])[0])


def test_stage_sets_scene_on_ok_frames_only(segmenter, photos):
    frames = [Frame(item=Item(key=f"{i}.jpg", path=None, root="."), seed=i, image=photos[i % 2]) for i in range(3)]
    frames[1].fail("unreadable")
    frames.append(Frame(item=Item(key="empty.jpg", path=None, root="."), seed=3))
    for frame in frames:
        frame.scene = None  # the field the integration adds to Frame
    assert segmenter(frames) is frames
    np.testing.assert_array_equal(frames[0].scene, segmenter.segment([photos[0]])[0])
    assert frames[2].scene.shape == photos[0].size[::-1]
    assert frames[1].scene is None and frames[3].scene is None


def test_random_build_is_seeded_and_leaves_the_callers_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    first, _ = segformer.build_in_memory("tiny", seed=5)
    assert torch.equal(torch.rand(4), expected)
    second, _ = segformer.build_in_memory("tiny", seed=5)
    other, _ = segformer.build_in_memory("tiny", seed=6)
    weight = "decode_head.classifier.weight"
    assert torch.equal(first.state_dict()[weight], second.state_dict()[weight])
    assert not torch.equal(first.state_dict()[weight], other.state_dict()[weight])


@pytest.mark.parametrize("where", ["missing-folder", "nvidia/segformer-b0-finetuned-ade-512-512"])
def test_load_lets_oserror_through(tmp_path, where):
    """A missing folder, or a hub id with no network (the suite runs offline): OSError, for the caller to word."""
    path = str(tmp_path / where) if where == "missing-folder" else where
    with pytest.raises(OSError):
        segformer.load(path, CPU, torch.float32)


def test_b0_has_the_real_checkpoints_parameter_count():
    model, processor = segformer.build_in_memory("b0")
    assert sum(p.numel() for p in model.parameters()) == B0_PARAMETERS
    assert model.config.hidden_sizes == [32, 64, 160, 256]
    assert processor.size == {"height": 512, "width": 512}


def test_part_names():
    assert part_names("architecture") == ("window", "door", "fireplace", "stairs")
    assert part_names(" Architecture ") == ARCHITECTURE_SET
    assert part_names("Windows ") == ("window",)
    assert part_names("built-in   Cabinets") == ("built-in cabinet",)
    assert part_names("staircase") == ("stairs",)
    assert part_names("lamp") is None
    assert part_names("curtain") is None
    assert set(PART_ALIASES.values()) <= set(PARTS)
    for name, classes in PARTS.items():
        for label in classes:
            assert label in ADE20K_LABELS, f"{name}: {label!r} is not an ADE20K class"


def test_region_covers_exactly_the_named_classes():
    scene = np.zeros((6, 8), dtype=np.uint8)  # wall
    scene[1:3, 1:4] = 8  # windowpane
    scene[3:6, 6:8] = 14  # door
    scene[0, 7] = 58  # screen door
    scene[5, 0], scene[5, 1], scene[5, 2] = 53, 59, 121  # stairs, stairway, step
    windows = part_region(scene, ["window"])
    assert windows.dtype == bool and windows.shape == scene.shape
    np.testing.assert_array_equal(windows, scene == 8)
    np.testing.assert_array_equal(part_region(scene, ["door"]), np.isin(scene, [14, 58]))
    np.testing.assert_array_equal(part_region(scene, ["stairs"]), np.isin(scene, [53, 59, 121]))
    np.testing.assert_array_equal(part_region(scene, ARCHITECTURE_SET), np.isin(scene, [8, 14, 49, 53, 58, 59, 121]))
    assert not part_region(scene, ["fireplace"]).any()
    assert class_ids(["stairs", "window"]) == [8, 53, 59, 121]
