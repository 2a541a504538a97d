"""The batch loop: read ahead -> detect -> segment -> depth -> (per style) edges -> generate -> validate
-> write behind.

Reading/decoding and encoding/writing run on bounded thread pools so the main thread only runs
models. The style-independent stages run once per photo however many styles are asked for. A bad
image becomes a failed record and the batch goes on.

A Runner is set up once per process (stages, output names for the whole input list, the journal
read once), then streams any number of input lists through `run` or `stream`: the Ray engine's
actors hand it one batch at a time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pipeline.config import RunConfig
from pipeline.errors import ImageError, ModomoError, one_line
from pipeline.frames import Frame, Item
from pipeline.inputs import imaging
from pipeline.inputs.seeds import item_seed, retry_seed
from pipeline.models import lora
from pipeline.models.compiled.denoisers import for_run
from pipeline.models.compiled.reports import run_report
from pipeline.models.load import ModelStack
from pipeline.models.precision import dtype_of
from pipeline.models.runtime import synchronize
from pipeline.outputs.journal import Journal
from pipeline.outputs.names import stems_for
from pipeline.outputs.records import ImageRecord
from pipeline.outputs.sinks import LocalSink, OutputError, R2Sink
from pipeline.outputs.writer import OutputWriter
from pipeline.run.anchors import SetReferences
from pipeline.run.batching import batching_report, size_batches
from pipeline.run.forks import fork, variations_of
from pipeline.run.owners import content_digest
from pipeline.run.prefetch import read_ahead
from pipeline.run.result import RunResult
from pipeline.run.resume import split_items
from pipeline.run.style_run import StyleRun, attempt_json, attempt_state, rank, restore, style_run, style_scorer
from pipeline.stages.depth import DepthEstimator
from pipeline.stages.detect import Detector
from pipeline.stages.generate import Generator, PlainDiffusersGenerator
from pipeline.stages.offload import MemoryState, ModelPlacer
from pipeline.stages.preserve import Compositor, Preserver, little_left
from pipeline.stages.room import RoomClassifier
from pipeline.stages.segment import Segmenter
from pipeline.stages.timing import timed
from pipeline.stages.upscale import output_size
from pipeline.stages.validate import Validator
from styles import AUTO_ROOM, Style

SHARED_STAGES = ("read", "detect", "segment", "depth", "scene", "preserve")
Event = Callable[..., None]
Todo = dict[str, list]  # input identity -> the StyleRuns still to do for it


class Runner:
    """Builds every stage once from a loaded ModelStack, then streams inputs through them."""

    def __init__(
        self,
        config: RunConfig,
        stack: ModelStack,
        sink: LocalSink | R2Sink,
        on_event: Event | None = None,
        journal: Journal | None = None,
    ):
        self.config = config
        self.stack = stack
        self.sink = sink
        self.journal = journal
        self.on_event = on_event or (lambda *args, **kwargs: None)
        self.stop = threading.Event()
        self.memory = MemoryState(placer=ModelPlacer(stack.pipe, stack.device) if stack.pipe is not None else None)
        device = stack.device
        depth = DepthEstimator(stack.depth_model, stack.depth_processor, device, dtype_of(stack.depth_model))
        self.validator = Validator(depth, style_scorer(config, stack))
        self.shared = [
            ("detect", Detector(stack.yolo, str(device), also=("person",) if config.declutters else ())),
            ("segment", Segmenter(stack.sam2)),
            ("depth", depth),
        ]
        self.rooms = RoomClassifier(*stack.clip, device, dtype_of(stack.clip[0])) if stack.clip is not None else None
        mask_dir = Path(config.options.mask_dir) if config.options.mask_dir else None
        preserver = Preserver(config.keep_labels, mask_dir, restyles=self.restyles)
        self.compositor = Compositor() if preserver.active or config.job_keeps or config.declutters else None
        if (config.keeps_parts or config.declutters) and stack.segmenter is not None:  # the room's parts, once
            from pipeline.stages.architecture import SceneSegmenter

            model, processor = stack.segmenter
            self.shared.append(("scene", SceneSegmenter(model, processor, device, dtype_of(model))))
        if preserver.active or config.job_keeps:  # a declutter keeps what --preserve names in its own mask
            self.shared.append(("preserve", preserver))
        self.upscaler = None
        if config.options.output_size != "working":  # results at the photo's own size, or a given long side
            from pipeline.stages.upscale import Upscaler

            self.upscaler = Upscaler(stack.upscaler, device)
        self.reference_embeds: dict = {}  # each reference's image embedding, once for every style of the run
        self.denoisers = for_run(stack, config.options.compile)  # --compile's packages, for every style
        self.styles = [self._style_run(style) for style in [*config.styles, *config.job_styles]]
        self.by_name = {run.style.name: run for run in self.styles}
        self.default_runs = self.styles[: len(config.styles)]
        self.uses_loras = any(run.loras for run in self.styles)
        if self.uses_loras:
            lora.load(stack.pipe, [entry for run in self.styles for entry in run.loras])
        self.writer = OutputWriter(config, sink, journal, config.result_models(stack.spec), str(stack.device))
        self.prepared_for: int | None = None  # id() of the input list output names were decided on
        self._done: dict | None = None  # the journal, read once
        self.sets = SetReferences(config, sink)  # what room sets' later photos follow

    def _style_run(self, style: Style) -> StyleRun:
        settings = self.config.generate_settings(style)
        return style_run(self.config, self.stack, style, settings, self._generator, dict(self.shared))

    def _generator(self, settings) -> Generator | PlainDiffusersGenerator:
        """A generator for these settings: the run's own loop (one memory state and reference cache for all), or
        the plain diffusers one (--backend diffusers)."""
        if self.config.backend == "diffusers":
            return PlainDiffusersGenerator(self.stack.pipe, settings)
        stack = self.stack
        return Generator(
            stack.pipe, settings, stack.device, self.config.speed, self.memory, self.reference_embeds, self.denoisers
        )

    @property
    def oom_events(self) -> list[dict]:
        return list(self.memory.events)

    def batching(self) -> dict:
        """Generate calls over every style, retries included, and the mean frames per call."""
        calls = sum(run.generator.calls for run in self.styles)
        rendered = sum(run.generator.rendered for run in self.styles)
        return batching_report(self.config.options.batch_size, calls, rendered)

    def restyles(self, item: Item) -> bool:
        """Whether any of an input's jobs is a restyle (a declutter or a staging keeps things in its own mask)."""
        return any(run.style.mode == "restyle" for run in self.runs_for(item))

    # -- reading ------------------------------------------------------------------------------
    def runs_for(self, item: Item) -> list[StyleRun]:
        """The styles an input is restyled in: its manifest row's, else the command's."""
        job = item.job
        if job is not None and job.styles:  # a failed row too: it is reported under its own style(s)
            return [self.by_name[name] for name in job.styles]
        return self.default_runs

    def read(self, item: Item) -> Frame:
        """Fetch, decode and size one input; a bad one comes back failed, never raised."""
        job = item.job
        room = job.room if job is not None and job.room else self.config.options.room
        frame = Frame(item=item, seed=item_seed(self.config.options.seed, item), room=room)
        if job is not None and job.error:
            frame.fail(job.error)
            return frame
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
            frame.input_digest = content_digest(data)
            if self.config.signing is not None:
                frame.source = data
            frame.capture = dict(image.info.get("capture") or {})
            frame.image = imaging.resize_to(image, imaging.fit_size(*image.size, self.config.long_side))
            if self.upscaler is not None or self.config.options.publish_originals:
                frame.original = image  # the photo's own pixels: results leave the working size, or it is published
            if self.upscaler is not None:
                frame.target_size = output_size(image.size, frame.image.size, self.config.output_long_side)
        return frame

    def frames(self, items: list[Item], pool: ThreadPoolExecutor) -> Iterator[Frame]:
        """Frames in input order, fetched and decoded ahead on the pool within a bounded window."""
        return read_ahead(
            items, self.read, pool, window=self.config.options.batch_size * 2 + self.config.options.workers
        )

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
                for frame in live:
                    frame.fail(f"{name} failed: {one_line(exc)}")

    def process(self, batch: list[Frame], todo: Todo) -> list[tuple[list[Frame], StyleRun]]:
        """Shared stages once per photo, then each requested style; returns, per (input, style), the frames
        of its variations (one unless --variations asks for more)."""
        for name, stage in self.shared:
            self.run_stage(name, stage, batch)
        for frame in batch:  # what they warn of (a keep mask leaving next to nothing to restyle), told at once
            for line in frame.warnings:
                self.on_event("warning", frames=[frame], message=line)
        if self.rooms is not None:
            self.run_stage("room", self.rooms, [f for f in batch if f.room == AUTO_ROOM])
        out: list[tuple[list[Frame], StyleRun]] = []
        for run in self.styles:
            forks = [
                self.sets.attach(fork(f, run, len(todo[f.item.identity]), self.config.prompt_room), run.style)
                for f in batch
                if run in todo[f.item.identity]
            ]
            if not forks:
                continue
            if self.uses_loras:
                lora.activate(self.stack.pipe, run.loras)
            for name, stage in run.prepare:
                self.run_stage(name, stage, forks)
            jobs = [variations_of(f, self.config.variations_for(run.style, f.item.job)) for f in forks]
            frames = [frame for job in jobs for frame in job]
            self.run_stage("generate", run.generator, frames)
            if self.compositor:
                self.run_stage("compose", self.compositor, frames)
            for name, stage in run.finish:
                self.run_stage(name, stage, frames)
            self.run_stage("validate", lambda live, run=run: self.validate(live, run), frames)
            self.retry(frames, run)
            if self.upscaler is not None:
                self.run_stage("upscale", self.upscaler, frames)
            out += [(job, run) for job in jobs]
        return out

    def validate(self, frames: list[Frame], run: StyleRun) -> list[Frame]:
        """Each result scored; a declutter's checked too, with the run's own detector, segmenter and scene models,
        for what it left (one that left objects scores 0)."""
        check = run.checker(dict(self.shared))  # None for a restyle
        return self.validator.judge(self.validator(frames), check)

    def retry(self, frames: list[Frame], run: StyleRun) -> None:
        """Render again, with a new seed derived from the job (and its variation), every result below the
        style's quality threshold, up to --retries times; keep the best attempt. Retries are timed into
        generate and validate, so they count in time and cost. A declutter's retry of a result that left objects
        grows the removal mask a step and fills it again before generating."""
        for frame in frames:
            if frame.ok and frame.quality is not None:
                frame.attempts = [attempt_json(frame)]
        for attempt in range(1, self.config.options.retries + 1):
            low = [f for f in frames if f.ok and f.quality is not None and f.quality < run.threshold]
            low = [f for f in low if not little_left(f.keep)]  # next to nothing to change: no retry can help
            if not low:
                return
            best = {id(f): attempt_state(f) for f in low}
            for frame in low:
                frame.seed = retry_seed(self.config.options.seed, frame.item, frame.variation, attempt)
            self.on_event("stage", frames=low, stage=f"retry {attempt}")
            try:
                run.regrow(low, self.stack.device)  # a declutter's larger mask, filled again
                with timed(low, "generate", self.stack.device):
                    run.generator(low)
                    if self.compositor:
                        self.compositor(low)
                for name, stage in run.finish:
                    with timed(low, name, self.stack.device):
                        stage(low)
                with timed(low, "validate", self.stack.device):
                    self.validate(low, run)
            except Exception as exc:  # noqa: BLE001 - a failed retry keeps the result already made, and says so
                synchronize(self.stack.device)
                self.retry_failed(low, best, attempt, exc)
                continue
            for frame in low:
                frame.attempts.append(attempt_json(frame))
                if rank(attempt_state(frame)) < rank(best[id(frame)]):
                    restore(frame, best[id(frame)])

    def retry_failed(self, frames: list[Frame], best: dict, attempt: int, exc: Exception) -> None:
        """A retry that raised: each frame keeps its best result, its metadata lists the attempt with its
        error, an event says so, and the next retry goes ahead."""
        reason = one_line(exc)
        for frame in frames:
            frame.attempts.append({"seed": frame.seed, "error": reason})
            restore(frame, best[id(frame)])
        self.on_event("retry_failed", frames=frames, attempt=attempt, error=reason)

    # -- the loop -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Finish the batch in hand, write what it made, and stop (the first Ctrl-C)."""
        self.stop.set()

    def prepare(self, everything: list[Item]) -> None:
        """Decide every style's output names on the whole input list (once per list), so shards, device
        workers and Ray actors writing into one output never collide."""
        if self.prepared_for != id(everything):
            self.sets.prepare(everything)
            count = {item: len(self.runs_for(item)) for item in everything}
            for run in self.styles:
                run.stems = stems_for(everything, run.style.name, self.config, count.get)
            self.prepared_for = id(everything)

    def done(self) -> dict:
        """What the journal says is finished, read once per Runner (empty without resume)."""
        if self._done is None:
            use = self.journal is not None and self.config.options.resume and not self.config.options.overwrite
            self._done = self.journal.load() if use else {}
        return self._done

    def todo_of(self, items: list[Item], result: RunResult) -> tuple[list[Item], Todo]:
        """The items still to do and, per input, the styles still to do; what the journal says is done
        with the same settings and the same input (here or at its old place) is recorded as skipped, and a job
        whose name another photo's result holds as failed."""
        from pipeline.run.owners import Owners

        work = split_items(
            items,
            lambda item: [run.style.name for run in self.runs_for(item)],
            {run.style.name: run.settings_hash for run in self.styles},
            self.done(),
            self.sink,
            {run.style.name: run.stems for run in self.styles},
            Owners(self.journal.lines() if isinstance(self.journal, Journal) else []),
        )
        self.writer.was.update(work.was)
        for record in work.records:
            result.records.append(record)
            self.on_event("done", record=record)
        todo = {item.identity: [self.by_name[name] for name in work.todo.get(item.identity, [])] for item in items}
        return [item for item in items if todo[item.identity]], todo

    def run(self, items: list[Item], everything: list[Item] | None = None) -> RunResult:
        """Stream every item through the stages; returns records in input order, styles in the order asked.

        `everything` is the whole input list when `items` is one shard of it: output names are decided
        on the whole list, so shards writing into one output never collide."""
        self.prepare(everything or items)
        result = RunResult(settings=self.config.summary_settings())
        self.on_event("start", total=sum(len(self.runs_for(item)) for item in items))
        start = time.perf_counter()
        todo_items, todo = self.todo_of(items, result)
        if self.denoisers:  # the images this run will generate: what --compile auto weighs a compile against
            self.denoisers.expect(sum(len(runs) for runs in todo.values()) * (self.config.options.variations or 1))
        try:
            self.stream(todo_items, todo, result)
        finally:
            self._close_journal(result)
        self.finish(result, items, time.perf_counter() - start)
        return result

    def stream(self, items: list[Item], todo: Todo, result: RunResult) -> None:
        """Every input that follows no anchor (room sets' anchors among them) first, written in full; then the sets'
        other photos, each following its anchor's result. Records land in `result`."""
        from pipeline.inputs.sets import anchors_first

        first, later = anchors_first(items)
        self.stream_pass(first, todo, result)
        if later and not self.stop.is_set():
            self.sets.note(result.records)
            self.sets.load(
                [(item, run.style) for item in later for run in todo[item.identity]], self.config.options.workers
            )
            self.stream_pass(later, todo, result)

    def stream_pass(self, items: list[Item], todo: Todo, result: RunResult) -> None:
        """Read ahead, process in batches of one size, write behind; records land in `result`."""
        if not items:
            return
        writes: deque[Future] = deque()
        readers = ThreadPoolExecutor(self.config.options.workers, thread_name_prefix="modomo-read")
        writers = ThreadPoolExecutor(max(1, self.config.options.workers // 2), thread_name_prefix="modomo-write")
        try:
            for batch in size_batches(self.frames(items, readers), self.config.photos_per_batch):
                if self.stop.is_set():
                    break
                self.finish_batch(batch, todo, result, writes, writers)
                self.drain(writes, result, self.config.options.batch_size * 2 * len(self.styles))
        except KeyboardInterrupt:  # the second Ctrl-C: abandon the batch in hand, keep what is written
            result.interrupted = True
        finally:
            readers.shutdown(wait=True, cancel_futures=True)
            self.drain(writes, result, 0)
            writers.shutdown(wait=True)

    def finish_batch(
        self, batch: list[Frame], todo: Todo, result: RunResult, writes: deque, writers: ThreadPoolExecutor
    ) -> None:
        rendered = self.process(batch, todo)
        for frames, run in rendered:
            writes.append(writers.submit(self.write, frames, run))
        for frame in batch:
            count = len(todo[frame.item.identity])
            shared = sum(frame.timings.get(stage, 0.0) for stage in SHARED_STAGES)
            result.shared_seconds_saved += shared * (count - 1)
        if self.config.options.fail_fast and any(not f.ok for frames, _ in rendered for f in frames):
            result.stopped = "fail-fast"
            self.stop.set()

    def write(self, frames: list[Frame], run) -> ImageRecord:
        """A job written (on a writer thread), then its frames' pictures let go."""
        try:
            return self.writer.write(frames, run)
        finally:
            for frame in frames:
                frame.release()

    def drain(self, writes: deque, result: RunResult, limit: int) -> None:
        """Collect finished writes until at most `limit` are in flight; an output error stops the run."""
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

    def finish(self, result: RunResult, items: list[Item], seconds: float) -> None:
        """How the run ended, memory events, batching, and records in input order, styles as asked."""
        if result.fatal:
            result.stopped = result.fatal
        elif result.interrupted or (self.stop.is_set() and result.stopped is None):
            result.interrupted, result.stopped = True, "interrupted"
        result.oom = self.oom_events
        result.batching = self.batching()
        result.compile = run_report(self.denoisers, self.config.options.compile)
        result.sort(items, [run.style.name for run in self.styles])
        result.seconds = seconds

    def _close_journal(self, result: RunResult) -> None:
        if self.journal is None:
            return
        try:
            self.journal.close()
        except (OSError, ModomoError) as exc:
            result.fatal = result.fatal or f"cannot write the journal: {exc}"
