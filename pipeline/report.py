"""report.html: what a designer looks at. Run summary with a per-stage bar chart, then every image with
a before/after slider, its control maps, style, seed, quality and stage timings.

Self-contained: inline CSS and a few lines of inline script, no fonts or scripts from anywhere;
images are referenced relative to the report (or by CDN URL for R2 outputs with CDN_DOMAIN set).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from urllib.parse import quote

from pipeline import __version__

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f5f3ef;color:#222}
header{background:#2b2a28;color:#f5f3ef;padding:24px 32px}
header h1{margin:0 0 4px;font-size:24px} header p{margin:2px 0;color:#cfcac2}
main{padding:24px 32px;max-width:1280px}
.facts{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.fact{background:#fff;border-radius:8px;padding:10px 14px;min-width:120px;box-shadow:0 1px 2px #0002}
.fact b{display:block;font-size:20px}
.bars{background:#fff;border-radius:8px;padding:14px;box-shadow:0 1px 2px #0002;margin-bottom:24px}
.bar{display:flex;align-items:center;margin:4px 0;font-size:13px}
.bar span{width:90px} .bar i{display:block;height:14px;background:#c0793f;border-radius:3px;margin-right:8px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0003;margin:0 0 24px;padding:16px}
.card h2{font-size:16px;margin:0 0 10px}
.card.failed{border-left:4px solid #b33}
.compare{position:relative;display:inline-block;max-width:100%;line-height:0}
.compare img{max-width:100%;display:block}
.compare .before{position:absolute;top:0;left:0;height:100%;overflow:hidden;width:50%;border-right:2px solid #fff}
.compare .before img{height:100%;width:auto;max-width:none}
.compare input{position:absolute;bottom:8px;left:5%;width:90%}
.row{display:flex;flex-wrap:wrap;gap:16px;margin-top:12px;align-items:flex-start}
.maps img{height:120px;margin-right:6px;border-radius:4px;background:#000}
table{border-collapse:collapse;font-size:13px} td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}
.ok{color:#2a7} .low{color:#b60} .bad{color:#b33}
"""

SCRIPT = """
document.querySelectorAll('.compare').forEach(function (box) {
  var slider = box.querySelector('input'), before = box.querySelector('.before');
  var img = before.querySelector('img'), after = box.querySelector('.after');
  function fit() { img.style.width = after.clientWidth + 'px'; }
  slider.addEventListener('input', function () { before.style.width = slider.value + '%'; });
  window.addEventListener('resize', fit); after.addEventListener('load', fit); fit();
});
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _src(link: str | None) -> str:
    return _e(link) if link and "://" in link else _e(quote(link or ""))


def stage_bars(stages: dict) -> str:
    rows = []
    for name, row in stages.items():
        width = max(1.0, 600 * row["share"])
        rows.append(f'<div class="bar"><span>{_e(name)}</span><i style="width:{width:.0f}px"></i>'
                    f'{row["mean"]:.3f} s &middot; {row["share"]:.1%}</div>')
    return '<div class="bars"><h3>Time per image by stage (mean)</h3>' + "".join(rows) + "</div>"


def card(record: dict, links: dict[str, str], metadata: dict | None) -> str:
    title = f'{_e(record["key"])} &middot; {_e(record.get("style") or "")}'
    if record["status"] == "failed":
        reason = _e(record["error"])
        return f'<section class="card failed"><h2>{title}</h2><p class="bad">failed: {reason}</p></section>'
    quality = record.get("quality")
    mark = "ok" if record.get("passed") else "low"
    parts = (metadata or {}).get("quality", {})
    part_text = ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if isinstance(v, float) and k != "score")
    before, after = links.get("input"), links.get("result")
    compare = (
        f'<div class="compare"><img class="after" src="{_src(after)}" alt="after">'
        f'<div class="before"><img src="{_src(before)}" alt="before"></div>'
        f'<input type="range" min="0" max="100" value="50" aria-label="before / after"></div>'
        if before else f'<img src="{_src(after)}" alt="result" style="max-width:100%">'
    )
    maps = "".join(f'<img src="{_src(links[k])}" alt="{k}" title="{k}">' for k in ("depth", "edges", "masks")
                   if links.get(k))
    timings = "".join(f"<tr><td>{_e(k)}</td><td>{v:.3f} s</td></tr>" for k, v in record.get("timings", {}).items())
    objects = (metadata or {}).get("objects", [])
    found = ", ".join(sorted({o["label"] for o in objects})) or "none"
    status = "skipped (done before)" if record["status"] == "skipped" else "ok"
    quality_text = f"{quality:.3f}" if isinstance(quality, float) else "n/a"
    return (
        f'<section class="card"><h2>{title}</h2>{compare}<div class="row">'
        f'<div><table><tr><th>status</th><td>{status}</td></tr>'
        f'<tr><th>style</th><td>{_e(record.get("style") or "")}</td></tr>'
        f'<tr><th>seed</th><td>{_e(record.get("seed"))}</td></tr>'
        f'<tr><th>quality</th><td class="{mark}">{quality_text} ({_e(part_text)})</td></tr>'
        f'<tr><th>attempts</th><td>{_e(record.get("attempts", 1))}</td></tr>'
        f'<tr><th>objects</th><td>{_e(found)}</td></tr></table></div>'
        f'<div><table>{timings}</table></div><div class="maps">{maps}</div></div></section>'
    )


def render(summary: dict, links: list[dict[str, str]], metadata: list[dict | None]) -> str:
    """The whole page; `links[i]` maps output kinds to hrefs for `summary['images'][i]`."""
    counts, cost = summary["counts"], summary["cost"]
    quality = summary.get("quality") or {}
    styles = ", ".join(summary.get("styles", {}).get("names", [])) or summary["settings"].get("style", "")
    facts = [
        ("images", f'{counts["ok"]} ok &middot; {counts["failed"]} failed &middot; {counts["skipped"]} skipped'),
        ("images / minute", f'{summary["images_per_minute"]:.1f}'),
        ("cost / image", f'{cost["per_image"]:.4f} {_e(cost["currency"])}'),
        ("total cost", f'{cost["total"]:.4f} {_e(cost["currency"])}'),
        ("mean quality", f'{quality["mean"]:.3f}' if quality.get("mean") is not None else "n/a"),
        ("at or above threshold", f'{quality["success_rate"]:.0%}' if quality.get("success_rate") is not None
         else "n/a"),
        ("model load", f'{summary["load_seconds"]:.1f} s'),
    ]
    fact_html = "".join(f'<div class="fact">{_e(name)}<b>{value}</b></div>' for name, value in facts)
    cards = "".join(card(r, lk, md) for r, lk, md in zip(summary["images"], links, metadata, strict=True))
    device = summary.get("device", {})
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>modomo report</title><style>{CSS}</style></head><body>"
        f"<header><h1>modomo report</h1><p>{_e(styles)} &middot; {_e(summary['settings'].get('room', ''))} &middot; "
        f"{_e(summary['settings'].get('size'))} px &middot; {_e(summary['settings'].get('steps'))} steps &middot; "
        f"{_e(device.get('name', ''))}</p><p>{created} &middot; modomo {__version__}</p></header>"
        f'<main><div class="facts">{fact_html}</div>{stage_bars(summary.get("stages", {}))}{cards}</main>'
        f"<script>{SCRIPT}</script></body></html>"
    )


def write_report(summary: dict, sink) -> str:
    """Render report.html from the summary and each result's metadata, and write it into the output."""
    import json

    links, metadata = [], []
    for record in summary["images"]:
        links.append({kind: sink.link(location) for kind, location in record.get("outputs", {}).items()})
        meta = None
        if record.get("outputs", {}).get("metadata"):
            try:
                data = sink.read(sink.relative(record["outputs"]["metadata"]))
                meta = json.loads(data) if data else None
            except (OSError, ValueError):
                meta = None
        metadata.append(meta)
    page = render(summary, links, metadata)
    return sink.write("report.html", page.encode("utf-8"), "text/html; charset=utf-8")
