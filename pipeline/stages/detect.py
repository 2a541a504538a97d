"""Detection stage: one YOLO call per batch finds the furniture in every frame."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.frames import DetectedObject, Frame
from pipeline.models.vision import keep_torch_threads

# COCO classes that are furniture, fittings or things commonly found in rooms.
FURNITURE_CLASSES: tuple[str, ...] = (
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "bench",
    "bowl",
    "cup",
    "wine glass",
    "bottle",
    "teddy bear",
    "keyboard",
    "mouse",
    "remote",
    "cell phone",
    "umbrella",
    "suitcase",
    "backpack",
    "handbag",
)


def furniture_class_ids(names: dict[int, str] | list[str], also: tuple[str, ...] = ()) -> list[int]:
    """Ids of FURNITURE_CLASSES (and the classes `also` names) in a model's `names` (dict id -> name, or list)."""
    items = names.items() if isinstance(names, dict) else enumerate(names)
    wanted = set(FURNITURE_CLASSES) | set(also)
    return sorted(int(i) for i, name in items if name in wanted)


def _bgr(image: Any) -> np.ndarray:
    """A PIL image as the contiguous BGR uint8 array ultralytics expects for numpy input."""
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


class Detector:
    """Finds furniture with an already-loaded ultralytics YOLO model, one predict call per batch."""

    def __init__(
        self,
        model: Any,
        device: str,
        *,
        confidence: float = 0.25,
        max_objects: int = 20,
        image_size: int = 640,
        also: tuple[str, ...] = (),
    ):
        """`also`: classes found beside the furniture (a declutter takes people out too)."""
        self.model = model
        self.device = device
        self.confidence = confidence
        self.max_objects = max_objects
        self.image_size = image_size
        names = model.names
        self.names: dict[int, str] = dict(enumerate(names)) if isinstance(names, list) else dict(names)
        # A model without any COCO furniture label (a custom one) keeps all its classes.
        self.class_ids: list[int] | None = furniture_class_ids(self.names, also) or None

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        """Fill `objects` of every ok frame with an image, sorted by confidence (highest first)."""
        todo = [f for f in frames if f.ok and f.image is not None]
        if not todo:
            return frames
        with keep_torch_threads():
            results = self.model.predict(
                [_bgr(f.image) for f in todo],
                conf=self.confidence,
                classes=self.class_ids,
                max_det=self.max_objects,
                imgsz=self.image_size,
                device=self.device,
                verbose=False,
            )
        if len(results) != len(todo):
            raise RuntimeError(f"YOLO returned {len(results)} results for {len(todo)} images")
        for frame, result in zip(todo, results, strict=True):
            frame.objects = self._objects(result, frame.image.size)
        return frames

    def _objects(self, result: Any, size: tuple[int, int]) -> list[DetectedObject]:
        """One ultralytics Results -> DetectedObjects clipped to the image, by confidence desc."""
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        width, height = size
        xyxy = boxes.xyxy.detach().float().cpu().numpy().reshape(-1, 4)
        xyxy = np.clip(xyxy, 0, [width, height, width, height])
        conf = boxes.conf.detach().float().cpu().numpy().reshape(-1)
        cls = boxes.cls.detach().cpu().numpy().reshape(-1).astype(int)
        objects = [
            DetectedObject(
                label=str(self.names.get(int(c), str(int(c)))),
                confidence=float(p),
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            )
            for b, p, c in zip(xyxy, conf, cls, strict=True)
        ]
        objects.sort(key=lambda o: o.confidence, reverse=True)
        return objects[: self.max_objects]
