"""What a room set's later photos follow: each anchor's chosen result per style (made in this run, done before, or
handed to a Ray actor with its set), read back from the output once and turned into their reference."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pipeline.config import RunConfig
from pipeline.frames import Frame, Item, Reference
from pipeline.inputs.references import anchor_reference
from pipeline.inputs.sets import anchor_keys


class SetReferences:
    """Per (anchor, style): the anchor's outputs, and the Reference its set's other photos follow (or why none)."""

    def __init__(self, config: RunConfig, sink):
        self.config = config
        self.sink = sink
        self.keys: dict[str, str] = {}  # each anchor's identity -> its key (for messages and metadata)
        self.outputs: dict[tuple[str, str], dict] = {}  # (anchor identity, style) -> its result's outputs
        self.found: dict[tuple[str, str], Reference | str] = {}

    def prepare(self, everything: list[Item]) -> None:
        self.keys = anchor_keys(everything)

    def note(self, records) -> None:
        """The anchors' results among these records: made now, or done in an earlier run (skipped here: an
        interrupted run resumed, a photo added to a finished set)."""
        for record in records:
            if record.status in ("ok", "skipped") and record.id in self.keys:
                self.outputs[(record.id, record.style)] = dict(record.outputs)

    def load(self, pairs, workers: int) -> None:
        """The anchor results a pass of (item, style) jobs follows, read back and decoded in parallel before the
        pass starts: no output I/O in the model loop."""
        wanted = {
            (item.anchor, style.name): (item, style)
            for item, style in pairs
            if item.anchor and (item.anchor, style.name) not in self.found
        }
        with ThreadPoolExecutor(max(1, workers)) as pool:
            self.found.update(zip(wanted, pool.map(lambda pair: self.read(*pair), wanted.values()), strict=True))

    def attach(self, frame: Frame, style) -> Frame:
        """A style's frame with the reference it follows: a set's later photo its anchor's result in this style
        (failed, naming the set, when there is none), any other its row's, the command's or the style's."""
        item = frame.item
        if not item.anchor:
            frame.reference = self.config.reference_for(style, item.job)
            return frame
        key = (item.anchor, style.name)
        if key not in self.found:
            self.found[key] = self.read(item, style)
        found = self.found[key]
        if isinstance(found, str):
            frame.fail(f"room set {item.group!r}: {found}")
        else:
            frame.reference = found
        return frame

    def read(self, item: Item, style) -> Reference | str:
        """The anchor's chosen result in this style, read back from the output; the reason when there is none."""
        outputs = self.outputs.get((item.anchor, style.name))
        anchor_key = self.keys.get(item.anchor, item.anchor)
        if outputs is None:
            return f"its first photo {anchor_key} has no result in {style.name}"
        try:
            return anchor_reference(self.sink, outputs, item.anchor, anchor_key, self.config.reference_scale(style))
        except ValueError as exc:
            return str(exc)
