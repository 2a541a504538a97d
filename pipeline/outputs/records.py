"""One record per input and style, the one typed description of a job's outcome: the summary, the journal line, the
index's rows, a result's metadata and the report's job are each made from it by one function."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pipeline.frames import Item

STATUSES = ("ok", "failed", "skipped")
URL_FIELDS = ("transformed_url", "thumbnail_url", "original_url")
# Kept for the journal (to resume, and to rebuild the index and report from), beside what the summary always showed.
JOURNAL_FIELDS = ("line", "order", "room_probability", "version", "source", "stem", "was", "settings", "digest",
                "signed", "finished", "mode")  # fmt: skip


@dataclass
class ImageRecord:
    """The outcome of one input in one style. `id` is the input's identity (root and relative key). Outputs are
    located (a path or URL a caller can open); the journal keeps them relative to the output's root."""

    id: str
    input: str
    key: str
    style: str | None
    status: str
    error: str | None = None
    room: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)  # CDN URLs of the uploaded result and thumbnail
    seed: int | None = None
    quality: float | None = None
    quality_parts: dict[str, float] = field(default_factory=dict)
    # edges_f1, depth_rmse, kept_delta_e (pipeline.stages.fidelity); a declutter's objects_left, movable_left and
    # seam_delta_e (pipeline.stages.declutter_check): the index's columns of the same names
    fidelity: dict = field(default_factory=dict)
    passed: bool | None = None
    attempts: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # Every result of the job (--variations), best first: {"n", "seed", "quality", "passed", "outputs", and
    # "transformed_url"/"thumbnail_url" on a CDN}. The record's own outputs, seed and quality are the first's.
    variations: list[dict] = field(default_factory=list)
    retry_errors: int = 0  # quality retries that raised (each listed with its error in the metadata)
    warnings: list[str] = field(default_factory=list)  # one line each, naming the file (e.g. a keep mask of 95 %)
    # Last, so that positional construction elsewhere still lines up.
    set: str | None = None  # the room set the input belongs to
    anchor: bool = False  # the set's first photo, rendered first: its result styles the set's other photos
    # The job's style reference: {"source", "digest", "scale", "preview" (located, like outputs), and for a set's
    # members "anchor", the anchor's identity}; empty for a job without one.
    reference: dict = field(default_factory=dict)
    # What the journal keeps beside (JOURNAL_FIELDS):
    line: int | None = None  # the manifest line of the job
    order: int | None = None  # the style's place among its manifest row's styles (a row of several)
    room_probability: float | None = None  # --room auto's probability for the room found
    version: str | None = None  # the input's version when it was done (a changed file is done again)
    source: str | None = None  # the digest of the input's bytes: the same photo found at another path
    stem: str | None = None  # the style's output stem of the input (names are decided once per output)
    was: str | None = None  # the identity the job had before its input moved, when redone at the new place
    settings: str | None = None  # the hash of everything that shaped the result (resume matches on it)
    digest: str | None = None  # of the result's bytes: a room set's members follow exactly this file
    signed: bool = False  # its files carry C2PA content credentials
    finished: str | None = None  # when it was written (UTC, ISO 8601)
    mode: str | None = None  # restyle, declutter or stage (styles.MODES); None in lines written before it was kept

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        """The record as the summary, events and report show it (outputs located)."""
        data = asdict(self)
        urls = data.pop("urls")
        return {**data, **{k: urls[k] for k in URL_FIELDS if k in urls}}

    def to_journal(self, relative) -> dict:
        """The record as its journal line (`relative` maps a located output to its path in the output): enough to
        skip the job next time, and to rebuild the index, the report and the contact sheet from."""
        ok = self.ok
        reference = dict(self.reference)
        if reference.get("preview"):
            reference["preview"] = relative(reference["preview"])
        return {
            "id": self.id,
            "key": self.key,
            "status": self.status,
            **({"line": self.line} if self.line is not None else {}),
            **({"set": self.set} if self.set else {}),
            **({"anchor": True} if self.anchor else {}),
            **({"reference": reference} if reference else {}),
            "style": self.style,
            **({"order": self.order} if self.order is not None else {}),
            "input": self.input,
            "room": self.room,
            "room_probability": self.room_probability,
            "version": self.version,
            **({"source": self.source} if self.source else {}),
            "stem": self.stem,
            **({"was": self.was} if self.was else {}),
            "settings": self.settings,
            "seed": self.seed,
            "quality": self.quality,
            "passed": self.passed,
            "outputs": _relative(self.outputs, relative) if ok else {},
            **({"digest": self.digest} if self.digest else {}),
            **(self.urls if ok else {}),
            "variations": [{**v, "outputs": _relative(v["outputs"], relative)} for v in self.variations],
            **({"quality_parts": dict(self.quality_parts)} if self.quality_parts else {}),
            **({"fidelity": dict(self.fidelity)} if self.fidelity else {}),
            "attempts": self.attempts,
            **({"signed": True} if self.signed else {}),
            "timings": dict(self.timings),
            "finished": self.finished,
            **({"mode": self.mode} if self.mode else {}),
            **({"error": self.error} if not ok else {}),
        }

    @classmethod
    def from_json(cls, data: dict) -> ImageRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "urls"}
        known.setdefault("id", data.get("key", ""))
        return cls(**known, urls={k: data[k] for k in URL_FIELDS if k in data})

    @classmethod
    def failed(cls, item: Item, style: str | None, reason: str) -> ImageRecord:
        """An input that produced nothing in this style, and why."""
        return cls(item.identity, item.display, item.key, style, "failed", error=reason)

    @classmethod
    def from_journal(cls, item: Item, style: str, entry: dict, status: str, locate=str) -> ImageRecord:
        """An input the journal says is done with these settings (`skipped`, or `ok` for a dead worker's);
        `locate` turns the journal's output-relative paths into locations a caller can open."""
        entry = {**entry, "id": item.identity, "input": item.display, "key": item.key, "style": style}
        return cls.from_entry(entry, locate, status)

    @classmethod
    def from_entry(cls, entry: dict, locate=str, status: str | None = None) -> ImageRecord:
        """A journal line as a record (its status unless another is given), its outputs located."""

        def located(outputs: dict) -> dict:
            return {kind: locate(path) for kind, path in (outputs or {}).items()}

        reference = dict(entry.get("reference") or {})
        if reference.get("preview"):
            reference["preview"] = locate(reference["preview"])
        kept = {name: entry.get(name) for name in JOURNAL_FIELDS if entry.get(name) is not None}
        return cls(
            entry["id"],
            entry.get("input") or entry.get("key", ""),
            entry.get("key", ""),
            entry.get("style"),
            status or entry.get("status", "ok"),
            error=entry.get("error"),
            room=entry.get("room"),
            outputs=located(entry.get("outputs")),
            urls={k: entry[k] for k in URL_FIELDS if k in entry},
            seed=entry.get("seed"),
            quality=entry.get("quality"),
            quality_parts=entry.get("quality_parts") or {},
            fidelity=entry.get("fidelity") or {},
            passed=entry.get("passed"),
            attempts=entry.get("attempts") or 0,
            timings=entry.get("timings") or {},
            variations=[{**v, "outputs": located(v.get("outputs"))} for v in entry.get("variations") or []],
            set=entry.get("set"),
            anchor=bool(entry.get("anchor")),
            reference=reference,
            **{**kept, "signed": bool(entry.get("signed"))},
        )


def _relative(outputs: dict[str, str], relative) -> dict[str, str]:
    return {kind: relative(location) for kind, location in (outputs or {}).items()}
