"""Per-image seeds: derived from the base seed and the input's key, so order, batch and shard don't matter."""

import hashlib


def derive_seed(base: int, key: str) -> int:
    """A 32-bit seed from the base seed and the input's relative key."""
    digest = hashlib.sha256(f"{base}\0{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def item_seed(base: int, item) -> int:
    """An input's seed: its manifest row's, else derived from what it goes by (`Item.group_key`): a room set's
    photos share the set's, every other input has its own, the same on every machine and in every shard."""
    job = item.job
    if job is not None and job.seed is not None:
        return job.seed
    return derive_seed(base, item.group_key)


def retry_seed(base: int, item, variation: int, attempt: int) -> int:
    """Attempt `attempt` of a job's variation: derived from what the input goes by, so attempt k of every photo of a
    room set draws the set's k-th seed (a set's photos share their seed through retries too)."""
    tag = f"#v{variation}" if variation > 1 else ""
    return derive_seed(base, f"{item.group_key}{tag}#retry{attempt}")
