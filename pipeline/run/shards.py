"""Split the inputs across machines: a stable partition by a hash of each input's key.

Shards never overlap and together cover everything, whatever order the inputs were listed in.
Without `--shard`, the index and count come from the job environment: Kubernetes Indexed Jobs
(JOB_COMPLETION_INDEX, with the completion count set as JOB_COMPLETIONS in the pod spec) or SLURM
arrays (SLURM_ARRAY_TASK_ID, offset by SLURM_ARRAY_TASK_MIN, out of SLURM_ARRAY_TASK_COUNT).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from pipeline.errors import UsageError


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index


def shard_of(key: str, count: int) -> int:
    """Which of `count` shards an input key belongs to (stable across runs, machines and orderings)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse(text: str) -> Shard:
    """`i/N` with 0 <= i < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected i/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text}: need 0 <= i < N")
    return Shard(index, count)


def from_environment(env: dict | None = None) -> Shard | None:
    """The shard a Kubernetes Indexed Job or a SLURM array task is, or None outside such a job."""
    env = os.environ if env is None else env
    if "JOB_COMPLETION_INDEX" in env:
        if "JOB_COMPLETIONS" not in env:
            raise UsageError(
                "JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not: set it to the Job's "
                "completions in the pod spec, or pass --shard i/N"
            )
        return parse(f"{env['JOB_COMPLETION_INDEX']}/{env['JOB_COMPLETIONS']}")
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        return parse(f"{int(env['SLURM_ARRAY_TASK_ID']) - first}/{env['SLURM_ARRAY_TASK_COUNT']}")
    return None
