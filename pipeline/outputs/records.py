"""One record per input and style: what the summary, the report and every engine's merge speak of."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pipeline.frames import Item

STATUSES = ("ok", "failed", "skipped")
URL_FIELDS = ("transformed_url", "thumbnail_url")


@dataclass
class ImageRecord:
    """The outcome of one input in one style. `id` is the input's identity (root and relative key)."""

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
    fidelity: dict = field(default_factory=dict)  # edges_f1, depth_rmse, kept_delta_e (pipeline.stages.fidelity)
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

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        data = asdict(self)
        urls = data.pop("urls")
        return {**data, **{k: urls[k] for k in URL_FIELDS if k in urls}}

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
        )
