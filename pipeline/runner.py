"""The batch loop: read ahead -> detect -> segment -> depth -> (per style) edges -> generate -> validate
-> write behind.

Reading/decoding and encoding/writing run on bounded thread pools so the main thread only runs
models. The style-independent stages run once per photo however many styles are asked for. A bad
image becomes a failed record and the batch goes on.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline import __version__, imaging
from pipeline.batching import batching_report, size_batches
from pipeline.config import RunConfig
from pipeline.errors import ImageError, ModomoError
from pipeline.frames import Frame, Item
from pipeline.journal import Journal, settings_hash
from pipeline.models import lora
from pipeline.models.load import ModelStack
from pipeline.overlay import draw_objects
from pipeline.prefetch import read_ahead
from pipeline.result import RunResult
from pipeline.seeds import derive_seed
from pipeline.sinks import LocalSink, OutputError, R2Sink, output_stems
from pipeline.stages.depth import DepthEstimator
from pipeline.stages.detect import Detector
from pipeline.stages.edges import EdgeDetector
from pipeline.stages.generate import GenerateSettings, Generator, PlainDiffusersGenerator
from pipeline.stages.offload import MemoryState, ModelPlacer
from pipeline.stages.preserve import Compositor, Preserver
from pipeline.stages.segment import Segmenter
from pipeline.stages.validate import StyleScorer, Validator
from pipeline.timing import synchronize, timed
from styles import Style

THUMBNAIL_SIDE = 256
SHARED_STAGES = ("read", "detect", "segment", "depth", "preserve")
Event = Callable[..., None]


@dataclass
class StyleRun:
    """What one style needs, built once: its settings, their hash, its own edge and generate stages."""

    style: Style
    settings: GenerateSettings
    settings_hash: str
    threshold: float
    edges: EdgeDetector
    generator: Generator | PlainDiffusersGenerator
    stems: dict[Item, str]
    loras: list


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
        self.memory = MemoryState(placer=ModelPlacer(stack.pipe, stack.device) if stack.pipe is not None else None)
        device = stack.device
        depth = DepthEstimator(stack.depth_model, stack.depth_processor, device, stack.dtype)
        self.validator = Validator(depth, self._style_scorer())
        self.shared = [
            ("detect", Detector(stack.yolo, str(device))),
            ("segment", Segmenter(stack.sam2)),
            ("depth", depth),
        ]
        preserver = Preserver(config.preserve, Path(config.mask_dir) if config.mask_dir else None)
        self.compositor = Compositor() if preserver.active else None
        if preserver.active:
            self.shared.append(("preserve", preserver))
        self.styles = [self._style_run(style) for style in config.styles]
        self.uses_loras = any(run.loras for run in self.styles)
        if self.uses_loras:
            lora.load(stack.pipe, [entry for run in self.styles for entry in run.loras])

    def _style_scorer(self) -> StyleScorer | None:
        """CLIP style adherence when the preset's CLIP is loaded: each style against all known styles."""
        if self.stack.clip is None:
            return None
        from styles import list_styles, load_style

        known = {s.name: s for s in [*map(load_style, list_styles()), *self.config.styles]}
        prompts = {name: style.prompt_for(self.config.room) for name, style in known.items()}
        model, processor = self.stack.clip
        return StyleScorer(model, processor, prompts, self.stack.device, self.stack.dtype)

    def _style_run(self, style: Style) -> StyleRun:
        settings = self.config.generate_settings(style)
        digest = settings_hash({
            **{k: v for k, v in self.config.settings_json(style).items() if k != "batch_size"},
            "prompt": settings.prompt,
            "negative_prompt": settings.negative_prompt,
            "models": self.stack.spec.ids(),
        })
        if self.config.engine == "diffusers":
            generator = PlainDiffusersGenerator(self.stack.pipe, settings)
        else:
            generator = Generator(self.stack.pipe, settings, self.stack.device, self.config.speed, self.memory)
        return StyleRun(style, settings, digest, self.config.quality_threshold(style),
                        EdgeDetector(style.canny_low, style.canny_high), generator, {}, self.config.loras_for(style))

    @property
    def oom_events(self) -> list[dict]:
        return list(self.memory.events)

    def batching(self) -> dict:
        """Generate calls over every style, retries included, and the mean frames per call."""
        calls = sum(run.generator.calls for run in self.styles)
        rendered = sum(run.generator.rendered for run in self.styles)
        return batching_report(self.config.batch_size, calls, rendered)

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
    def run_stage(self, name: str, stage, frames: list[Frame]) -> None:
        """One stage over the frames still ok; if it raises, only these frames fail."""
        live = [f for f in frames if f.ok]
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

    def process(self, batch: list[Frame], todo: dict[str, list[StyleRun]]) -> list[tuple[Frame, StyleRun]]:
        """Shared stages once per photo, then each requested style; returns one frame per (input, style)."""
        for name, stage in self.shared:
            self.run_stage(name, stage, batch)
        out: list[tuple[Frame, StyleRun]] = []
        for run in self.styles:
            frames = [fork(f, run.style.name, len(todo[f.item.key])) for f in batch if run in todo[f.item.key]]
            if not frames:
                continue
            if self.uses_loras:
                lora.activate(self.stack.pipe, run.loras)
            self.run_stage("edges", run.edges, frames)
            self.run_stage("generate", run.generator, frames)
            if self.compositor:
                self.run_stage("compose", self.compositor, frames)
            self.run_stage("validate", self.validator, frames)
            self.retry(frames, run)
            out += [(f, run) for f in frames]
        return out

    def retry(self, frames: list[Frame], run: StyleRun) -> None:
        """Render again, with a new seed derived from the key, every result below the style's quality
        threshold, up to --retries times; keep the best attempt. Retries are timed into generate and
        validate, so they count in time and cost."""
        for frame in frames:
            if frame.ok and frame.quality is not None:
                frame.attempts = [{"seed": frame.seed, "score": frame.quality, **frame.quality_parts}]
        for attempt in range(1, self.config.retries + 1):
            low = [f for f in frames if f.ok and f.quality is not None and f.quality < run.threshold]
            if not low:
                return
            best = {id(f): (f.quality, f.quality_parts, f.result, f.seed) for f in low}
            for frame in low:
                frame.seed = derive_seed(self.config.seed, f"{frame.item.key}#retry{attempt}")
            self.on_event("stage", frames=low, stage=f"retry {attempt}")
            try:
                with timed(low, "generate", self.stack.device):
                    run.generator(low)
                    if self.compositor:
                        self.compositor(low)
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
    def write(self, frame: Frame, run: StyleRun) -> dict:
        """Encode and write result, thumbnail and metadata (metadata last); returns the record."""
        stem = run.stems[frame.item]
        if frame.ok:
            try:
                fmt = self.config.format
                with timed([frame], "write"):
                    result = imaging.encode(frame.result, fmt)
                    thumb = imaging.encode(imaging.thumbnail(frame.result, THUMBNAIL_SIDE), "jpeg")
                    names = {"result": stem + imaging.extension(fmt), "thumbnail": stem + ".thumb.jpg"}
                    frame.outputs["result"] = self.sink.write(names["result"], result, imaging.content_type(fmt))
                    frame.outputs["thumbnail"] = self.sink.write(names["thumbnail"], thumb, "image/jpeg")
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
                if self.journal is not None:
                    self.journal.record(self.journal_entry(frame, run))
            except OutputError:
                raise
            except (OSError, ValueError, ModomoError) as exc:
                frame.fail(f"cannot write output: {getattr(exc, 'strerror', None) or exc}")
        record = self.record(frame, run)
        frame.image = frame.result = frame.depth = frame.edges = None  # keep memory flat
        return record

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

    def journal_entry(self, frame: Frame, run: StyleRun) -> dict:
        """The journal line of a finished input and style: enough to skip it next time."""
        return {
            "key": frame.item.key,
            "style": run.style.name,
            "input": frame.item.display,
            "version": frame.item.version,
            "settings": run.settings_hash,
            "seed": frame.seed,
            "quality": frame.quality,
            "passed": passed(frame, run),
            "outputs": dict(frame.outputs),
            **frame.urls,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def skipped_record(self, item: Item, run: StyleRun, entry: dict) -> dict:
        """The summary record of an input and style the journal says are done with these settings."""
        return {
            "input": item.display,
            "key": item.key,
            "style": run.style.name,
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

    def record(self, frame: Frame, run: StyleRun) -> dict:
        """The JSON summary's record for one input and style."""
        return {
            "input": frame.item.display,
            "key": frame.item.key,
            "style": run.style.name,
            "status": "ok" if frame.ok else "failed",
            "error": frame.error,
            "outputs": dict(frame.outputs) if frame.ok else {},
            **(frame.urls if frame.ok else {}),
            "seed": frame.seed,
            "quality": frame.quality,
            "quality_parts": dict(frame.quality_parts),
            "passed": passed(frame, run) if frame.ok else None,
            "attempts": len(frame.attempts),
            "timings": {k: round(v, 6) for k, v in frame.timings.items()},
        }

    def metadata(self, frame: Frame, run: StyleRun) -> dict:
        """Everything needed to understand or reproduce one result."""
        width, height = frame.image.size
        return {
            "input": frame.item.display,
            "key": frame.item.key,
            "original_size": list(frame.original_size or ()),
            "size": [width, height],
            "style": run.style.name,
            "room": self.config.room,
            "prompt": run.settings.prompt,
            "negative_prompt": run.settings.negative_prompt,
            "seed": frame.seed,
            "models": self.stack.spec.ids(),
            "settings": self.config.settings_json(run.style),
            "objects": [o.to_json() for o in frame.objects],
            "preserve": {"labels": sorted(self.config.preserve), "mask": frame.mask_source,
                         "kept_area": round(float(frame.keep.mean()), 4) if frame.keep is not None else 0.0},
            "quality": {"score": frame.quality, **frame.quality_parts, "threshold": run.threshold,
                        "passed": passed(frame, run), "attempts": frame.attempts},
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

    def plan(self, items: list[Item], result: RunResult) -> tuple[list[Item], dict[str, list[StyleRun]]]:
        """The items still to do and, per input key, the styles still to do; what the journal says is done
        with the same settings is recorded as skipped."""
        use_journal = self.journal is not None and self.config.resume and not self.config.overwrite
        done = self.journal.load() if use_journal else {}
        todo_items, todo = [], {}
        for item in items:
            todo[item.key] = []
            for run in self.styles:
                entry = done.get((item.key, run.settings_hash))
                if entry is not None and entry.get("version") == item.version:
                    record = self.skipped_record(item, run, entry)
                    result.records.append(record)
                    self.on_event("done", record=record)
                else:
                    todo[item.key].append(run)
            if todo[item.key]:
                todo_items.append(item)
        return todo_items, todo

    def run(self, items: list[Item], everything: list[Item] | None = None) -> RunResult:
        """Stream every item through the stages; returns records in input order, styles in the order asked.

        `everything` is the whole input list when `items` is one shard of it: output names are decided
        on the whole list, so shards writing into one output never collide."""
        for run in self.styles:
            run.stems = output_stems(everything or items, run.style.name)
        result = RunResult(settings=self.config.summary_settings())
        self.on_event("start", total=len(items) * len(self.styles))
        start = time.perf_counter()
        todo_items, todo = self.plan(items, result)
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

        def finish(batch: list[Frame]) -> None:
            rendered = self.process(batch, todo)
            for frame, run in rendered:
                writes.append(writers.submit(self.write, frame, run))
            for frame in batch:
                count = len(todo[frame.item.key])
                shared = sum(frame.timings.get(stage, 0.0) for stage in SHARED_STAGES)
                result.shared_seconds_saved += shared * (count - 1)
            if self.config.fail_fast and any(not f.ok for f, _ in rendered):
                result.stopped = "fail-fast"
                self.stop.set()

        try:
            for batch in size_batches(self.frames(todo_items, readers), self.config.batch_size):
                if self.stop.is_set():
                    break
                finish(batch)
                drain(self.config.batch_size * 2 * len(self.styles))
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
        result.oom = self.oom_events
        result.batching = self.batching()
        order = {item.key: i for i, item in enumerate(items)}
        styles = {run.style.name: i for i, run in enumerate(self.styles)}
        result.records.sort(key=lambda r: (order.get(r["key"], len(order)), styles.get(r.get("style"), 0)))
        result.seconds = time.perf_counter() - start
        return result

    def _close_journal(self, result: RunResult) -> None:
        if self.journal is None:
            return
        try:
            self.journal.close()
        except (OSError, ModomoError) as exc:
            result.fatal = result.fatal or f"cannot write the journal: {exc}"


def fork(frame: Frame, style: str, styles: int) -> Frame:
    """The frame of one style: shares the photo and its detections, depth and errors; owns its result.
    The shared stages' time is split evenly across the styles, so the stage table adds up."""
    return Frame(
        item=frame.item, seed=frame.seed, image=frame.image, original_size=frame.original_size,
        objects=frame.objects, depth=frame.depth, error=frame.error, style=style, keep=frame.keep,
        mask_source=frame.mask_source,
        timings={k: v / styles for k, v in frame.timings.items()},
    )


def passed(frame: Frame, run: StyleRun) -> bool:
    return frame.quality is not None and frame.quality >= run.threshold
