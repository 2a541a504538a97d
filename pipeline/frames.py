"""The typed records that flow through the stages: inputs, detected objects, frames."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Item:
    """One input: `key` is its path relative to the input root (POSIX); `identity` names it everywhere.

    A local file has a `path`; a remote object has a `uri` and a `fetch` that returns its bytes.
    """

    key: str
    path: Path | None
    root: Path | str
    uri: str | None = None
    fetch: Callable[[], bytes] | None = field(default=None, compare=False, repr=False)
    version: str | None = field(default=None, compare=False)  # size+mtime or ETag: a changed input is redone
    job: Any = None  # pipeline.inputs.manifest.Job: a manifest row's own settings; part of the identity
    group: str | None = field(default=None, compare=False)  # the room set it belongs to (pipeline.inputs.sets)
    anchor: str | None = field(default=None, compare=False)  # a set's other photos: the identity of its first one

    @property
    def display(self) -> str:
        return self.uri or str(self.path)

    @property
    def location(self) -> str:
        """Where the input is, as it was named: its root as given joined with its key, or its URI."""
        return self.uri or os.path.normpath(os.path.join(str(self.root), self.key)).replace(os.sep, "/")

    @cached_property
    def canonical(self) -> str:
        """Where the input is, in one form however it was named: its root resolved (absolute, links followed)
        joined with its key, or its URI. A relative or absolute path, another working directory: one place."""
        if self.uri:
            return self.uri
        return f"{Path(os.path.abspath(self.root)).resolve().as_posix().rstrip('/')}/{self.key}"

    @cached_property
    def identity(self) -> str:
        """The input in the journal, records and engines: its canonical place plus its relative key, so
        `x/room.jpg` and `y/room.jpg` are two inputs, a file named alone is the same input as when its folder is
        named, and `one/` and `/abs/one/` are one. A manifest row adds a hash of its content: two rows are two
        jobs, and an edited row is a new one. (A job written under another identity, the same folder moved or
        named from elsewhere, is matched by its output name and the input's bytes: `pipeline.run.owners`.)"""
        return f"{self.canonical}#{self.job.digest}" if self.job is not None else self.canonical

    @cached_property
    def name(self) -> str:
        """The input as every machine names it: its root's own folder name (or its R2 URI) plus its relative key,
        never where the folder is mounted or the working directory. Seeds, room set names and the shard split go
        by it, so pods that mount the input at different paths agree."""
        if self.uri:
            place = self.uri
        else:
            folder = Path(os.path.abspath(self.root)).resolve().name
            place = f"{folder}/{self.key}" if folder else self.key
        return f"{place}#{self.job.digest}" if self.job is not None else place

    @property
    def group_key(self) -> str:
        """What shards, device workers, Ray and seeds go by: its room set, which is never split, else its name."""
        return f"set:{self.group}" if self.group else self.name

    def read(self) -> bytes:
        """The input's bytes; OSError when it cannot be read."""
        return self.fetch() if self.fetch is not None else self.path.read_bytes()


@dataclass(frozen=True)
class Reference:
    """A style reference (IP-Adapter): named by its bytes' digest; `image` is the decoded picture, RGB."""

    source: str  # as the user named it (a path, an r2:// URI), or a set's anchor's key
    digest: str  # of the file's bytes: in the settings hash, the metadata, the prompt cache
    scale: float  # how strongly it steers (IP-Adapter scale)
    image: Image.Image | None = field(default=None, compare=False, repr=False)
    anchor: str | None = None  # a room set's member: the identity of the anchor whose result this is
    preview: str | None = None  # where the output keeps a picture of it, relative to the output's root

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "digest": self.digest,
            "scale": self.scale,
            **({"anchor": self.anchor} if self.anchor else {}),
            **({"preview": self.preview} if self.preview else {}),
        }


@dataclass
class DetectedObject:
    """An object found by the detector; `mask` is filled by the segmenter (bool, H x W)."""

    label: str
    confidence: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels
    mask: np.ndarray | None = None
    kept: bool = False  # preserved (--preserve): its original pixels stay

    def to_json(self) -> dict:
        data = {
            "label": self.label,
            "confidence": round(float(self.confidence), 4),
            "box": [round(float(v), 1) for v in self.box],
        }
        if self.mask is not None:
            data["mask_area"] = round(float(self.mask.mean()), 4)
        data["kept"] = self.kept
        return data


@dataclass
class Frame:
    """One image on its way through the pipeline, with its own timings and error."""

    item: Item
    seed: int
    image: Image.Image | None = None  # RGB, resized to the working size
    original_size: tuple[int, int] | None = None
    objects: list[DetectedObject] = field(default_factory=list)
    depth: Image.Image | None = None  # RGB depth control image
    edges: Image.Image | None = None  # RGB Canny control image
    lines: Image.Image | None = None  # RGB straight-line control image (a style with [controls.lines])
    scene: np.ndarray | None = None  # uint8 H x W ADE20K class per pixel (--preserve with parts of the room)
    result: Image.Image | None = None
    quality: float | None = None
    quality_parts: dict[str, float] = field(default_factory=dict)
    # edges_f1, depth_rmse, kept_delta_e (pipeline.stages.fidelity); a declutter's objects_left, movable_left,
    # seam_delta_e (pipeline.stages.declutter_check)
    fidelity: dict = field(default_factory=dict)
    attempts: list[dict] = field(default_factory=list)  # every generation tried: seed, score, parts
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    style: str | None = None  # set on the per-style copies made after the shared stages
    keep: np.ndarray | None = None  # float H x W in [0, 1]: 1 keeps the original pixel (--preserve, --mask-dir)
    mask_source: str | None = None  # the user's mask file, when one was used
    room: str | None = None  # the room type in this frame's prompt (given, or found by --room auto)
    room_probability: float | None = None  # the classifier's probability for it, when it was found
    prompt: str | None = None  # this frame's own prompts (set per style); None: the style's for the run
    negative_prompt: str | None = None
    variation: int = 1  # which of the job's --variations this frame renders (1..N)
    original: Image.Image | None = None  # the upright full-resolution photo, kept when results leave the working size
    target_size: tuple[int, int] | None = None  # the result's size on disk (--output-size); None: the working size
    capture: dict = field(default_factory=dict)  # the input's EXIF capture date and camera (never its position)
    warnings: list[str] = field(default_factory=list)  # one line each, for the user, with the file's name
    source: bytes | None = None  # the input's own bytes, kept only to sign results (their parent ingredient)
    reference: Reference | None = None  # the style reference this frame's result follows (set per style)
    input_digest: str | None = None  # of the input's bytes (journal `source`): the same photo at another path
    removal: np.ndarray | None = None  # bool H x W (--mode declutter): what is taken out, grown over contact shadows
    removed: list[str] = field(default_factory=list)  # the labels taken out (detections and scene classes), sorted
    start: Image.Image | None = None  # the refine pass's starting picture: the photo, LaMa's fill inside `removal`
    region: np.ndarray | None = None  # bool H x W (--mode stage): where furniture may go (pipeline.stages.staging)
    added: np.ndarray | None = None  # bool H x W: the furniture a staging's first pass added (its second pass's mask)
    emptied: np.ndarray | None = None  # float H x W: 1 where the empty room a staging started from is the photo's
    before: Frame | None = None  # a staging's frame as it was before its photo was emptied (the photo's own maps)
    painted: Frame | None = None  # a staging's first-pass picture as the run's models saw it (its second pass's look)

    @property
    def changes(self) -> np.ndarray | None:
        """Bool H x W: what the pass about to run, or the last one, may change: a staging's added furniture (its
        second pass), else its region, else a declutter's removal; None for a restyle."""
        for mask in (self.added, self.region, self.removal):
            if mask is not None:
                return mask
        return None

    @property
    def ok(self) -> bool:
        return self.error is None

    def release(self) -> None:
        """Let go of the frame's pictures once its job is written (memory stays flat over a long run); what it
        measured stays."""
        self.image = self.result = self.depth = self.edges = self.lines = self.original = self.source = None
        self.scene = self.removal = self.start = self.region = self.added = self.emptied = self.before = None
        self.painted = None

    def fail(self, reason: str) -> None:
        """Mark the frame failed with a one-line reason; later stages skip it."""
        self.error = " ".join(str(reason).split()) or "unknown error"
