"""YOLO/SAM2 loaders and the detect/segment stages, on tiny random models (CPU, offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.errors import ModomoError
from pipeline.frames import DetectedObject, Frame, Item
from pipeline.models import vision
from pipeline.stages.detect import FURNITURE_CLASSES, Detector
from pipeline.stages.segment import Segmenter
from tests.conftest import ROOMS


@pytest.fixture(scope="module")
def tiny(tiny_bundle) -> dict[str, Path]:
    """The tiny random YOLO and SAM2 files of the session's bundle."""
    return {
        "yolo": tiny_bundle / "yolo.pt",
        "sam2_config": tiny_bundle / "sam2" / "sam2.yaml",
        "sam2_checkpoint": tiny_bundle / "sam2" / "sam2.pt",
    }


@pytest.fixture(scope="module")
def yolo(tiny):
    return vision.load_yolo(tiny["yolo"], "cpu")


@pytest.fixture(scope="module")
def predictor(tiny):
    return vision.load_sam2(tiny["sam2_config"], tiny["sam2_checkpoint"], "cpu")


def _frame(image: Image.Image, name: str = "room.jpg", objects: list[DetectedObject] | None = None) -> Frame:
    frame = Frame(item=Item(name, Path(name), Path(".")), seed=0, image=image, original_size=image.size)
    frame.objects = objects or []
    return frame


def _room() -> Image.Image:
    with Image.open(ROOMS / "living-room-02-small.jpg") as im:
        return im.convert("RGB")


def _synthetic(size: tuple[int, int] = (320, 240)) -> Image.Image:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    pixels[60:180, 80:240] = (180, 40, 40)  # a flat "sofa"
    return Image.fromarray(pixels, "RGB")


def test_load_yolo_tiny_has_coco_names(yolo):
    names = yolo.names
    assert len(names) == 80
    assert {"couch", "bed", "chair", "dining table"} <= set(names.values())
    assert set(FURNITURE_CLASSES) <= set(names.values())


def test_load_yolo_missing_name_raises_without_network(network_guard, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModomoError) as info:
        vision.load_yolo("yolo11m.pt", "cpu")
    message = str(info.value)
    assert "yolo11m.pt" in message and "\n" not in message
    with pytest.raises(ModomoError, match="nowhere.pt"):
        vision.load_yolo(tmp_path / "sub" / "nowhere.pt", "cpu")
    assert not network_guard


def test_detector_one_predict_call_for_the_batch(yolo, monkeypatch):
    calls = []
    real_predict = yolo.predict

    def spy(source, **kwargs):
        calls.append((source, kwargs))
        return real_predict(source, **kwargs)

    monkeypatch.setattr(yolo, "predict", spy)
    room, synthetic = _room(), _synthetic()
    failed = _frame(synthetic, "failed.jpg")
    failed.fail("unreadable")
    frames = [_frame(room, "a.jpg"), _frame(synthetic, "b.jpg"), failed]
    detector = Detector(yolo, "cpu", confidence=0.0001, max_objects=7, image_size=160)

    assert detector(frames) is frames
    assert len(calls) == 1
    source, kwargs = calls[0]
    assert len(source) == 2 and source[0].shape == (room.height, room.width, 3)
    assert np.array_equal(source[0][..., ::-1], np.asarray(room))  # BGR for numpy input
    assert kwargs["max_det"] == 7 and kwargs["imgsz"] == 160 and kwargs["verbose"] is False
    assert {yolo.names[i] for i in kwargs["classes"]} == set(FURNITURE_CLASSES)
    assert failed.objects == []
    assert frames[0].objects, "the tiny detector is biased towards furniture and must find some"
    for frame in frames[:2]:
        width, height = frame.image.size
        assert len(frame.objects) <= 7
        confidences = [o.confidence for o in frame.objects]
        assert confidences == sorted(confidences, reverse=True)
        for obj in frame.objects:
            assert obj.label in FURNITURE_CLASSES and 0.0 <= obj.confidence <= 1.0 and obj.mask is None
            x0, y0, x1, y1 = obj.box
            assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height


def test_detector_converts_results(yolo):
    """Feed the stage real ultralytics Results with known boxes: labels, sorting and clipping."""
    from ultralytics.engine.results import Results

    room = _room()
    w, h = room.size
    names = yolo.names
    ids = {n: i for i, n in names.items()}
    couch, bed, chair = ids["couch"], ids["bed"], ids["chair"]
    rows = [[5, 6, w + 40, h - 1, 0.4, couch], [0, 0, 10, 10, 0.9, chair], [-3, 2, 50, 60, 0.6, bed]]

    class Stub:
        def __init__(self):
            self.names, self.calls = names, 0

        def predict(self, source, **kwargs):
            self.calls += 1
            boxes = torch.tensor(rows, dtype=torch.float32)
            return [Results(im, "x.jpg", names, boxes=boxes) for im in source]

    stub = Stub()
    frame = _frame(room)
    Detector(stub, "cpu")([frame])
    assert stub.calls == 1
    assert [o.label for o in frame.objects] == ["chair", "bed", "couch"]
    assert [round(o.confidence, 3) for o in frame.objects] == [0.9, 0.6, 0.4]
    assert frame.objects[1].box[0] == 0.0 and frame.objects[2].box[2] == w  # clipped to the image
    assert frame.objects[0].to_json()["box"] == [0.0, 0.0, 10.0, 10.0]


def test_detector_batch_error_propagates(yolo, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(yolo, "predict", boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        Detector(yolo, "cpu")([_frame(_synthetic())])


def _spy_predictor(predictor, monkeypatch) -> dict[str, list]:
    calls: dict[str, list] = {"set_image": [], "predict": []}
    real_set, real_predict = predictor.set_image, predictor.predict

    def set_image(image):
        calls["set_image"].append(image)
        return real_set(image)

    def predict(**kwargs):
        calls["predict"].append(kwargs)
        return real_predict(**kwargs)

    monkeypatch.setattr(predictor, "set_image", set_image)
    monkeypatch.setattr(predictor, "predict", predict)
    return calls


def test_segmenter_masks_all_boxes_in_one_call(predictor, monkeypatch):
    calls = _spy_predictor(predictor, monkeypatch)
    room, synthetic = _room(), _synthetic()
    w, h = room.size
    boxes = [(10.0, 20.0, w / 2, h / 2), (w / 3, h / 3, w - 1.0, h - 1.0), (0.0, 0.0, 40.0, 30.0)]
    many = _frame(room, "many.jpg", [DetectedObject("couch", 0.9 - i / 10, b) for i, b in enumerate(boxes)])
    one = _frame(synthetic, "one.jpg", [DetectedObject("chair", 0.5, (80.0, 60.0, 240.0, 180.0))])
    empty = _frame(synthetic, "empty.jpg")

    assert Segmenter(predictor)([many, empty, one]) == [many, empty, one]
    assert len(calls["set_image"]) == 2  # no embedding for the frame without objects
    assert len(calls["predict"]) == 2
    assert calls["predict"][0]["box"].shape == (3, 4) and calls["predict"][0]["multimask_output"] is False
    assert calls["predict"][1]["box"].shape == (1, 4)
    for frame in (many, one):
        for obj in frame.objects:
            assert obj.mask is not None and obj.mask.dtype == np.bool_
            assert obj.mask.shape == (frame.image.height, frame.image.width)
    assert empty.objects == []


def test_tiny_sam2_is_small_and_deterministic(tiny, predictor, tmp_path):
    assert predictor.model.image_size == vision.TINY_SAM2_IMAGE_SIZE
    assert sum(p.numel() for p in predictor.model.parameters()) < 2_000_000
    _, again = vision.build_tiny_sam2(tmp_path)
    first = torch.load(tiny["sam2_checkpoint"], weights_only=True)["model"]
    second = torch.load(again, weights_only=True)["model"]
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_load_sam2_missing_files_raise(tiny, tmp_path):
    with pytest.raises(ModomoError, match="missing.pt"):
        vision.load_sam2(tiny["sam2_config"], tmp_path / "missing.pt", "cpu")
    with pytest.raises(ModomoError, match="missing.yaml"):
        vision.load_sam2(tmp_path / "missing.yaml", tiny["sam2_checkpoint"], "cpu")


def test_load_sam2_rejects_a_checkpoint_for_another_config(tiny, tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"model": {"nope": torch.zeros(1)}}, other)
    with pytest.raises(ModomoError, match="does not fit"):
        vision.load_sam2(tiny["sam2_config"], other, "cpu")


def test_real_sam2_1_hiera_tiny_config_instantiates():
    config = vision.sam2_package_config()
    assert config.is_file() and config.name == "sam2.1_hiera_t.yaml"
    predictor = vision.load_sam2(config, None, "cpu")  # real architecture, random weights
    params = sum(p.numel() for p in predictor.model.parameters())
    assert 38_000_000 <= params <= 39_500_000
    assert predictor.model.image_size == 1024
    assert predictor._bb_feat_sizes == [(256, 256), (128, 128), (64, 64)]


def test_detector_keeps_torch_cpu_threads(yolo):
    """ultralytics sets torch's thread count to cores - 1 when it picks a device; the stage puts it back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        Detector(yolo, "cpu", image_size=160)([_frame(_room(), "a.jpg")])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
