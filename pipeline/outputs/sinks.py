"""Where results go: output names that never collide; atomic writes into a local folder or uploads to R2."""

from __future__ import annotations

import errno
import os
import socket
import stat
import tempfile
import time
from collections import Counter
from pathlib import Path, PurePosixPath

from pipeline.errors import ModomoError
from pipeline.frames import Item
from pipeline.r2 import Location, Remote, is_remote

# What a CDN in front of R2 may do with each kind of object. Nothing modomo writes is immutable: the views are
# rewritten by every run, and a result's key is reused by --overwrite or a rerun with new settings, so a CDN may
# keep a copy but must revalidate it (by ETag: a 304 when unchanged) before serving it.
VIEWS = ("index.csv", "index.jsonl", "report.html")  # and contact-sheet*.jpg
CACHE_VIEW = "no-cache"
CACHE_RESULT = "public, no-cache"
CACHE_INTERNAL = "private, no-store"  # the journal and run history under .modomo/
MULTIPART_THRESHOLD = 8 * 1024 * 1024
TEMP_DIR = ".modomo/tmp"
TEMP_SEP = "~"  # in temporary names: target~host~pid~random.tmp
STALE_SECONDS = 24 * 3600
# Errors that will hit every later write too: the run stops rather than failing image after image.
FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def temp_owner(name: str) -> tuple[str, int] | None:
    """(host, pid) of the process that wrote a temporary file, from its name; None if not one of ours."""
    parts = name.removesuffix(".tmp").rsplit(TEMP_SEP, 3)
    if not name.endswith(".tmp") or len(parts) != 4 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def sweep_temps(folder: Path, now: float | None = None) -> list[Path]:
    """Remove the temporary files in `folder` (not below it) that no live run owns; returns them."""
    import psutil

    host, now = socket.gethostname().replace(TEMP_SEP, "-"), now or time.time()
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        owner = temp_owner(entry.name)
        if owner is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        gone = owner[0] == host and not psutil.pid_exists(owner[1])
        if gone or age > STALE_SECONDS:
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed


def cache_control(relative: str) -> str:
    """The Cache-Control header for an object of the output, by its kind (see CACHE_*)."""
    name = relative.rsplit("/", 1)[-1]
    if relative.startswith(".modomo/"):
        return CACHE_INTERNAL
    if relative in VIEWS or (relative == name and name.startswith("contact-sheet") and name.endswith(".jpg")):
        return CACHE_VIEW
    return CACHE_RESULT


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back: there is no other way to read it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def suffix_in(location: str, exists) -> str | None:
    """The longest trailing part of `location` (a path or URI from an output that has since moved) that
    `exists(relative)` finds in this output; None when no part does."""
    parts = [p for p in PurePosixPath(location.split("://", 1)[-1]).parts if p not in ("/", "")]
    for start in range(len(parts)):
        candidate = "/".join(parts[start:])
        if exists(candidate):
            return candidate
    return None


class OutputError(ModomoError):
    """The output itself is broken (disk full, read-only, no permission): the run stops, exit 1."""


def root_name(item: Item) -> str:
    """The input root's own folder name, however the root was given (`photos` for ./photos/ or an R2 prefix
    `s3://bucket/photos/`); `input` when it has none."""
    root = item.canonical[: -len(item.key)].rstrip("/")
    return PurePosixPath(root).name or "input"


def output_stems(items: list[Item], style: str | None, styles_of=lambda item: 1) -> dict[Item, str]:
    """Each input's output stem (relative, POSIX, no suffix): `dir/name.style`; with no style, the photo's own
    stem `dir/name`, which names the control maps its styles share (`pipeline.outputs.names.photo_stems`).

    Inputs that would share a stem keep their extension (`room.jpg.boho`); inputs from different roots that
    still collide are told apart by their root folder's name (`photos/room.boho`), and keep their extension
    too only when that is still not enough. A manifest row
    with a `name` is written under it (`name.style` when the row has several styles: `styles_of`);
    the same photo on several rows without one gets each row's hash (`room.boho-3f2a9c1d`), so a
    name does not depend on the rows' order.
    """

    def stem(item: Item, level: int) -> str:
        job = item.job
        if job is not None and job.name:
            return job.name if styles_of(item) == 1 or style is None else f"{job.name}.{style}"
        key = PurePosixPath(item.key)
        base = (key if level % 2 else key.with_suffix("")).as_posix()  # odd levels keep the extension
        if level >= 2:
            base = f"{root_name(item)}/{base}"
        return base if style is None else f"{base}.{style}"

    level = dict.fromkeys(items, 0)
    for _ in range(4):  # only different files push each other to longer names
        places: dict[str, set] = {}
        for item in items:
            places.setdefault(stem(item, level[item]), set()).add(item.canonical)
        clashing = [i for i in items if len(places[stem(i, level[i])]) > 1]
        if not clashing:
            break
        for item in clashing:
            level[item] = min(level[item] + 1, 3)
    stems = {i: stem(i, level[i]) for i in items}
    counts = Counter(stems.values())
    for item in items:  # one photo on several manifest rows: each row's hash, whatever the order
        if item.job is not None and counts[stems[item]] > 1 and not item.job.name:
            stems[item] = f"{stems[item]}-{item.job.digest[:8]}"
    if len(set(stems.values())) != len(stems):  # the same path given twice
        seen: Counter[str] = Counter()
        for item in items:
            seen[stems[item]] += 1
            if seen[stems[item]] > 1:
                stems[item] = f"{stems[item]}-{seen[stems[item]]}"
    return stems


class LocalSink:
    """Writes files under a folder; each write lands whole or not at all.

    A file is written to a temporary name under `.modomo/tmp/` and renamed into place. The temporary
    name carries its writer (host and process id), so a run's start removes only what no live run
    owns: files of a process on this host that is gone, or older than a day, from any host. The
    start lists that one folder, never the whole output.
    """

    def __init__(self, root: str | Path):
        self.given = str(root)  # as the user gave it: locations handed back start with it
        self.root = Path(root).expanduser()
        self.owner = f"{socket.gethostname().replace(TEMP_SEP, '-')}{TEMP_SEP}{os.getpid()}"
        self.mode = 0o666 & ~current_umask()  # files get the modes any tool's outputs get

    @property
    def temp_dir(self) -> Path:
        return self.root / TEMP_DIR

    def prepare(self) -> None:
        """Create the output folder, check it is writable and sweep temporary files no live run owns."""
        try:
            self.temp_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=self.temp_dir, prefix=f"check{TEMP_SEP}{self.owner}{TEMP_SEP}", suffix=".tmp"
            ):
                pass
        except OSError as exc:
            raise OutputError(f"{self.root}: output folder is not writable: {exc.strerror or exc}") from None
        sweep_temps(self.temp_dir)

    def path(self, relative: str) -> Path:
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ModomoError(f"{relative}: output path escapes {self.root}")
        return target

    def public_url(self, relative: str) -> str | None:
        return None

    def locate(self, relative: str) -> str:
        """Where a file of the output is, for the caller: the output folder as given joined with `relative`."""
        return os.path.join(self.given, relative)

    def is_output(self) -> bool:
        """Whether this folder holds a modomo output (its journal)."""
        return (self.root / ".modomo" / "journal.jsonl").is_file()

    def relative(self, location: str) -> str:
        """A file's path relative to the output folder (POSIX), from a location in it or a relative path. A
        location an earlier version recorded in a folder that has since moved is found by its trailing parts."""
        if not os.path.isabs(location) and not location.startswith(self.given.rstrip("/") + "/"):
            return PurePosixPath(location).as_posix()  # already relative to the output
        full = Path(os.path.abspath(os.path.expanduser(location)))
        for root in (Path(os.path.abspath(self.root)), self.root.resolve()):
            if full.is_relative_to(root):
                return full.relative_to(root).as_posix()
        found = suffix_in(location, lambda candidate: (self.root / candidate).is_file())
        return found if found is not None else PurePosixPath(location).name

    def link(self, location: str) -> str:
        """How the report refers to a written file: relative to the folder it sits in."""
        return self.relative(location)

    def read(self, relative: str) -> bytes | None:
        """A file's bytes, or None when it does not exist."""
        try:
            return self.path(relative).read_bytes()
        except FileNotFoundError:
            return None

    def entry(self, relative: str) -> Path:
        """The path of a file of the output, its folder checked to be inside it and its own name not followed."""
        name = PurePosixPath(relative).name
        if name in ("", ".", ".."):
            raise ModomoError(f"{relative}: not a file of {self.root}")
        return self.path(str(PurePosixPath(relative).parent)) / name

    def size(self, relative: str) -> int | None:
        """A plain file's size in bytes, or None when there is none there (a link is not one modomo wrote)."""
        try:
            found = self.entry(relative).lstat()
        except OSError:
            return None
        return found.st_size if stat.S_ISREG(found.st_mode) else None

    def delete(self, relative: str) -> None:
        """Remove one file, never what a link points to (gone already is fine); OSError when it cannot be."""
        self.entry(relative).unlink(missing_ok=True)

    def write(self, relative: str, data: bytes, content_type: str | None = None, metadata: dict | None = None) -> str:
        """Write to a temporary file under .modomo/tmp, then rename over the target; returns the path.
        (`metadata` is for object stores; a file carries its own in its .json beside it.)"""
        target = self.path(relative)
        tmp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._write_temp(self.temp_dir, target.name, data)
            try:
                os.replace(tmp, target)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                # The target's folder is another filesystem (a mount inside the output): go via a
                # temporary file beside it, swept from that folder only.
                Path(tmp).unlink(missing_ok=True)
                sweep_temps(target.parent)
                tmp = self._write_temp(target.parent, target.name, data)
                os.replace(tmp, target)
        except BaseException as exc:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in FATAL_ERRNOS:
                raise OutputError(f"cannot write to {self.root}: {exc.strerror or exc}") from None
            raise
        return self.locate(relative)

    def _write_temp(self, folder: Path, name: str, data: bytes) -> str:
        """Write and fsync a temporary file named for its target and its writer; returns its path."""
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}{TEMP_SEP}{self.owner}{TEMP_SEP}", suffix=".tmp")
        try:
            os.fchmod(fd, self.mode)  # mkstemp's 0600 would follow the file through the rename
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def append(self, relative: str, line: str) -> None:
        """Append one line and make it durable; small O_APPEND writes do not interleave between processes."""
        target = self.path(relative)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line.encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write to {self.root}: {exc.strerror or exc}") from None


class R2Sink:
    """Uploads under an R2 prefix with Content-Type and Cache-Control; multipart above a threshold.

    An S3 PUT is atomic: an object is whole or absent, so no temporary key is needed.
    """

    def __init__(self, remote: Remote, location: Location):
        self.remote = remote
        self.location = location
        self._keys: set[str] | None = None  # the prefix's keys, listed once, to place moved locations

    def prepare(self) -> None:
        """Check credentials and bucket access before any model loads."""
        self.remote.check(self.location)

    def path(self, relative: str) -> str:
        return f"r2://{self.location.bucket}/{self.location.key(relative)}"

    def public_url(self, relative: str) -> str | None:
        return self.remote.settings.public_url(self.location.key(relative))

    def locate(self, relative: str) -> str:
        """Where an object of the output is, for the caller: its r2:// URI."""
        return f"r2://{self.location.bucket}/{self.location.key(relative)}"

    def is_output(self) -> bool:
        """Whether this prefix holds a modomo output (its journal); the bucket is checked first."""
        self.prepare()
        return bool(self.list(".modomo/journal/"))

    def relative(self, location: str) -> str:
        """An object's key relative to the output prefix, from its r2:// location or a relative key. A location
        an earlier version recorded under a prefix the output has since been copied from is found by its
        trailing parts among this prefix's keys."""
        if not location.startswith(("r2://", "s3://")):
            return location
        own = f"r2://{self.location.bucket}/{self.location.prefix}"
        if location.startswith(own):
            return location[len(own) :]
        if self._keys is None:
            self._keys = set(self.list(""))
        found = suffix_in(location, self._keys.__contains__)
        return found if found is not None else location.rsplit("/", 1)[-1]

    def link(self, location: str) -> str:
        """How the report refers to an uploaded object: its CDN URL, else its key relative to the report."""
        relative = self.relative(location)
        return self.public_url(relative) or relative

    def read(self, relative: str) -> bytes | None:
        """An object's bytes, or None when it does not exist."""
        from botocore.exceptions import ClientError

        try:
            return self.remote.client.get_object(Bucket=self.location.bucket, Key=self.location.key(relative))[
                "Body"
            ].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise OSError(f"cannot read {relative}: {exc.response.get('Error', {}).get('Code')}") from None

    def size(self, relative: str) -> int | None:
        """An object's size in bytes, or None when it does not exist."""
        from botocore.exceptions import ClientError

        try:
            return self.remote.client.head_object(Bucket=self.location.bucket, Key=self.location.key(relative))[
                "ContentLength"
            ]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise OSError(f"cannot read {relative}: {exc.response.get('Error', {}).get('Code')}") from None

    def delete(self, relative: str) -> None:
        """Delete one object (absent already is fine: S3 answers a delete of a missing key with success)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.remote.client.delete_object(Bucket=self.location.bucket, Key=self.location.key(relative))
        except ClientError as exc:
            raise OSError(f"cannot delete {relative}: {exc.response.get('Error', {}).get('Code')}") from None
        except BotoCoreError as exc:
            raise OSError(f"cannot delete {relative}: {exc}") from None
        if self._keys is not None:
            self._keys.discard(relative)

    def list(self, relative_prefix: str) -> list[str]:
        """Keys under a relative prefix, relative to the output prefix, sorted."""
        prefix = self.location.key(relative_prefix)
        pages = self.remote.client.get_paginator("list_objects_v2").paginate(Bucket=self.location.bucket, Prefix=prefix)
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        return sorted(key[len(self.location.prefix) :] for key in keys)

    def write(self, relative: str, data: bytes, content_type: str | None = None, metadata: dict | None = None) -> str:
        """Upload one object (with `metadata` as x-amz-meta-*); OSError with a one-line reason once retries
        are spent."""
        import io

        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.location.key(relative)
        extra = {"CacheControl": cache_control(relative), "ContentType": content_type or "application/octet-stream"}
        if metadata:
            extra["Metadata"] = metadata
        try:
            self.remote.client.upload_fileobj(
                io.BytesIO(data),
                self.location.bucket,
                key,
                ExtraArgs=extra,
                Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, use_threads=False),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            if code in ("AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise OutputError(f"cannot upload to {self.location.uri()}: {code}") from None
            raise OSError(f"upload of {key} failed: {code}") from None
        except BotoCoreError as exc:
            raise OSError(f"upload of {key} failed: {exc}") from None
        return self.locate(relative)


def open_sink(out: str, remote: Remote | None = None) -> LocalSink | R2Sink:
    """A sink for a local folder or an `r2://bucket/prefix`."""
    if is_remote(out):
        remote = remote or Remote()
        return R2Sink(remote, remote.location(out))
    return LocalSink(out)
