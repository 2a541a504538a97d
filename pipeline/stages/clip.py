"""CLIP zero-shot scoring, shared by the room stage and the style-adherence part of validation."""

from __future__ import annotations


def text_features(model, processor, texts: list[str], device):
    """Unit-length CLIP embeddings of sentences (computed once per run)."""
    import torch

    with torch.inference_mode():
        tokens = processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        text = model.get_text_features(**{k: v.to(device) for k, v in tokens.items()})
        text = getattr(text, "pooler_output", text)
        return torch.nn.functional.normalize(text.float(), dim=-1)


def probabilities(model, processor, images, text, device, dtype):
    """Per image, the softmax over the sentences of CLIP's scaled image-text similarity (a CPU tensor)."""
    import torch

    with torch.inference_mode():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"].to(device, dtype)
        features = model.get_image_features(pixel_values=pixels)
        features = getattr(features, "pooler_output", features)
        image = torch.nn.functional.normalize(features.float(), dim=-1)
        return (model.logit_scale.exp().float() * image @ text.T).softmax(dim=-1).cpu()
