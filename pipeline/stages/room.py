"""Room stage (`--room auto`): each photo's room type by zero-shot classification with the preset's CLIP.

The photo's CLIP image embedding is compared with the embedding of one sentence per room type
(`pipeline/data/rooms.toml`); the most probable type goes into the prompt and, with its
probability, into the metadata. Batched, once per photo, shared by every style.
"""

from __future__ import annotations

from pipeline.frames import Frame
from pipeline.stages.clip import probabilities, text_features
from styles import AUTO_ROOM, ROOM_TEMPLATE, ROOMS


class RoomClassifier:
    """Zero-shot room type from a CLIP model and processor; the label sentences are embedded once."""

    def __init__(self, model, processor, device, dtype, labels: tuple[str, ...] = ROOMS, template: str = ROOM_TEMPLATE):
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self.labels = list(labels)
        self.text = text_features(model, processor, [template.format(label=label) for label in labels], device)

    def probabilities(self, images) -> list[dict[str, float]]:
        """Per image, each room type's probability."""
        probs = probabilities(self.model, self.processor, images, self.text, self.device, self.dtype)
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in probs]

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        wanted = [f for f in frames if f.ok and f.room == AUTO_ROOM]
        if wanted:
            for frame, probs in zip(wanted, self.probabilities([f.image for f in wanted]), strict=True):
                frame.room = max(probs, key=probs.get)
                frame.room_probability = round(probs[frame.room], 4)
        return frames
