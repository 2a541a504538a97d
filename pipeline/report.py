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
from urllib.parse import quote

from pipeline import __version__

PAGE_SIZE = 100  # cards in the DOM at once: enough to review, few enough to stay light at 5,000 jobs
MAP_KINDS = ("depth", "edges", "masks")
STATUS_LABELS = {"ok": "ok", "failed": "failed", "skipped": "skipped (done before)"}

CSS = """
:root{--ink:#22211f;--muted:#6f6a62;--paper:#f6f4f0;--card:#fff;--line:#e6e1d9;--accent:#b8693a;
--pass:#2f8a5b;--low:#b7791f;--bad:#b3392f}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:var(--paper);color:var(--ink)}
body.locked{overflow:hidden}
header.top{background:#262522;color:#f6f4f0;padding:28px 40px 24px}
header.top h1{margin:0 0 6px;font-size:26px;font-weight:600;letter-spacing:.2px}
header.top p{margin:2px 0;color:#cfc9bf;font-size:14px}
.stopped{background:#5c2a22;color:#fbe9e5;padding:8px 40px;font-size:14px}
main{padding:24px 40px 48px;max-width:1440px;margin:0 auto}
.facts{display:flex;flex-wrap:wrap;gap:12px;margin:0 0 18px}
.fact{background:var(--card);border-radius:10px;padding:10px 16px;min-width:130px;box-shadow:0 1px 2px #0001;
font-size:13px;color:var(--muted)}
.fact b{display:block;font-size:20px;color:var(--ink);font-weight:600;margin-top:2px}
.bars{background:var(--card);border-radius:10px;padding:14px 18px;box-shadow:0 1px 2px #0001;margin-bottom:22px}
.bars h3{margin:0 0 8px;font-size:14px;font-weight:600}
.bar{display:grid;grid-template-columns:110px minmax(0,1fr) 150px;align-items:center;gap:10px;margin:4px 0;
font-size:13px}
.bar .track{background:#f0ece6;border-radius:4px;height:12px}
.bar i{display:block;height:12px;background:var(--accent);border-radius:4px}
.bar em{font-style:normal;color:var(--muted);font-variant-numeric:tabular-nums}
.toolbar{position:sticky;top:0;z-index:5;display:flex;flex-wrap:wrap;gap:10px;align-items:center;
background:var(--paper);padding:10px 0;border-bottom:1px solid var(--line);margin-bottom:16px}
.toolbar label{font-size:13px;color:var(--muted);display:flex;align-items:center;gap:6px}
.toolbar select,.toolbar input{font:inherit;font-size:14px;padding:5px 8px;border:1px solid #d6d0c6;
border-radius:6px;background:#fff;color:var(--ink)}
.toolbar input{width:200px}
.pager{display:flex;align-items:center;gap:8px;font-size:13px;color:var(--muted);margin-left:auto}
.pager a{color:var(--ink);text-decoration:none;border:1px solid #d6d0c6;border-radius:6px;padding:4px 10px;
background:#fff}
.pager a.off{opacity:.35;pointer-events:none}
.pager.bottom{justify-content:center;margin:20px 0 0}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:18px}
.card{background:var(--card);border-radius:10px;box-shadow:0 1px 3px #0002;padding:14px;min-width:0}
.card header{display:flex;align-items:center;gap:8px;margin-bottom:10px;min-width:0}
.card h2{font-size:15px;font-weight:600;margin:0;flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis;
white-space:nowrap}
.tag,.status{font-size:12px;border-radius:999px;padding:2px 9px;background:#f0ece6;color:#5b554c;
white-space:nowrap}
.status.ok{display:none}
.status.skipped{background:#e8eef5;color:#3b5775}
.status.failed{background:#f7e1de;color:var(--bad)}
.card.failed{border-left:4px solid var(--bad)}
.error{color:var(--bad);margin:0;font-size:14px;overflow-wrap:anywhere}
.q{font-variant-numeric:tabular-nums;font-weight:600;font-size:13px}
.q.pass{color:var(--pass)} .q.low{color:var(--low)} .q.none{color:var(--muted)}
.strip{display:grid;grid-template-columns:repeat(auto-fit,minmax(120px,1fr));gap:8px}
.strip figure{margin:0;min-width:0;max-width:256px}
.strip a{display:block;border-radius:6px;overflow:hidden;background:#ebe7e0;aspect-ratio:4/3}
.strip img{width:100%;height:100%;object-fit:cover;display:block;transition:transform .2s}
.strip a:hover img{transform:scale(1.03)}
figcaption{display:flex;gap:8px;align-items:baseline;font-size:12px;color:var(--muted);padding:5px 2px 0}
figcaption b{color:var(--ink)} figcaption .q{margin-left:auto}
#empty{color:var(--muted);text-align:center;padding:40px}
#viewer{position:fixed;inset:0;z-index:10;background:#15140fcc;display:flex;align-items:flex-start;
justify-content:center;overflow:auto;padding:28px}
#viewer[hidden]{display:none}
.panel{background:var(--card);border-radius:12px;max-width:1200px;width:100%;padding:18px 20px;
box-shadow:0 10px 40px #0006}
.panel header{display:flex;align-items:center;gap:12px;margin-bottom:12px}
.panel h2{margin:0;font-size:18px;flex:1;min-width:0;overflow-wrap:anywhere}
.panel nav a{color:var(--ink);text-decoration:none;border:1px solid #d6d0c6;border-radius:6px;padding:4px 10px;
margin-left:6px;font-size:14px;display:inline-block}
.panel nav a.off{opacity:.35;pointer-events:none}
.stage{display:flex;justify-content:center;background:#1c1b18;border-radius:8px;padding:10px}
.compare{position:relative;display:inline-block;line-height:0;max-width:100%}
.compare img{max-width:100%;max-height:68vh;display:block}
.compare .before{position:absolute;top:0;left:0;width:100%;height:100%;clip-path:inset(0 50% 0 0)}
.compare input{position:absolute;bottom:10px;left:5%;width:90%}
.compare .hint{position:absolute;top:8px;font-size:12px;line-height:1;color:#fff;background:#0008;
padding:4px 7px;border-radius:4px}
.compare .hint.l{left:8px} .compare .hint.r{right:8px}
.panel .strip{grid-template-columns:repeat(auto-fill,minmax(110px,140px));margin:12px 0}
.panel .strip a.current{outline:3px solid var(--accent)}
.details{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.details table{border-collapse:collapse;font-size:13px}
.details td,.details th{padding:3px 10px 3px 0;text-align:left;border-bottom:1px solid #eee;vertical-align:top}
.details th{color:var(--muted);font-weight:500}
.details a{color:var(--accent)}
.maps{display:flex;gap:8px;flex-wrap:wrap}
.maps figure{margin:0} .maps img{height:110px;border-radius:4px;background:#000;display:block}
.maps figcaption{padding-top:3px}
@media (max-width:700px){main,header.top{padding-left:16px;padding-right:16px}
#grid{grid-template-columns:1fr}.pager{margin-left:0}}
"""

SCRIPT = r"""
(function () {
  'use strict';
  var PAGE = __PAGE__;
  var JOBS = JSON.parse(document.getElementById('jobs').textContent);
  var LABELS = {ok: 'ok', failed: 'failed', skipped: 'skipped'};
  var KEYS = ['status', 'style', 'sort', 'q', 'page', 'open', 'v'];
  var DEFAULTS = {status: '', style: '', sort: 'input', q: '', page: '1', open: '', v: ''};
  var $ = function (id) { return document.getElementById(id); };
  var grid = $('grid'), viewer = $('viewer');
  var controls = {status: $('f-status'), style: $('f-style'), sort: $('f-sort'), q: $('f-q')};
  var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: 'base'});
  var state = readState(), cache = {};

  // The state is the URL fragment: a view can be bookmarked, sent, or loaded by a test.
  function readState() {
    var params = new URLSearchParams(location.hash.slice(1)), s = {};
    KEYS.forEach(function (k) { s[k] = params.get(k) || DEFAULTS[k]; });
    return s;
  }
  function hashFor(changes) {
    var s = Object.assign({}, state, changes), params = new URLSearchParams();
    KEYS.forEach(function (k) { if (s[k] && s[k] !== DEFAULTS[k]) params.set(k, s[k]); });
    return '#' + params.toString();
  }
  function go(changes, replace) {
    var hash = hashFor(changes);
    if (replace) { history.replaceState(null, '', hash); render(); } else { location.hash = hash; }
  }

  function quality(j) { return typeof j.q === 'number' ? j.q : null; }
  // Every job's index in one order, computed once per order: the filters then keep a subsequence.
  function ordered(sort) {
    if (cache[sort]) return cache[sort];
    var idx = JOBS.map(function (_, i) { return i; }), dir = sort === '-quality' ? -1 : 1;
    if (sort === 'quality' || sort === '-quality') {
      idx.sort(function (a, b) {  // unscored (failed) jobs last either way: there is nothing to look at
        var qa = quality(JOBS[a]), qb = quality(JOBS[b]);
        if (qa === null || qb === null) return (qa === null) - (qb === null) || a - b;
        return dir * (qa - qb) || a - b;
      });
    } else {
      idx.sort(function (a, b) { return collator.compare(JOBS[a].k, JOBS[b].k) || a - b; });
    }
    return (cache[sort] = idx);
  }
  function visible(s) {
    var q = s.q.trim().toLowerCase();
    return ordered(s.sort).filter(function (i) {
      var j = JOBS[i];
      return (!s.status || j.t === s.status) && (!s.style || j.s === s.style) &&
        (!q || j.k.toLowerCase().indexOf(q) !== -1);
    });
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function fmtQ(q) { return typeof q === 'number' ? q.toFixed(2) : 'n/a'; }
  function grade(passed) { return passed === true ? 'pass' : passed === false ? 'low' : 'none'; }
  function thumb(i, j, v, current) {
    var fig = el('figure'), link = el('a', current ? 'current' : ''), img = el('img'), cap = el('figcaption');
    link.href = hashFor({open: String(i), v: String(v[0])});
    img.loading = 'lazy';  // before src, so only the thumbnails scrolled into view are fetched
    img.decoding = 'async';
    img.alt = j.k + ' · ' + (j.s || '') + ' · v' + v[0];
    img.src = v[5] || v[4];
    link.appendChild(img);
    cap.append(el('b', null, 'v' + v[0]), el('span', null, 'seed ' + v[1]), el('span', 'q ' + grade(v[3]), fmtQ(v[2])));
    fig.append(link, cap);
    return fig;
  }
  function card(i) {
    var j = JOBS[i], node = el('article', 'card ' + j.t), head = el('header'), title = el('h2', null, j.k);
    node.dataset.job = i;
    title.title = j.k;
    head.append(title, el('span', 'tag', j.s || 'no style'), el('span', 'status ' + j.t, LABELS[j.t]));
    if (j.t !== 'failed') head.appendChild(el('span', 'q ' + grade(j.p), fmtQ(j.q)));
    node.appendChild(head);
    if (j.t === 'failed') { node.appendChild(el('p', 'error', j.e || 'failed')); return node; }
    var strip = el('div', 'strip');
    (j.v || []).forEach(function (v) { strip.appendChild(thumb(i, j, v, false)); });
    node.appendChild(strip);
    return node;
  }

  function pager(node, page, pages, start, shown, total) {
    var prev = el('a', page > 1 ? '' : 'off', '‹ previous'), next = el('a', page < pages ? '' : 'off', 'next ›');
    prev.href = hashFor({page: String(page - 1)});
    next.href = hashFor({page: String(page + 1)});
    var text = total ? (start + 1) + '–' + (start + shown) + ' of ' + total.toLocaleString('en') + ' jobs' : 'no jobs';
    node.replaceChildren(el('span', null, text), prev, el('span', null, 'page ' + page + ' of ' + pages), next);
  }
  function render() {
    state = readState();
    Object.keys(controls).forEach(function (k) { if (controls[k].value !== state[k]) controls[k].value = state[k]; });
    var idx = visible(state), pages = Math.max(1, Math.ceil(idx.length / PAGE));
    var page = Math.min(Math.max(1, parseInt(state.page, 10) || 1), pages), start = (page - 1) * PAGE;
    var slice = idx.slice(start, start + PAGE), frag = document.createDocumentFragment();
    slice.forEach(function (i) { frag.appendChild(card(i)); });
    grid.replaceChildren(frag);
    $('empty').hidden = idx.length > 0;
    document.querySelectorAll('.pager').forEach(function (node) {
      pager(node, page, pages, start, slice.length, idx.length);
    });
    show(state.open === '' ? null : Number(state.open), idx);
  }

  function row(table, name, value, cls) {
    var tr = el('tr'), td = el('td', cls || '', value);
    tr.append(el('th', null, name), td);
    table.appendChild(tr);
    return td;
  }
  function facts(j, v) {
    var table = $('v-facts'), parts = Object.keys(j.qp || {}).map(function (k) { return k + ' ' + fmtQ(j.qp[k]); });
    table.replaceChildren();
    row(table, 'status', LABELS[j.t] + (j.t === 'skipped' ? ' (done before)' : ''));
    row(table, 'style', j.s || '');
    if (j.r) row(table, 'room', j.r);
    if (j.t === 'failed') { row(table, 'error', j.e || 'failed', 'error'); return; }
    row(table, 'variation', 'v' + v[0] + ' of ' + j.v.length);
    row(table, 'seed', v[1]);
    row(table, 'quality', fmtQ(v[2]) + (v === j.v[0] && parts.length ? ' (' + parts.join(', ') + ')' : ''),
        'q ' + grade(v[3]));
    if (j.a) row(table, 'attempts', j.a);
    var open = el('a', null, 'full size');
    open.href = v[4];
    open.target = '_blank';
    row(table, 'result', '').appendChild(open);
  }
  function extras(j) {
    var times = $('v-times'), maps = $('v-maps');
    times.replaceChildren();
    Object.keys(j.tm || {}).forEach(function (k) { row(times, k, j.tm[k].toFixed(3) + ' s'); });
    maps.replaceChildren();
    Object.keys(j.mp || {}).forEach(function (k) {
      var fig = el('figure'), img = el('img');
      img.loading = 'lazy';
      img.alt = k;
      img.src = j.mp[k];
      fig.append(img, el('figcaption', null, k));
      maps.appendChild(fig);
    });
  }
  function compare(j, v) {
    var after = $('v-after'), before = $('v-before'), slider = $('v-slider');
    $('v-stage').hidden = j.t === 'failed';
    if (j.t === 'failed') return;
    after.src = v[4];
    var both = Boolean(j.in);
    [before.parentNode, slider, $('v-hint-l'), $('v-hint-r')].forEach(function (n) { n.hidden = !both; });
    if (both) { before.src = j.in; slider.value = 50; before.parentNode.style.clipPath = 'inset(0 50% 0 0)'; }
  }
  function show(i, idx) {
    var j = i === null ? null : JOBS[i];
    viewer.hidden = !j;
    document.body.classList.toggle('locked', Boolean(j));
    if (!j) return;
    var v = (j.v || []).filter(function (x) { return String(x[0]) === state.v; })[0] || (j.v || [])[0];
    var at = idx.indexOf(i), prev = $('v-prev'), next = $('v-next');
    $('v-title').textContent = j.k + ' · ' + (j.s || '');
    prev.className = at > 0 ? '' : 'off';
    next.className = at >= 0 && at < idx.length - 1 ? '' : 'off';
    prev.href = at > 0 ? hashFor({open: String(idx[at - 1]), v: ''}) : '#';
    next.href = at >= 0 && at < idx.length - 1 ? hashFor({open: String(idx[at + 1]), v: ''}) : '#';
    $('v-close').href = hashFor({open: '', v: ''});
    compare(j, v);
    var strip = $('v-strip');
    strip.replaceChildren();
    if (j.t !== 'failed') (j.v || []).forEach(function (x) { strip.appendChild(thumb(i, j, x, x === v)); });
    facts(j, v);
    extras(j);
  }

  $('v-slider').addEventListener('input', function () {
    $('v-before').parentNode.style.clipPath = 'inset(0 ' + (100 - this.value) + '% 0 0)';
  });
  ['status', 'style', 'sort'].forEach(function (k) {
    controls[k].addEventListener('change', function () { var c = {page: '1'}; c[k] = this.value; go(c); });
  });
  var typing;
  controls.q.addEventListener('input', function () {
    var value = this.value;
    clearTimeout(typing);
    typing = setTimeout(function () { go({q: value, page: '1'}, true); }, 150);
  });
  viewer.addEventListener('click', function (e) { if (e.target === viewer) go({open: '', v: ''}); });
  document.addEventListener('keydown', function (e) {
    if (viewer.hidden) return;
    if (e.key === 'Escape') go({open: '', v: ''});
    var link = e.key === 'ArrowLeft' ? $('v-prev') : e.key === 'ArrowRight' ? $('v-next') : null;
    if (link && link.className !== 'off') location.hash = link.getAttribute('href');
  });
  window.addEventListener('hashchange', render);
  render();
})();
"""

VIEWER = """
<div id="viewer" hidden role="dialog" aria-modal="true" aria-labelledby="v-title"><div class="panel">
<header><h2 id="v-title"></h2><nav><a id="v-prev">&lsaquo; previous</a><a id="v-next">next &rsaquo;</a>
<a id="v-close" aria-label="close">&times; close</a></nav></header>
<div class="stage" id="v-stage"><div class="compare"><img id="v-after" alt="after">
<div class="before"><img id="v-before" alt="before"></div><span class="hint l" id="v-hint-l">before</span>
<span class="hint r" id="v-hint-r">after</span>
<input type="range" id="v-slider" min="0" max="100" value="50" aria-label="before / after"></div></div>
<div class="strip" id="v-strip"></div>
<div class="details"><table id="v-facts"></table><table id="v-times"></table><div class="maps" id="v-maps"></div></div>
</div></div>
"""


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
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                       ("\u2029", "\\u2029")):
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
    return [{"n": 1, "seed": record.get("seed"), "quality": record.get("quality"), "passed": record.get("passed"),
             "outputs": record.get("outputs", {}), "transformed_url": record.get("transformed_url"),
             "thumbnail_url": record.get("thumbnail_url")}]


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
    return [variation.get("n", 1), variation.get("seed"), _round(variation.get("quality"), 4),
            variation.get("passed"), result, thumb]


def job_data(record: dict, link: FolderLinks) -> dict:
    """One job as the page's compact JSON; empty fields are left out to keep 5,000 jobs light.

    k key, s style, t status, e error, r room, q quality, p passed, a attempts, qp quality parts,
    tm stage seconds, in the input as the models saw it, mp control maps, v variations (see `_variation`).
    """
    outputs = record.get("outputs") or {}
    job = {"k": record.get("key") or record.get("input") or "", "s": record.get("style") or "",
           "t": record.get("status", "ok")}
    optional = {
        "e": record.get("error"), "r": record.get("room"), "q": _round(record.get("quality"), 4),
        "p": record.get("passed"), "a": record.get("attempts") if (record.get("attempts") or 0) > 1 else None,
        "qp": {k: _round(v, 3) for k, v in (record.get("quality_parts") or {}).items() if isinstance(v, float)},
        "tm": {k: _round(v, 3) for k, v in (record.get("timings") or {}).items() if isinstance(v, (int, float))},
        "in": link(outputs.get("input")) or None,
        "mp": {k: link(outputs[k]) for k in MAP_KINDS if outputs.get(k)},
        "v": [_variation(v, link) for v in variations(record)],
    }
    job.update({k: v for k, v in optional.items() if v not in (None, {}, [])})
    return job


def stage_bars(stages: dict) -> str:
    """Where the time per image goes, as bars scaled to the largest share."""
    if not stages:
        return ""
    top = max((row["share"] for row in stages.values()), default=0) or 1.0
    rows = []
    for name, row in stages.items():
        width = max(0.5, 100 * row["share"] / top)
        rows.append(f'<div class="bar"><span>{_e(name)}</span><div class="track"><i style="width:{width:.1f}%">'
                    f'</i></div><em>{row["mean"]:.3f} s &middot; {row["share"]:.1%}</em></div>')
    return '<div class="bars"><h3>Time per image by stage (mean)</h3>' + "".join(rows) + "</div>"


def facts(summary: dict) -> str:
    """The run at a glance: counts, throughput, cost, quality."""
    counts, cost = summary["counts"], summary["cost"]
    quality = summary.get("quality") or {}
    results = sum(len(r.get("variations") or []) or (r.get("status") != "failed") for r in summary["images"])
    items = [
        ("jobs", f'{counts["ok"]} ok &middot; {counts["failed"]} failed &middot; {counts["skipped"]} skipped'),
        ("results", f"{results:,}"),
        ("images / minute", f'{summary.get("images_per_minute", 0.0):.1f}'),
        ("cost / image", f'{cost["per_image"]:.4f} {_e(cost["currency"])}'),
        ("total cost", f'{cost["total"]:.4f} {_e(cost["currency"])}'),
        ("mean quality", f'{quality["mean"]:.3f}' if quality.get("mean") is not None else "n/a"),
        ("at or above threshold", f'{quality["success_rate"]:.0%}' if quality.get("success_rate") is not None
         else "n/a"),
        ("model load", f'{summary.get("load_seconds", 0.0):.1f} s'),
    ]
    return '<div class="facts">' + "".join(f'<div class="fact">{_e(n)}<b>{v}</b></div>' for n, v in items) + "</div>"


def _options(name: str, label: str, choices: list[tuple[str, str]]) -> str:
    """A labelled <select>; the script sets its value from the URL."""
    options = "".join(f'<option value="{_e(value)}">{_e(text)}</option>' for value, text in choices)
    return f'<label>{label}<select id="f-{name}">{options}</select></label>'


def toolbar(summary: dict, jobs: list[dict]) -> str:
    """Filters (status, style, file name), the sort, and the pager; the script keeps them in the URL."""
    counts = summary["counts"]
    statuses = [("", f"all ({len(jobs):,})")] + [(s, f"{s} ({counts.get(s, 0):,})") for s in STATUS_LABELS]
    names = list(dict.fromkeys([*summary.get("styles", {}).get("names", []), *(j["s"] for j in jobs if j["s"])]))
    per_style = {name: sum(j["s"] == name for j in jobs) for name in names}
    styles = [("", "all styles")] + [(n, f"{n} ({per_style[n]:,})") for n in names]
    sorts = [("input", "input name"), ("quality", "quality, worst first"), ("-quality", "quality, best first")]
    return (
        '<nav class="toolbar">'
        + _options("status", "status", statuses) + _options("style", "style", styles)
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
    line = " &middot; ".join(_e(part) for part in (styles, settings.get("room", ""),
                                                   f'{settings.get("size", "")} px' if settings.get("size") else "",
                                                   f'{settings.get("steps")} steps' if settings.get("steps") else "",
                                                   device_name) if part)
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    stopped = f'<div class="stopped">The run stopped early: {_e(summary["stopped"])}</div>' \
        if summary.get("stopped") else ""
    return (f'<header class="top"><h1>modomo report</h1><p>{line}</p>'
            f"<p>{created} &middot; modomo {__version__}</p></header>{stopped}")


def render(summary: dict, jobs: list[dict]) -> str:
    """The whole page; `jobs[i]` is `job_data` of `summary['images'][i]`."""
    script = SCRIPT.replace("__PAGE__", str(PAGE_SIZE))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>modomo report</title><style>{CSS}</style></head><body>"
        f"{heading(summary)}<main>{facts(summary)}{stage_bars(summary.get('stages', {}))}"
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
