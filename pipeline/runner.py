"""The batch loop: read ahead -> detect -> segment -> depth -> edges -> generate -> validate -> write behind.

Reading/decoding and encoding/writing run on bounded thread pools so the main thread only
runs models; a bad image becomes a failed record and the batch goes on.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline import __version__, imaging
from pipeline.config import RunConfig
from pipeline.cost import Price
from pipeline.errors import ImageError, ModomoError
from pipeline.frames import Frame, Item
from pipeline.journal import Journal, settings_hash
from pipeline.models.load import ModelStack
from pipeline.prefetch import read_ahead
from pipeline.seeds import derive_seed
from pipeline.sinks import LocalSink, OutputError, R2Sink, output_stems
from pipeline.stages.depth import DepthEstimator
from pipeline.stages.detect import Detector
from pipeline.stages.edges import EdgeDetector
from pipeline.stages.generate import Generator, PlainDiffusersGenerator
from pipeline.stages.segment import Segmenter
from pipeline.stages.validate import Validator
from pipeline.timing import summarise, synchronize, timed

THUMBNAIL_SIDE = 256
Event = Callable[..., None]


@dataclass
class RunResult:
    """Everything the summary needs: one record per input, timings, wall time, cost."""

    records: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    load_seconds: float = 0.0
    price: Price | None = None
    settings: dict = field(default_factory=dict)
    interrupted: bool = False
    stopped: str | None = None  # why the run ended early: "interrupted", "fail-fast", or a fatal error
    fatal: str | None = None
    oom: list[dict] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "failed": 0, "skipped": 0}
        for record in self.records:
            out[record["status"]] += 1
        return out

    def to_json(self) -> dict:
        processed = [r for r in self.records if r["status"] != "skipped"]
        done = [r for r in self.records if r["status"] == "ok"]
        total_cost = self.price.cost(self.seconds) if self.price else 0.0
        scored = [r for r in done if r.get("quality") is not None]
        return {
            "images": self.records,
            "stages": summarise([r["timings"] for r in done]) if done else {},
            "quality": {
                "threshold": self.settings.get("min_quality"),
                "mean": sum(r["quality"] for r in scored) / len(scored) if scored else None,
                "success_rate": sum(bool(r.get("passed")) for r in scored) / len(scored) if scored else None,
                "retries": sum(max(0, r.get("attempts", 1) - 1) for r in done),
            },
            "settings": self.settings,
            "counts": self.counts,
            "stopped": self.stopped,
            "oom": self.oom,
            "seconds": self.seconds,
            "load_seconds": self.load_seconds,
            "images_per_minute": 60.0 * len(done) / self.seconds if self.seconds > 0 else 0.0,
            "cost": {
                "currency": self.price.currency if self.price else "USD",
                "price_per_hour": self.price.per_hour if self.price else 0.0,
                "price_source": self.price.source if self.price else "",
                "seconds": self.seconds,
                "per_image": total_cost / len(processed) if processed else 0.0,
                "total": total_cost,
            },
        }


class Runner:
    """Builds every stage once from a loaded ModelStack, then streams inputs through them."""

    def __init__(self, config: RunConfig, stack: ModelStack, sink: LocalSink | R2Sink, on_event: Event | None = None,
                 journal: Journal | None = None):
        self.config = config
        self.stack = stack
        self.sink = sink
        self.journal = journal
        self.on_event = on_event or (lambda *args, **kwargs: None)
        self.stop = threading.Event()
        device = stack.device
        self.settings = config.generate_settings()
        self.settings_hash = settings_hash({
            **{k: v for k, v in config.settings_json().items() if k != "batch_size"},
            "prompt": self.settings.prompt,
            "negative_prompt": self.settings.negative_prompt,
            "models": stack.spec.ids(),
        })
        if config.engine == "diffusers":
            self.generator = PlainDiffusersGenerator(stack.pipe, self.settings)
        else:
            self.generator = Generator(stack.pipe, self.settings, device, config.speed)
        depth = DepthEstimator(stack.depth_model, stack.depth_processor, device, stack.dtype)
        self.validator = Validator(depth)
        self.stages = [
            ("detect", Detector(stack.yolo, str(device))),
            ("segment", Segmenter(stack.sam2)),
            ("depth", depth),
            ("edges", EdgeDetector(config.style.canny_low, config.style.canny_high)),
            ("generate", self.generator),
            ("validate", self.validator),
        ]

    # -- reading ------------------------------------------------------------------------------
    def read(self, item: Item) -> Frame:
        """Fetch, decode and size one input; a bad one comes back failed, never raised."""
        frame = Frame(item=item, seed=derive_seed(self.config.seed, item.key))
        with timed([frame], "read"):
            try:
                data = item.read()
            except OSError as exc:
                reason = exc.strerror or str(exc)
                frame.fail(reason if reason.startswith("cannot") else f"cannot read: {reason}")
                return frame
            try:
                image = imaging.decode(data, item.display)
            except ImageError as exc:
                frame.fail(str(exc))
                return frame
            frame.original_size = image.size
            frame.image = imaging.resize_to(image, imaging.fit_size(*image.size, self.config.long_side))
        return frame

    def frames(self, items: list[Item], pool: ThreadPoolExecutor) -> Iterator[Frame]:
        """Frames in input order, fetched and decoded ahead on the pool within a bounded window."""
        return read_ahead(items, self.read, pool, window=self.config.batch_size * 2 + self.config.workers)

    # -- models -------------------------------------------------------------------------------
    def process(self, batch: list[Frame]) -> None:
        """Every model stage over one batch; a stage that raises fails only this batch's frames."""
        for name, stage in self.stages:
            live = [f for f in batch if f.ok]
            if not live:
                return
            self.on_event("stage", frames=live, stage=name)
            with timed(live, name, self.stack.device):
                try:
                    stage(live)
                except Exception as exc:  # noqa: BLE001 - one batch's failure must not end the run
                    synchronize(self.stack.device)
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    for frame in live:
                        frame.fail(f"{name} failed: {first}")
        self.retry(batch)

    def retry(self, batch: list[Frame]) -> None:
        """Render again, with a new seed derived from the key, every result below the quality threshold,
        up to --retries times; keep the best attempt. Retries are timed into generate and validate."""
        threshold = self.config.quality_threshold
        for frame in batch:
            if frame.ok and frame.quality is not None:
                frame.attempts = [{"seed": frame.seed, "score": frame.quality, **frame.quality_parts}]
        for attempt in range(1, self.config.retries + 1):
            low = [f for f in batch if f.ok and f.quality is not None and f.quality < threshold]
            if not low:
                return
            best = {id(f): (f.quality, f.quality_parts, f.result, f.seed) for f in low}
            for frame in low:
                frame.seed = derive_seed(self.config.seed, f"{frame.item.key}#retry{attempt}")
            self.on_event("stage", frames=low, stage=f"retry {attempt}")
            try:
                with timed(low, "generate", self.stack.device):
                    self.generator(low)
                with timed(low, "validate", self.stack.device):
                    self.validator(low)
            except Exception:  # noqa: BLE001 - a failed retry keeps the result already made
                for frame in low:
                    frame.quality, frame.quality_parts, frame.result, frame.seed = best[id(frame)]
                return
            for frame in low:
                frame.attempts.append({"seed": frame.seed, "score": frame.quality, **frame.quality_parts})
                if frame.quality < best[id(frame)][0]:
                    frame.quality, frame.quality_parts, frame.result, frame.seed = best[id(frame)]

    # -- writing ------------------------------------------------------------------------------
    def write(self, frame: Frame, stem: str) -> dict:
        """Encode and write result, thumbnail and metadata (metadata last); returns the record."""
        if frame.ok:
            try:
                fmt = self.config.format
                with timed([frame], "write"):
                    result = imaging.encode(frame.result, fmt)
                    thumb = imaging.encode(imaging.thumbnail(frame.result, THUMBNAIL_SIDE), "jpeg")
                    names = {"result": stem + imaging.extension(fmt), "thumbnail": stem + ".thumb.jpg"}
                    frame.outputs["result"] = self.sink.write(names["result"], result, imaging.content_type(fmt))
                    frame.outputs["thumbnail"] = self.sink.write(names["thumbnail"], thumb, "image/jpeg")
                for name, url_key in (("result", "transformed_url"), ("thumbnail", "thumbnail_url")):
                    url = self.sink.public_url(names[name])
                    if url:
                        frame.urls[url_key] = url
                meta_path = stem + ".json"
                frame.outputs["metadata"] = str(self.sink.path(meta_path))
                metadata = json.dumps(self.metadata(frame), indent=2).encode() + b"\n"
                self.sink.write(meta_path, metadata, "application/json")
                if self.journal is not None:
                    self.journal.record(self.journal_entry(frame))
            except OutputError:
                raise
            except (OSError, ValueError, ModomoError) as exc:
                frame.fail(f"cannot write output: {getattr(exc, 'strerror', None) or exc}")
        record = self.record(frame)
        frame.image = frame.result = frame.depth = frame.edges = None  # keep memory flat
        for obj in frame.objects:
            obj.mask = None
        return record

    def journal_entry(self, frame: Frame) -> dict:
        """The journal line of a finished input: enough to skip it next time and report it as skipped."""
        return {
            "key": frame.item.key,
            "input": frame.item.display,
            "version": frame.item.version,
            "settings": self.settings_hash,
            "seed": frame.seed,
            "quality": frame.quality,
            "passed": self.passed(frame),
            "outputs": dict(frame.outputs),
            **frame.urls,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def skipped_record(self, item: Item, entry: dict) -> dict:
        """The summary record of an input the journal says is already done with these settings."""
        return {
            "input": item.display,
            "key": item.key,
            "status": "skipped",
            "error": None,
            "outputs": entry.get("outputs", {}),
            **{k: entry[k] for k in ("transformed_url", "thumbnail_url") if k in entry},
            "seed": entry.get("seed"),
            "quality": entry.get("quality"),
            "passed": entry.get("passed"),
            "attempts": 0,
            "timings": {},
        }

    def record(self, frame: Frame) -> dict:
        """The JSON summary's record for one input."""
        return {
            "input": frame.item.display,
            "key": frame.item.key,
            "status": "ok" if frame.ok else "failed",
            "error": frame.error,
            "outputs": dict(frame.outputs) if frame.ok else {},
            **(frame.urls if frame.ok else {}),
            "seed": frame.seed,
            "quality": frame.quality,
            "passed": self.passed(frame) if frame.ok else None,
            "attempts": len(frame.attempts),
            "timings": {k: round(v, 6) for k, v in frame.timings.items()},
        }

    def passed(self, frame: Frame) -> bool:
        return frame.quality is not None and frame.quality >= self.config.quality_threshold

    def metadata(self, frame: Frame) -> dict:
        """Everything needed to understand or reproduce one result."""
        width, height = frame.image.size
        return {
            "input": frame.item.display,
            "key": frame.item.key,
            "original_size": list(frame.original_size or ()),
            "size": [width, height],
            "style": self.config.style.name,
            "room": self.config.room,
            "prompt": self.settings.prompt,
            "negative_prompt": self.settings.negative_prompt,
            "seed": frame.seed,
            "models": self.stack.spec.ids(),
            "settings": self.config.settings_json(),
            "objects": [o.to_json() for o in frame.objects],
            "quality": {"score": frame.quality, **frame.quality_parts, "threshold": self.config.quality_threshold,
                        "passed": self.passed(frame), "attempts": frame.attempts},
            "timings": {k: round(v, 6) for k, v in frame.timings.items()},
            "outputs": {k: v.rsplit("/", 1)[-1] for k, v in frame.outputs.items() if k != "metadata"},
            **frame.urls,
            "device": str(self.stack.device),
            "modomo_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    # -- the loop -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Finish the batch in hand, write what it made, and stop (the first Ctrl-C)."""
        self.stop.set()

    def plan(self, items: list[Item], result: RunResult) -> list[Item]:
        """The items still to do; the rest are recorded as skipped (done before with the same settings)."""
        if self.journal is None or not self.config.resume or self.config.overwrite:
            return list(items)
        done = self.journal.load()
        todo = []
        for item in items:
            entry = done.get((item.key, self.settings_hash))
            if entry is not None and entry.get("version") == item.version:
                record = self.skipped_record(item, entry)
                result.records.append(record)
                self.on_event("done", record=record)
            else:
                todo.append(item)
        return todo

    def run(self, items: list[Item]) -> RunResult:
        """Stream every item through the stages; returns records in input order."""
        stems = output_stems(items, self.config.style.name)
        result = RunResult(settings=self.config.settings_json())
        self.on_event("start", total=len(items))
        start = time.perf_counter()
        todo = self.plan(items, result)
        writes: deque[Future] = deque()
        readers = ThreadPoolExecutor(self.config.workers, thread_name_prefix="modomo-read")
        writers = ThreadPoolExecutor(max(1, self.config.workers // 2), thread_name_prefix="modomo-write")

        def drain(limit: int) -> None:
            while len(writes) > limit:
                try:
                    record = writes.popleft().result()
                except OutputError as exc:
                    if result.fatal is None:
                        result.fatal = str(exc)
                    self.stop.set()
                    continue
                result.records.append(record)
                self.on_event("done", record=record)

        try:
            batch: list[Frame] = []
            for frame in self.frames(todo, readers):
                if self.stop.is_set():
                    break
                batch.append(frame)
                if len(batch) == self.config.batch_size:
                    self._finish(batch, stems, writers, writes, result)
                    batch = []
                    drain(self.config.batch_size * 2)
            if batch and not self.stop.is_set():
                self._finish(batch, stems, writers, writes, result)
        except KeyboardInterrupt:  # the second Ctrl-C: abandon the batch in hand, keep what is written
            result.interrupted = True
        finally:
            readers.shutdown(wait=True, cancel_futures=True)
            drain(0)
            writers.shutdown(wait=True)
            self._close_journal(result)
        if result.fatal:
            result.stopped = result.fatal
        elif result.interrupted or (self.stop.is_set() and result.stopped is None):
            result.interrupted, result.stopped = True, "interrupted"
        result.oom = list(self.generator.events)
        order = {item.key: i for i, item in enumerate(items)}
        result.records.sort(key=lambda r: order.get(r["key"], len(order)))
        result.seconds = time.perf_counter() - start
        return result

    def _close_journal(self, result: RunResult) -> None:
        if self.journal is None:
            return
        try:
            self.journal.close()
        except (OSError, ModomoError) as exc:
            result.fatal = result.fatal or f"cannot write the journal: {exc}"

    def _finish(self, batch: list[Frame], stems, writers: ThreadPoolExecutor, writes: deque,
                result: RunResult) -> None:
        self.process(batch)
        for frame in batch:
            writes.append(writers.submit(self.write, frame, stems[frame.item]))
        if self.config.fail_fast and any(not f.ok for f in batch):
            result.stopped = "fail-fast"
            self.stop.set()
