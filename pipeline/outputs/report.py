"""report.html: what a designer looks at, and sends on to a client.

The run summary (facts, a per-stage bar chart), then every job as a card with its variations side by side
(thumbnails, seed, quality), filterable by status and style, sortable by input or by quality, and a viewer
with a before/after slider, the control maps and the stage timings of the opened job.

It scales to a catalogue: the page is built from the summary alone (no per-result reads, so 5,000 jobs on
R2 cost one upload), the jobs are embedded once as JSON, and a small inline script renders at most
PAGE_SIZE cards at a time with lazy-loaded thumbnails. The page's state lives in the URL fragment
(`report.html#status=failed&sort=quality&page=2`), so a view can be bookmarked or sent as a link.

Self-contained: inline CSS and script, no fonts or scripts from anywhere; images are referenced relative
to the report (or by CDN URL for R2 outputs with CDN_DOMAIN set).
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from pipeline import __version__
from pipeline.stages.timing import STAGES

PAGE_SIZE = 100  # cards in the DOM at once: enough to review, few enough to stay light at 5,000 jobs
MAP_KINDS = ("depth", "edges", "lines", "masks", "removal", "region")
ASSETS = Path(__file__).resolve().parents[1] / "data" / "report"  # the page's stylesheet, script and viewer
CSS = (ASSETS / "report.css").read_text()
SCRIPT = (ASSETS / "report.js").read_text()
VIEWER = (ASSETS / "viewer.html").read_text()
STATUS_LABELS = {"ok": "ok", "failed": "failed", "skipped": "done before"}
HISTORY_ROWS = 50


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _href(link: str | None) -> str:
    """A link as the page uses it: URLs as they are, file paths percent-encoded (spaces, `#`, `?`, `:`)."""
    if not link:
        return ""
    return link if re.match(r"^https?://", link) else quote(link)


def embed_json(data) -> str:
    """JSON that is safe inside a <script> element: no `<`, `>` or `&` survives to end it or open a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, code in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, code)
    return text


def _round(value, digits: int):
    """Floats cut to what a reader can tell apart: every digit is bytes in a 5,000-job page."""
    return round(value, digits) if isinstance(value, float) else value


def variations(record: dict) -> list[dict]:
    """Every result of the job, best first; a record without `variations` (older runs) is its own single one."""
    if record.get("variations"):
        return record["variations"]
    if record.get("status") == "failed" or not record.get("outputs", {}).get("result"):
        return []
    return [
        {
            "n": 1,
            "seed": record.get("seed"),
            "quality": record.get("quality"),
            "passed": record.get("passed"),
            "outputs": record.get("outputs", {}),
            "transformed_url": record.get("transformed_url"),
            "thumbnail_url": record.get("thumbnail_url"),
        }
    ]


class FolderLinks:
    """`sink.link` for thousands of files, asked once per folder.

    A local sink resolves its root on every call (a third of a millisecond: seconds for a catalogue), and
    both sinks build a file's link as its folder's link plus its quoted name, so the folder's is reused.
    """

    PROBE = "x"

    def __init__(self, sink):
        self.sink = sink
        self.folders: dict[str, str | None] = {}

    def __call__(self, location: str | None) -> str:
        if not location:
            return ""
        folder, slash, name = location.rpartition("/")
        if not slash or not folder:
            return _href(self.sink.link(location))
        if folder not in self.folders:
            probe = _href(self.sink.link(f"{folder}/{self.PROBE}"))
            fits = probe == self.PROBE or probe.endswith("/" + self.PROBE)  # else: a sink that links otherwise
            self.folders[folder] = probe[: -len(self.PROBE)] if fits else None
        base = self.folders[folder]
        return base + quote(name) if base is not None else _href(self.sink.link(location))


def _variation(variation: dict, link: FolderLinks) -> list:
    """One variation as the page's compact row: [n, seed, quality, passed, result href, thumbnail href]."""
    outputs = variation.get("outputs") or {}
    result = link(outputs.get("result")) or _href(variation.get("transformed_url"))
    thumb = link(outputs.get("thumbnail")) or _href(variation.get("thumbnail_url"))
    return [
        variation.get("n", 1),
        variation.get("seed"),
        _round(variation.get("quality"), 4),
        variation.get("passed"),
        result,
        thumb,
    ]


def job_data(record: dict, link: FolderLinks) -> dict:
    """One job as the page's compact JSON; empty fields are left out to keep 5,000 jobs light.

    k key, s style, t status, e error, r room, q quality, p passed, a attempts, qp quality parts, fd fidelity,
    tm stage seconds, in the input as the models saw it, mp control maps, v variations (see `_variation`),
    g room set, an the set's anchor, rf style reference (see `reference_data`), og the published original, m the
    mode when not a restyle (declutter, stage).
    """
    outputs = record.get("outputs") or {}
    job = {
        "k": record.get("key") or record.get("input") or "",
        "s": record.get("style") or "",
        "t": record.get("status", "ok"),
    }
    optional = {
        "e": record.get("error"),
        "r": record.get("room"),
        "q": _round(record.get("quality"), 4),
        "p": record.get("passed"),
        "a": record.get("attempts") if (record.get("attempts") or 0) > 1 else None,
        "qp": {k: _round(v, 3) for k, v in (record.get("quality_parts") or {}).items() if isinstance(v, float)},
        "fd": fidelity_text(record.get("fidelity") or {}),
        "tm": {k: _round(v, 3) for k, v in in_order(record.get("timings") or {}) if isinstance(v, (int, float))},
        "in": link(outputs.get("input")) or None,
        "mp": {k: link(outputs[k]) for k in MAP_KINDS if outputs.get(k)},
        "v": [_variation(v, link) for v in variations(record)],
        "g": record.get("set"),
        "an": True if record.get("anchor") else None,
        "rf": reference_data(record, link),
        "og": record.get("original_url") or link(outputs.get("original")) or None,
        "m": record.get("mode") if record.get("mode") not in (None, "restyle") else None,
    }
    job.update({k: v for k, v in optional.items() if v not in (None, {}, [])})
    return job


def reference_data(record: dict, link: FolderLinks) -> dict:
    """The job's style reference for the page: h preview href, sc scale, src its name (a set member's: anchor key)."""
    # Only the reference's file name: the full path is of the user's machine, and the page goes to clients.
    reference = record.get("reference") or {}
    if not reference:
        return {}
    member = bool(reference.get("anchor")) or bool(record.get("set") and not record.get("anchor"))
    source = str(reference.get("source") or "")
    data = {
        "h": link(reference.get("preview")) or None,
        "sc": _round(reference.get("scale"), 3),
        "src": (source if member else re.split(r"[/\\]", source.rstrip("/\\"))[-1]) or None,
        "a": 1 if member else None,
    }
    return {k: v for k, v in data.items() if v is not None}


def fidelity_text(fidelity: dict) -> str | None:
    """A result's fidelity in one line: edge F1, depth error, the kept region's colour difference, and what a
    declutter left."""
    parts = []
    if fidelity.get("edges_f1") is not None:
        parts.append(f"edges F1 {fidelity['edges_f1']:.3f}")
    if fidelity.get("depth_rmse") is not None:
        parts.append(f"depth RMSE {fidelity['depth_rmse']:.3f}")
    kept = fidelity.get("kept_delta_e")
    if kept:
        parts.append(f"kept \u0394E max {kept['max']:.2f}, mean {kept['mean']:.2f}")
    return " \u00b7 ".join(parts + declutter_text(fidelity) + stage_text(fidelity)) or None


def declutter_text(fidelity: dict) -> list[str]:
    """What a declutter left, as the job card shows it: objects found inside what was taken out, the share of it
    the scene calls movable, and the seam's colour difference."""
    parts = []
    if fidelity.get("objects_left") is not None:
        parts.append(f"objects left {fidelity['objects_left']}")
    if fidelity.get("movable_left") is not None:
        parts.append(f"movable left {fidelity['movable_left']:.1%}")
    seam = fidelity.get("seam_delta_e")
    if seam:
        parts.append(f"seam \u0394E mean {seam['mean']:.2f}, p95 {seam['p95']:.2f}")
    return parts


def stage_text(fidelity: dict) -> list[str]:
    """What a staging made, as the job card shows it: the share of its region that became furniture and the
    expected pieces found, new openings, the architecture's edge F1."""
    parts = []
    added = fidelity.get("furniture_added")
    if added:
        pieces = ", ".join(f"{count} {label}" for label, count in (added.get("pieces") or {}).items())
        pieces = f" ({pieces})" if pieces else ""
        parts.append(f"furniture added {added['share']:.1%}{pieces}")
    if fidelity.get("openings_added") is not None:
        parts.append(f"openings added {fidelity['openings_added']:.1%}")
    if fidelity.get("architecture_edges_f1") is not None:
        parts.append(f"architecture edges F1 {fidelity['architecture_edges_f1']:.3f}")
    return parts


def in_order(timings: dict) -> list[tuple[str, float]]:
    """Stage timings in pipeline order (stages modomo does not know last, by name)."""
    return sorted(timings.items(), key=lambda kv: (STAGES.index(kv[0]) if kv[0] in STAGES else len(STAGES), kv[0]))


def stage_bars(stages: dict) -> str:
    """Where the time per image goes, as bars scaled to the largest share."""
    if not stages:
        return ""
    top = max((row["share"] for row in stages.values()), default=0) or 1.0
    rows = []
    for name, row in in_order(stages):
        width = max(0.5, 100 * row["share"] / top)
        rows.append(
            f'<div class="bar"><span>{_e(name)}</span><div class="track"><i style="width:{width:.1f}%">'
            f"</i></div><em>{row['mean']:.3f} s &middot; {row['share']:.1%}</em></div>"
        )
    return '<div class="bars"><h3>Time per image by stage (mean)</h3>' + "".join(rows) + "</div>"


def facts(summary: dict) -> str:
    """The output at a glance: its jobs, results, quality, throughput and cost (a run's summary also works)."""
    counts, cost = summary["counts"], summary["cost"]
    quality = summary.get("quality") or {}
    results = sum(len(r.get("variations") or []) or (r.get("status") != "failed") for r in summary["images"])
    jobs = f"{counts['ok']:,} ok &middot; {counts['failed']:,} failed" + (
        f" &middot; {counts['skipped']:,} done before" if counts.get("skipped") else ""
    )
    items = [
        ("jobs", jobs),
        ("results", f"{results:,}"),
        ("mean quality", f"{quality['mean']:.3f}" if quality.get("mean") is not None else "n/a"),
        (
            "at or above threshold",
            f"{quality['success_rate']:.0%}" if quality.get("success_rate") is not None else "n/a",
        ),
        ("images / minute", f"{summary.get('images_per_minute', 0.0):.1f}"),
        ("cost / image", f"{cost['per_image']:.4f} {_e(cost['currency'])}"),
        ("total cost", f"{cost['total']:.4f} {_e(cost['currency'])}"),
    ]
    if "history" in summary:
        items.append(("runs", f"{len(summary['history']):,}"))
    if "load_seconds" in summary:
        items.append(("model load", f"{summary['load_seconds']:.1f} s"))
    return '<div class="facts">' + "".join(f'<div class="fact">{_e(n)}<b>{v}</b></div>' for n, v in items) + "</div>"


def history_table(history: list[dict]) -> str:
    """The runs that made the output, newest first: when, how, and what each did."""
    if not history:
        return ""
    head = "".join(
        f"<th>{_e(h)}</th>"
        for h in ("finished", "engine", "device", "jobs done", "failed", "already done", "images / min", "cost")
    )
    rows = []
    for run in reversed(history[-HISTORY_ROWS:]):
        cells = (
            run.get("finished", "").replace("T", " ").removesuffix("+00:00") + " UTC",
            run.get("engine", ""),
            run.get("device", ""),
            f"{run.get('jobs', 0):,}",
            f"{run.get('failed', 0):,}",
            f"{run.get('skipped', 0):,}",
            f"{run.get('images_per_minute', 0.0):.1f}",
            f"{run.get('cost', 0.0):.4f} {run.get('currency', '')}",
        )
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    more = f"<p>{len(history) - HISTORY_ROWS:,} earlier runs not shown.</p>" if len(history) > HISTORY_ROWS else ""
    return (
        f'<details class="history"><summary>How this output was made: {len(history):,} run(s)</summary>'
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
        f"{more}</details>"
    )


def _options(name: str, label: str, choices: list[tuple[str, str]]) -> str:
    """A labelled <select>; the script sets its value from the URL."""
    options = "".join(f'<option value="{_e(value)}">{_e(text)}</option>' for value, text in choices)
    return f'<label>{label}<select id="f-{name}">{options}</select></label>'


def toolbar(summary: dict, jobs: list[dict]) -> str:
    """Filters (status, style, file name), the sort, and the pager; the script keeps them in the URL."""
    counts = summary["counts"]
    statuses = [("", f"all ({len(jobs):,})")] + [
        (s, f"{label} ({counts.get(s, 0):,})") for s, label in STATUS_LABELS.items() if s != "skipped" or counts.get(s)
    ]
    names = list(dict.fromkeys([*summary.get("styles", {}).get("names", []), *(j["s"] for j in jobs if j["s"])]))
    per_style = {name: sum(j["s"] == name for j in jobs) for name in names}
    styles = [("", "all styles")] + [(n, f"{n} ({per_style[n]:,})") for n in names]
    sorts = [("input", "input name"), ("quality", "quality, worst first"), ("-quality", "quality, best first")]
    return (
        '<nav class="toolbar">'
        + _options("status", "status", statuses)
        + _options("style", "style", styles)
        + _options("sort", "sort by", sorts)
        + '<label>find<input id="f-q" type="search" placeholder="file name" aria-label="find by file name"></label>'
        + '<div class="pager top"></div></nav>'
    )


def heading(summary: dict) -> str:
    """The dark header: styles, room, size, steps, device, when and by which version."""
    settings = summary.get("settings", {})
    styles = ", ".join(summary.get("styles", {}).get("names", [])) or settings.get("style", "")
    device = summary.get("device")
    device_name = device.get("name", "") if isinstance(device, dict) else (device or "")
    line = " &middot; ".join(
        _e(part)
        for part in (
            styles,
            settings.get("room", ""),
            f"{settings.get('size', '')} px" if settings.get("size") else "",
            f"{settings.get('steps')} steps" if settings.get("steps") else "",
            device_name,
        )
        if part
    )
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    stopped = (
        f'<div class="stopped">The run stopped early: {_e(summary["stopped"])}</div>' if summary.get("stopped") else ""
    )
    return (
        f'<header class="top"><h1>modomo report</h1><p>{line}</p>'
        f"<p>{created} &middot; modomo {__version__}</p></header>{stopped}"
    )


def render(summary: dict, jobs: list[dict]) -> str:
    """The whole page; `jobs[i]` is `job_data` of `summary['images'][i]`."""
    script = SCRIPT.replace("__PAGE__", str(PAGE_SIZE))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>modomo report</title><style>{CSS}</style></head><body>"
        f"{heading(summary)}<main>{facts(summary)}{stage_bars(summary.get('stages', {}))}"
        f"{history_table(summary.get('history', []))}"
        f"{toolbar(summary, jobs)}<div id=grid></div><p id=empty hidden>No jobs match these filters.</p>"
        '<div class="pager bottom"></div>'
        "<noscript><p>The list of images needs JavaScript.</p></noscript></main>"
        f"{VIEWER}<script type=application/json id=jobs>{embed_json(jobs)}</script>"
        f"<script>{script}</script></body></html>"
    )


def write_report(summary: dict, sink) -> str:
    """Render report.html from the summary alone and write it into the output; its location.

    Everything the page shows comes from the records, so no result's metadata is read back: on R2 that
    would be one GET per job.
    """
    link = FolderLinks(sink)
    jobs = [job_data(record, link) for record in summary["images"]]
    page = render(summary, jobs)
    return sink.write("report.html", page.encode("utf-8"), "text/html; charset=utf-8")
