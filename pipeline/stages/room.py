"""Room stage (`--room auto`): each photo's room type by zero-shot classification with the preset's CLIP.

The photo's CLIP image embedding is compared with the embedding of one sentence per room type
(`pipeline/data/rooms.toml`); the most probable type goes into the prompt and, with its
probability, into the metadata. Batched, once per photo, shared by every style.
"""

from __future__ import annotations

from pipeline.frames import Frame
from styles import AUTO_ROOM, ROOM_TEMPLATE, ROOMS


class RoomClassifier:
    """Zero-shot room type from a CLIP model and processor; the label sentences are embedded once."""

    def __init__(self, model, processor, device, dtype, labels: tuple[str, ...] = ROOMS,
                 template: str = ROOM_TEMPLATE):
        import torch

        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self.labels = list(labels)
        with torch.inference_mode():
            tokens = processor(text=[template.format(label=label) for label in labels], return_tensors="pt",
                               padding=True, truncation=True)
            text = model.get_text_features(**{k: v.to(device) for k, v in tokens.items()})
            text = getattr(text, "pooler_output", text)
            self.text = torch.nn.functional.normalize(text.float(), dim=-1)

    def probabilities(self, images) -> list[dict[str, float]]:
        """Per image, each room type's probability."""
        import torch

        with torch.inference_mode():
            pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
            features = self.model.get_image_features(pixel_values=pixels)
            features = getattr(features, "pooler_output", features)
            image = torch.nn.functional.normalize(features.float(), dim=-1)
            probs = (self.model.logit_scale.exp().float() * image @ self.text.T).softmax(dim=-1).cpu()
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in probs]

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        wanted = [f for f in frames if f.ok and f.room == AUTO_ROOM]
        if wanted:
            for frame, probs in zip(wanted, self.probabilities([f.image for f in wanted]), strict=True):
                frame.room = max(probs, key=probs.get)
                frame.room_probability = round(probs[frame.room], 4)
        return frames
