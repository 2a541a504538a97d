"""Writing one finished input and style: result, thumbnail, control maps, metadata, journal line, record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import quote

from pipeline import __version__, imaging
from pipeline.config import RunConfig
from pipeline.errors import ModomoError
from pipeline.frames import Frame
from pipeline.overlay import draw_objects
from pipeline.records import ImageRecord
from pipeline.sinks import OutputError
from pipeline.timing import timed

THUMBNAIL_SIDE = 256


class OutputWriter:
    """Encodes and writes what a frame made (metadata last, then its journal line); returns its record."""

    def __init__(self, config: RunConfig, sink, journal, models: dict, device: str):
        self.config = config
        self.sink = sink
        self.journal = journal
        self.models = models
        self.device = device

    def write(self, frame: Frame, run) -> ImageRecord:
        """Write everything for one frame of one style (a StyleRun); a failure fails the frame alone,
        except an OutputError (disk full, no permission), which stops the run."""
        stem = run.stems[frame.item]
        if frame.ok:
            try:
                self.write_files(frame, run, stem)
                if self.journal is not None:
                    self.journal.record(self.journal_entry(frame, run))
            except OutputError:
                raise
            except (OSError, ValueError, ModomoError) as exc:
                frame.fail(f"cannot write output: {getattr(exc, 'strerror', None) or exc}")
        record = self.record(frame, run)
        if not frame.ok and self.journal is not None:  # for the index; never counted as done
            self.journal.record({**self.journal_entry(frame, run), "status": "failed", "error": record.error,
                                 "outputs": {}})
        frame.image = frame.result = frame.depth = frame.edges = None  # keep memory flat
        return record

    def write_files(self, frame: Frame, run, stem: str) -> None:
        fmt = self.config.format
        with timed([frame], "write"):
            result = imaging.encode(frame.result, fmt)
            thumb = imaging.encode(imaging.thumbnail(frame.result, THUMBNAIL_SIDE), "jpeg")
            names = {"result": stem + imaging.extension(fmt), "thumbnail": stem + ".thumb.jpg"}
            about = self.object_metadata(frame, run)
            frame.outputs["result"] = self.sink.write(names["result"], result, imaging.content_type(fmt), about)
            frame.outputs["thumbnail"] = self.sink.write(names["thumbnail"], thumb, "image/jpeg", about)
            if self.config.save_controls:
                self.write_controls(frame, stem)
        for name, url_key in (("result", "transformed_url"), ("thumbnail", "thumbnail_url")):
            url = self.sink.public_url(names[name])
            if url:
                frame.urls[url_key] = url
        meta_path = stem + ".json"
        frame.outputs["metadata"] = str(self.sink.path(meta_path))
        metadata = json.dumps(self.metadata(frame, run), indent=2).encode() + b"\n"
        self.sink.write(meta_path, metadata, "application/json")

    def object_metadata(self, frame: Frame, run) -> dict[str, str]:
        """What an uploaded result says about itself in a bucket browser (x-amz-meta-*; ASCII, so
        anything else percent-encoded)."""
        fields = {"source": frame.item.display, "style": run.style.name, "room": frame.room or "",
                  "seed": str(frame.seed), "quality": "" if frame.quality is None else f"{frame.quality:.4f}",
                  "modomo-version": __version__}
        return {k: quote(v, safe=" /:@,.'()!*+=&;$~-_") for k, v in fields.items()}

    def write_controls(self, frame: Frame, stem: str) -> None:
        """The input as the models saw it, the depth and edge maps, and the object masks over the photo."""
        images = {
            "input": (frame.image, "jpeg", ".input.jpg"),
            "depth": (frame.depth, "png", ".depth.png"),
            "edges": (frame.edges, "png", ".edges.png"),
            "masks": (draw_objects(frame.image, frame.objects), "jpeg", ".masks.jpg"),
        }
        for kind, (image, fmt, suffix) in images.items():
            if image is not None:
                data = imaging.encode(image, fmt)
                frame.outputs[kind] = self.sink.write(stem + suffix, data, imaging.content_type(fmt))

    def journal_entry(self, frame: Frame, run) -> dict:
        """The journal line of a finished input and style: enough to skip it next time."""
        return {
            "id": frame.item.identity,
            "key": frame.item.key,
            "status": "ok",
            **({"line": frame.item.job.line} if frame.item.job is not None else {}),
            "style": run.style.name,
            "input": frame.item.display,
            "room": frame.room,
            "room_probability": frame.room_probability,
            "version": frame.item.version,
            "settings": run.settings_hash,
            "seed": frame.seed,
            "quality": frame.quality,
            "passed": passed(frame, run),
            "outputs": dict(frame.outputs),
            **frame.urls,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def record(self, frame: Frame, run) -> ImageRecord:
        """The summary's record for one input and style."""
        item = frame.item
        error = frame.error
        if error and item.job is not None and not error.startswith("manifest line"):
            error = item.job.fail(error)
        return ImageRecord(
            item.identity, item.display, item.key, run.style.name, "ok" if frame.ok else "failed", error, frame.room,
            outputs=dict(frame.outputs) if frame.ok else {}, urls=dict(frame.urls) if frame.ok else {},
            seed=frame.seed, quality=frame.quality, quality_parts=dict(frame.quality_parts),
            passed=passed(frame, run) if frame.ok else None, attempts=len(frame.attempts),
            timings={k: round(v, 6) for k, v in frame.timings.items()},
        )

    def metadata(self, frame: Frame, run) -> dict:
        """Everything needed to understand or reproduce one result."""
        width, height = frame.image.size
        return {
            "input": frame.item.display,
            "id": frame.item.identity,
            "key": frame.item.key,
            "original_size": list(frame.original_size or ()),
            "size": [width, height],
            "style": run.style.name,
            "room": frame.room,
            **({"room_probability": frame.room_probability} if frame.room_probability is not None else {}),
            "prompt": frame.prompt or run.settings.prompt,
            "negative_prompt": frame.negative_prompt or run.settings.negative_prompt,
            **({"manifest": {"line": frame.item.job.line, "job": frame.item.job.digest}}
               if frame.item.job is not None else {}),
            "seed": frame.seed,
            "models": self.models,
            "settings": self.config.settings_json(run.style),
            "objects": [o.to_json() for o in frame.objects],
            "preserve": {"labels": sorted(self.config.preserve), "mask": frame.mask_source,
                         "kept_area": round(float(frame.keep.mean()), 4) if frame.keep is not None else 0.0},
            "quality": {"score": frame.quality, **frame.quality_parts, "threshold": run.threshold,
                        "passed": passed(frame, run), "attempts": frame.attempts},
            "timings": {k: round(v, 6) for k, v in frame.timings.items()},
            "outputs": {k: v.rsplit("/", 1)[-1] for k, v in frame.outputs.items() if k != "metadata"},
            **frame.urls,
            "device": self.device,
            "modomo_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def passed(frame: Frame, run) -> bool:
    return frame.quality is not None and frame.quality >= run.threshold
