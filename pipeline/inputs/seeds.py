"""Per-image seeds: derived from the base seed and the input's key, so order, batch and shard don't matter."""

import hashlib


def derive_seed(base: int, key: str) -> int:
    """A 32-bit seed from the base seed and the input's relative key."""
    digest = hashlib.sha256(f"{base}\0{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big")
