"""Writing one finished input and style: result, thumbnail, control maps, metadata, journal line, record."""

from __future__ import annotations

import json
import posixpath
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from pipeline import __version__
from pipeline.config import RunConfig
from pipeline.errors import ModomoError
from pipeline.frames import Frame
from pipeline.inputs import imaging
from pipeline.inputs.references import digest_of
from pipeline.outputs.disclosure import disclose, with_links
from pipeline.outputs.modes import about_mode, done_of, made_map, map_kind, mode_json
from pipeline.outputs.names import PHOTO_MAPS, original_name, photo_stems, variation_stem
from pipeline.outputs.overlay import draw_objects
from pipeline.outputs.provenance import xmp_packet
from pipeline.outputs.records import ImageRecord
from pipeline.outputs.signing import Parent, sign
from pipeline.outputs.sinks import OutputError
from pipeline.stages.preserve import changeable
from pipeline.stages.timing import timed
from styles import AUTO_ROOM

THUMBNAIL_SIDE = 256


@dataclass
class Written:
    """What was written for one result: its files by kind (located), their CDN URLs, the result's digest, and the
    time writing (and signing) it took."""

    outputs: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    digest: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


class OutputWriter:
    """Encodes and writes what a frame made (metadata last, then its journal line); returns its record."""

    def __init__(self, config: RunConfig, sink, journal, models: dict, device: str):
        self.config = config
        self.sink = sink
        self.journal = journal
        self.models = models
        self.device = device
        self.lock = threading.Lock()
        self.photo_maps: dict[str, dict[str, str]] = {}  # per photo: its shared control maps, once written
        self.photo_names: dict[int, tuple[dict, dict]] = {}  # a style's stems -> (them, each photo's own stem)
        self.previews: set[str] = set()  # the references whose small copy this process has written
        self.published: dict[str, tuple[str, str | None]] = {}  # per photo: its published original, URL
        self.publishing: dict[str, threading.Lock] = {}
        self.was: dict[tuple[str, str], str] = {}  # (identity, style) -> the identity a job redone here had before

    def write(self, frames: list[Frame], run) -> ImageRecord:
        """Write everything for one job in one style (a StyleRun): each variation's result and thumbnail, the
        control maps once, each variation's metadata, then one journal line: a job is done when all its variations
        are. A failure fails the job alone, except an OutputError (disk full, no permission), which stops the run.
        The frames are read, never changed: what was written is the job's record."""
        frames = ranked(frames)
        error = next((f.error for f in frames if not f.ok), None)  # one variation failed: the job did
        written: dict[int, Written] = {}
        if error is None:
            try:
                written = self.write_job(frames, run)
            except OutputError:
                raise
            except (OSError, ValueError, ModomoError) as exc:
                error = " ".join(f"cannot write output: {getattr(exc, 'strerror', None) or exc}".split())
        record = self.record(frames, run, written, error)
        if self.journal is not None:  # a failed job's line is for the index; never counted as done
            self.journal.record(record.to_journal(self.sink.relative))
        return record

    def write_job(self, frames: list[Frame], run) -> dict[int, Written]:
        """Results and thumbnails, the control maps (once, shared by the variations), then each metadata; what
        was written, by variation."""
        count = len(frames)
        written = {f.variation: self.write_files(f, run, self.stem(f, run, count)) for f in frames}
        if self.config.save_controls:
            with timed([written[frames[0].variation]], "write"):
                controls = self.write_controls(frames[0], run)
            for done in written.values():
                done.outputs.update(controls)
        listing = [variation_json(f, run, written[f.variation]) for f in frames] if count > 1 else []
        for frame in frames:
            with timed([written[frame.variation]], "write"):
                meta_path = self.stem(frame, run, count) + ".json"
                metadata = self.metadata(frame, run, written[frame.variation], listing)
                data = json.dumps(metadata, indent=2).encode() + b"\n"
                written[frame.variation].outputs["metadata"] = self.sink.write(meta_path, data, "application/json")
        return written

    def stem(self, frame: Frame, run, count: int) -> str:
        return variation_stem(self.config, frame.item, run.style.name, run.stems[frame.item], frame.variation, count)

    def write_files(self, frame: Frame, run, stem: str) -> Written:
        """The result and its thumbnail: marked, labelled when asked, signed when asked (the signed bytes are
        what is written or uploaded)."""
        fmt = self.config.options.format
        names = {"result": stem + imaging.extension(fmt), "thumbnail": stem + ".thumb.jpg"}
        types = {"result": imaging.content_type(fmt), "thumbnail": "image/jpeg"}
        done = Written()  # its time too: the frame is not written to
        with timed([done], "write"):
            original, address = self.publish_original(frame, run, done)
            room = frame.room if frame.room != AUTO_ROOM else None
            marking = xmp_packet(done_of(frame, run), room, address)
            label = with_links(self.config.disclosure(run.style), original, done.urls.get("original_url"))
            qr = address if self.config.options.disclose_qr else None
            files = {
                "result": imaging.encode(disclose(frame.result, label, qr), fmt, marking),
                "thumbnail": imaging.encode(
                    disclose(imaging.thumbnail(frame.result, THUMBNAIL_SIDE), label, qr), "jpeg", marking
                ),
            }
        if self.config.signing is not None:
            with timed([done], "sign"):
                files = {
                    kind: self.sign(frame, run, names[kind], data, types[kind], address) for kind, data in files.items()
                }
        with timed([done], "write"):
            about = self.object_metadata(frame, run)
            self.write_preview(frame.reference)
            for kind, data in files.items():
                done.outputs[kind] = self.sink.write(names[kind], data, types[kind], about)
        for name, key in (("result", "transformed_url"), ("thumbnail", "thumbnail_url")):
            url = self.sink.public_url(names[name])
            if url:
                done.urls[key] = url
        done.digest = digest_of(files["result"])  # what a room set's other photos follow, byte for byte
        return done

    def publish_original(self, frame: Frame, run, done: Written) -> tuple[str | None, str | None]:
        """--publish-originals: the photo as decoded (upright, sRGB, its own pixels) in lossless PNG and without
        EXIF, once per photo whatever its styles and variations, into `done`; its path in the output and its
        address (the CDN URL when there is one, else the path). (None, None) without the option."""
        if not self.config.options.publish_originals:
            return None, None
        name = original_name(self.photo_stem(frame.item, run.stems))
        with self.lock:  # one lock per photo: its styles' writer threads publish it once, other photos go on
            photo_lock = self.publishing.setdefault(frame.item.identity, threading.Lock())
        with photo_lock:
            published = self.published.get(frame.item.identity)
            if published is None:
                location = self.sink.write(name, imaging.encode(frame.original, "png"), "image/png")
                published = self.published[frame.item.identity] = (location, self.sink.public_url(name))
        location, url = published
        done.outputs["original"] = location
        if url:
            done.urls["original_url"] = url
        return name, url or name

    def write_preview(self, reference) -> None:
        """A small copy of a reference in the output (once), for the report and the contact sheet: the output
        shows what its results followed wherever the reference itself lives. A set's anchor result is there."""
        if reference is None or reference.anchor or not reference.preview or reference.image is None:
            return
        with self.lock:
            if reference.digest in self.previews:
                return
            self.previews.add(reference.digest)
        data = imaging.encode(imaging.thumbnail(reference.image, THUMBNAIL_SIDE), "jpeg")
        self.sink.write(reference.preview, data, "image/jpeg")

    def sign(self, frame: Frame, run, name: str, data: bytes, mime: str, original: str | None = None) -> bytes:
        """One file with its C2PA manifest: the input photo as parent, what was done, by what."""
        from c2pa import C2paError

        about = {
            "style": run.style.name,
            "done": done_of(frame, run),
            **about_mode(frame, run),
            "room": frame.room,
            "prompt": frame.prompt or run.settings.prompt,
            "negative_prompt": frame.negative_prompt or run.settings.negative_prompt,
            "seed": frame.seed,
            "variation": frame.variation,
            "models": self.models,
            "settings": run.settings_hash,
        }
        parent = Parent(frame.source, original or frame.item.key.rsplit("/", 1)[-1])  # the published one, if any
        try:
            return sign(
                self.config.signing,
                data,
                mime,
                name.rsplit("/", 1)[-1],
                parent,
                about,
                resized=name.endswith(".thumb.jpg"),
            )
        except C2paError as exc:
            raise ModomoError(f"cannot sign {name}: {' '.join(str(exc).split())}") from None

    def object_metadata(self, frame: Frame, run) -> dict[str, str]:
        """What an uploaded result says about itself in a bucket browser (x-amz-meta-*; ASCII, so
        anything else percent-encoded)."""
        fields = {
            "source": frame.item.display,
            "style": run.style.name,
            "room": frame.room or "",
            "seed": str(frame.seed),
            "quality": "" if frame.quality is None else f"{frame.quality:.4f}",
            "variation": str(frame.variation),
            "modomo-version": __version__,
        }
        return {k: quote(v, safe=" /:@,.'()!*+=&;$~-_") for k, v in fields.items()}

    def write_controls(self, frame: Frame, run) -> dict[str, str]:
        """The input as the models saw it, the depth map and the object masks over the photo (once per photo:
        every style shares them, named after the photo: `room.depth.png`), and this style's edge and lines maps
        (named after its result: `room.boho.edges.png`) and a declutter's removal map (`room.empty.removal.png`)."""
        stem = run.stems[frame.item]
        with self.lock:  # the styles of one photo are written by several threads
            shared = self.photo_maps.setdefault(frame.item.identity, {})
            if not shared:
                photo = self.photo_stem(frame.item, run.stems)
                seen = frame.before or frame  # the photo's own, also when a staging emptied it first
                shared["input"] = write_input_preview(self.sink, photo, seen.image)
                masks = draw_objects(seen.image, seen.objects)
                shared.update(
                    self.encode_maps(
                        photo, {k: (v, *PHOTO_MAPS[k]) for k, v in (("depth", seen.depth), ("masks", masks))}
                    )
                )
        own = {"edges": (frame.edges, "png", ".edges.png"), "lines": (frame.lines, "png", ".lines.png")}
        own[map_kind(frame)] = (made_map(frame), "png", f".{map_kind(frame)}.png")
        return {**shared, **self.encode_maps(stem, own)}

    def photo_stem(self, item, stems: dict) -> str:
        """The photo's own stem among the run's inputs (a style's stems name them all), worked out once per list."""
        known = self.photo_names.get(id(stems))
        if known is None or known[0] is not stems:
            known = self.photo_names[id(stems)] = (stems, photo_stems(list(stems)))
        return known[1][item]

    def encode_maps(self, stem: str, images: dict) -> dict[str, str]:
        """Each (image, format, suffix) written beside the result; their locations by kind."""
        written = {}
        for kind, (image, fmt, suffix) in images.items():
            if image is not None:
                written[kind] = self.sink.write(stem + suffix, imaging.encode(image, fmt), imaging.content_type(fmt))
        return written

    def record(self, frames: list[Frame], run, written: dict[int, Written], error: str | None) -> ImageRecord:
        """The one record of a job and style (its best variation first, every variation listed, the time of all
        of them): the summary's, and the journal line's (`ImageRecord.to_journal`)."""
        frame, item = frames[0], frames[0].item
        ok = error is None
        if not ok and item.job is not None and not error.startswith("manifest line"):
            error = item.job.fail(error)
        best = written.get(frame.variation, Written())
        key = (item.identity, run.style.name)
        return ImageRecord(
            item.identity, item.display, item.key, run.style.name, "ok" if ok else "failed", error, frame.room,
            outputs=dict(best.outputs) if ok else {},
            urls=dict(best.urls) if ok else {},
            seed=frame.seed,
            quality=frame.quality,
            quality_parts=dict(frame.quality_parts),
            fidelity=dict(frame.fidelity),
            passed=passed(frame, run) if ok else None,
            attempts=sum(len(f.attempts) for f in frames),
            timings={k: round(v, 6) for k, v in summed_timings([*frames, *written.values()]).items()},
            variations=[variation_json(f, run, written[f.variation]) for f in frames] if ok else [],
            retry_errors=sum("error" in attempt for f in frames for attempt in f.attempts),
            warnings=list(frame.warnings),
            set=item.group,
            anchor=bool(item.group and not item.anchor),
            reference=reference_json(frame, self.sink.locate),
            line=item.job.line if item.job is not None else None,
            order=row_order(item.job, run.style.name),
            room_probability=frame.room_probability,
            version=item.version,
            source=frame.input_digest,
            stem=run.stems.get(item),
            was=self.was.get(key),
            settings=run.settings_hash,
            digest=best.digest if ok else None,
            signed=self.config.signing is not None,
            finished=datetime.now(UTC).isoformat(timespec="seconds"),
            mode=run.style.mode,
        )  # fmt: skip

    def metadata(self, frame: Frame, run, written: Written, listing: list[dict]) -> dict:
        """Everything needed to understand or reproduce one result (and, with --variations, its siblings)."""
        width, height = frame.image.size
        return {
            "input": frame.item.display,
            "id": frame.item.identity,
            "key": frame.item.key,
            "original_size": list(frame.original_size or ()),
            **({"capture": frame.capture} if frame.capture else {}),
            "size": [width, height],
            **({"output_size": list(frame.result.size)} if frame.result.size != (width, height) else {}),
            "style": run.style.name,
            "room": frame.room,
            **({"room_probability": frame.room_probability} if frame.room_probability is not None else {}),
            "prompt": frame.prompt or run.settings.prompt,
            "negative_prompt": frame.negative_prompt or run.settings.negative_prompt,
            **(
                {"manifest": {"line": frame.item.job.line, "job": frame.item.job.digest}}
                if frame.item.job is not None
                else {}
            ),
            **set_fields(frame),
            "seed": frame.seed,
            **({"variation": {"n": frame.variation, "of": len(listing)}, "variations": listing} if listing else {}),
            "models": self.models,
            "settings": self.config.settings_json(run.style),
            "objects": [o.to_json() for o in (frame.before or frame).objects],  # the photo's
            "preserve": {
                "labels": sorted(kept_labels(frame, self.config)),
                "mask": frame.mask_source,
                "kept_area": round(float(frame.keep.mean()), 4) if frame.keep is not None else 0.0,
            },
            "changeable": round(changeable(frame.keep), 4),  # the share of the photo the restyle may change, 0..1
            **mode_json(frame, run, self.config),
            **({"warnings": list(frame.warnings)} if frame.warnings else {}),
            "quality": {
                "score": frame.quality,
                **frame.quality_parts,
                "threshold": run.threshold,
                "passed": passed(frame, run),
                "attempts": frame.attempts,
            },
            **({"fidelity": dict(frame.fidelity)} if frame.fidelity else {}),
            "timings": {k: round(v, 6) for k, v in summed_timings([frame, written]).items()},
            "outputs": self.beside(written.outputs, self.stem(frame, run, len(listing) or 1)),
            **written.urls,
            **({"credentials": {"c2pa": self.config.signing.to_json()}} if self.config.signing else {}),
            "device": self.device,
            "modomo_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def beside(self, outputs: dict[str, str], stem: str) -> dict[str, str]:
        """Outputs as a result's metadata names them: relative to its folder (beside it: the name alone; a photo's
        maps under a --name with folders: `../room.depth.png`)."""
        folder = posixpath.dirname(stem) or "."
        return {k: posixpath.relpath(self.sink.relative(v), folder) for k, v in outputs.items() if k != "metadata"}


def write_input_preview(sink, photo: str, image) -> str:
    """`<photo>.input.jpg`: the input as the models saw it (upright, at the working size), the report's "before"
    and the contact sheet's input; its location. A run writes it from its frame; a report added to an output
    made without it, from the photo (`working_image`)."""
    fmt, suffix = PHOTO_MAPS["input"]
    return sink.write(photo + suffix, imaging.encode(image, fmt), imaging.content_type(fmt))


def working_image(data: bytes, name: str, long_side: int):
    """A photo decoded as a run reads it: upright sRGB at the working size (`long_side`)."""
    image = imaging.decode(data, name)
    return imaging.resize_to(image, imaging.fit_size(*image.size, long_side))


def set_fields(frame: Frame) -> dict:
    """A job's room set and reference, as journal lines and metadata keep them (paths relative to the output)."""
    item = frame.item
    return {
        **({"set": item.group} if item.group else {}),
        **({"anchor": True} if item.group and not item.anchor else {}),
        **({"reference": frame.reference.to_json()} if frame.reference is not None else {}),
    }


def reference_json(frame: Frame, locate) -> dict:
    """A job's reference as its record shows it: the preview located, as outputs are."""
    if frame.reference is None:
        return {}
    data = frame.reference.to_json()
    return {**data, "preview": locate(data["preview"])} if data.get("preview") else data


def ranked(frames: list[Frame]) -> list[Frame]:
    """A job's variations best first (highest quality; unscored last; then by number)."""
    return sorted(frames, key=lambda f: (f.quality is None, -(f.quality or 0.0), f.variation))


def variation_json(frame: Frame, run, written: Written) -> dict:
    """One result of a job, as records, journal lines and metadata list it."""
    return {
        "n": frame.variation,
        "seed": frame.seed,
        "quality": frame.quality,
        "passed": passed(frame, run) if frame.ok else None,
        **({"fidelity": dict(frame.fidelity)} if frame.fidelity else {}),
        "outputs": {k: v for k, v in written.outputs.items() if k in ("result", "thumbnail", "metadata")},
        **written.urls,
    }


def summed_timings(frames: list) -> dict[str, float]:
    """A job's time by stage: the shared stages once (they are on its first frame), its variations' own added."""
    total: dict[str, float] = {}
    for frame in frames:
        for stage, seconds in frame.timings.items():
            total[stage] = total.get(stage, 0.0) + seconds
    return total


def passed(frame: Frame, run) -> bool:
    return frame.quality is not None and frame.quality >= run.threshold


def kept_labels(frame: Frame, config: RunConfig) -> set[str]:
    """What a result was asked to keep: its manifest row's `preserve`, else the run's --preserve."""
    job = frame.item.job
    return job.preserve if job is not None and job.preserve is not None else config.keep_labels


def row_order(job, style: str) -> int | None:
    """A manifest row's place for one of its styles (the journal line's `order`): the index lists a row's styles
    in the order the row gives them."""
    if job is None or not job.styles or len(job.styles) < 2 or style not in job.styles:
        return None
    return job.styles.index(style)
