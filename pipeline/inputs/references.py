"""Style references (--style-ref, a style file's `style_ref`, a manifest row's `style_ref`): each read, decoded and
named by its bytes' digest once per run, before any model loads; a room set's members follow their anchor's result,
read back from the output (a member's manifest row may repeat its set's own reference, and no other)."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from pipeline.errors import ImageError, ModomoError, UsageError
from pipeline.frames import Item, Reference
from pipeline.inputs import imaging
from pipeline.r2 import Remote, is_remote

PREVIEW_DIR = "references"  # in the output: a small copy of each reference, for the report and the contact sheet
DEFAULT_SCALE = 0.6  # how strongly a reference steers when neither --style-ref-scale nor the style says


def digest_of(data: bytes) -> str:
    """A reference's name everywhere (settings hash, metadata, prompt cache): the first 16 hex of its SHA-256."""
    return hashlib.sha256(data).hexdigest()[:16]


def preview_path(digest: str) -> str:
    """Where the output keeps a reference's small copy, relative to its root."""
    return f"{PREVIEW_DIR}/{digest}.jpg"


def fetch(where: str, remote: Remote) -> bytes:
    """A reference's bytes from a local file or an R2/S3 object; OSError with the reason when it cannot be read."""
    if is_remote(where):
        location = remote.location(where)
        key = location.prefix.rstrip("/")
        if not key:
            raise OSError("names a bucket, not an object")
        return remote.get(location.bucket, key)
    path = Path(where).expanduser()
    if path.is_dir():
        raise OSError("is a folder, not an image")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise OSError("no such file") from None
    except OSError as exc:
        raise OSError(exc.strerror or str(exc)) from None


def decoded(data: bytes, where: str, source: str, scale: float, anchor: str | None = None) -> Reference:
    """A Reference of these bytes; ImageError when they are not a picture."""
    image = imaging.decode(data, where, min_side=16)
    digest = digest_of(data)
    return Reference(source, digest, scale, image, anchor, None if anchor else preview_path(digest))


class ReferenceReader:
    """Reads each distinct reference once (a hero shot named on a thousand manifest rows is fetched once)."""

    def __init__(self, remote: Remote):
        self.remote = remote
        self.cache: dict[str, Reference | str] = {}  # where -> the reference, or why it cannot be read
        self.lock = threading.Lock()

    def read(self, where: str, scale: float) -> Reference:
        """The reference at `where`, at `scale`; ValueError with a one-line reason when it cannot be had."""
        with self.lock:
            if where not in self.cache:
                self.cache[where] = self.load(where)
        found = self.cache[where]
        if isinstance(found, str):
            raise ValueError(found)
        return replace(found, scale=scale)

    def preload(self, wheres, workers: int = 8) -> None:
        """Read these references in parallel, each once (a manifest's rows may name many)."""
        wanted = [where for where in dict.fromkeys(wheres) if where not in self.cache]
        with ThreadPoolExecutor(workers) as pool:
            loaded = list(pool.map(self.load, wanted))
        with self.lock:
            for where, found in zip(wanted, loaded, strict=True):
                self.cache.setdefault(where, found)

    def load(self, where: str) -> Reference | str:
        try:
            return decoded(fetch(where, self.remote), where, where, DEFAULT_SCALE)
        except (OSError, ModomoError) as exc:
            return f"cannot read: {exc}"
        except ImageError as exc:
            return f"not a usable image: {exc}"

    def option(self, where: str, scale: float, what: str) -> Reference:
        """A reference the command or a style file names: a usage error naming it, before any model loads."""
        try:
            return self.read(where, scale)
        except ValueError as exc:
            raise UsageError(f"{what} {where}: {exc}") from None


def anchor_reference(sink, outputs: dict[str, str], anchor_id: str, anchor_key: str, scale: float) -> Reference:
    """A room set member's reference: its anchor's chosen result as written to the output (the file itself, so the
    digest names exactly what the member followed); ValueError with the reason when it cannot be read."""
    location = outputs.get("result")
    if not location:
        raise ValueError(f"its anchor {anchor_key} has no result")
    try:
        data = sink.read(sink.relative(location))
    except (OSError, ModomoError) as exc:
        raise ValueError(f"cannot read its anchor's result {location}: {exc}") from None
    if not data:
        raise ValueError(f"its anchor's result {location} is missing from the output")
    try:
        reference = decoded(data, location, anchor_key, scale, anchor=anchor_id)
    except ImageError as exc:
        raise ValueError(f"its anchor's result {location}: {exc}") from None
    thumbnail = outputs.get("thumbnail")
    return replace(reference, preview=sink.relative(thumbnail) if thumbnail else sink.relative(location))


def row_reference(item: Item, reader) -> Item:
    """A row that follows no anchor, with its `style_ref` read (its version names the reference's content)."""
    job = item.job
    if not job.style_ref or job.error:
        return item
    try:
        reference = reader.read(job.style_ref, 0.0)
    except ValueError as exc:
        return replace(item, job=replace(job, error=job.fail(f"style_ref {job.style_ref}: {exc}")))
    return replace(item, job=replace(job, reference=reference), version=f"{item.version}+ref:{reference.digest}")


def set_row_reference(item: Item, anchor: Item | None, reader) -> Item:
    """A room set's later row with a `style_ref`: the set's own (its anchor row's, by content) makes it the row
    without one (same identity, version and settings, so adding the repeat redoes nothing); any other fails it."""
    job = item.job
    if not job.style_ref or job.error:
        return item
    try:
        digest = reader.read(job.style_ref, 0.0).digest
    except ValueError as exc:
        return replace(item, job=replace(job, error=job.fail(f"style_ref {job.style_ref}: {exc}")))
    theirs = anchor.job if anchor is not None else None
    own = theirs.reference if theirs is not None else None
    if own is not None and own.digest == digest:
        return replace(item, job=replace(job, style_ref=None, digest=job.digest_without_ref or job.digest))
    first = f"its first photo (line {theirs.line})" if theirs is not None else "its first photo"
    whose = "has another style_ref" if own is not None else "has no style_ref"
    if own is None and theirs is not None and theirs.style_ref:
        whose = "has a style_ref that cannot be read"
    return replace(
        item,
        job=replace(
            job,
            error=job.fail(
                f"style_ref {job.style_ref}: room set {item.group!r} follows {first}, which {whose}; "
                "leave it empty or repeat the set's own"
            ),
        ),
    )
