"""report.html: every result and control map referenced, nothing from the network, and it renders.

A real run checks the links; a synthetic catalogue of 5,000 jobs checks that the page stays fast and
light, pages and filters by its URL state, and escapes what it embeds. Chromium is driven over the
DevTools protocol on a pipe (no extra packages, no port): load a URL, evaluate a script, take a screenshot.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.outputs.report import PAGE_SIZE, FolderLinks, _href, write_report
from pipeline.outputs.sinks import LocalSink

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
STYLES = ("boho", "modern")
JOBS, VARIATIONS, FAILED_EVERY = 5000, 3, 41


class Links(HTMLParser):
    """Every src/href in the page's markup."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


def page_jobs(page: str) -> list[dict]:
    """The jobs the page embeds for its script."""
    found = re.search(r"<script type=application/json id=jobs>(.*?)</script>", page, re.S)
    assert found, "the page embeds its jobs as JSON"
    return json.loads(found.group(1))


def job_urls(job: dict) -> list[str]:
    """Every image link of one embedded job: variations' results and thumbnails, the input, the maps."""
    urls = [u for v in job.get("v", []) for u in v[4:6] if u]
    return urls + ([job["in"]] if job.get("in") else []) + list(job.get("mp", {}).values())


def chromium_path() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed for this test: `make test` installs it"
    return chromium


class Browser:
    """Headless Chromium over `--remote-debugging-pipe`: requests on fd 3, replies on fd 4, NUL-separated JSON."""

    def __init__(self, profile: Path):
        to_child, self._to_us = os.pipe(), os.pipe()
        child_in, child_out = os.dup(to_child[0]), os.dup(self._to_us[1])  # above 4, so 3<& and 4>& cannot clash
        for fd in (to_child[0], self._to_us[1]):
            os.close(fd)
        script = f'exec "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-'
        self.process = subprocess.Popen(
            [
                "bash",
                "-c",
                script,
                "chromium",
                chromium_path(),
                *CHROMIUM_FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(child_in, child_out),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(child_in)
        os.close(child_out)
        self._write, self._read, self._buffer, self._id = to_child[1], self._to_us[0], b"", 0
        self.events: list[dict] = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t["targetId"] for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": page, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)

    def _message(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        self._id += 1
        request = {"id": self._id, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = self.session
        os.write(self._write, json.dumps(request).encode() + b"\0")
        while True:
            message = self._message()
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._message())
        self.events.clear()

    def load(self, url: str, width: int = 1280, height: int = 1600) -> None:
        """A fresh document at `url` (via about:blank, so a changed fragment alone still reloads)."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )
        for target in ("about:blank", url):
            self.events.clear()
            self.call("Page.navigate", {"url": target}, session=True)
            self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}, session=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def screenshot(self, path: Path) -> np.ndarray:
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except RuntimeError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._write)
        os.close(self._read)


# A real run: links, control maps, CDN URLs.


@pytest.fixture(scope="module")
def report_run(tiny_bundle, rooms, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    inputs = folder / "in"
    inputs.mkdir()
    shutil.copy(rooms / "living-room-02-small.jpg", inputs / "small room.jpg")
    shutil.copy(rooms / "living-room-01.jpg", inputs / "big.jpg")
    (inputs / "broken.jpg").write_bytes(b"not an image")
    out = folder / "out"
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(inputs),
            "--style",
            "boho,modern",
            "--models",
            str(tiny_bundle),
            "--out",
            str(out),
            "--size",
            "256",
            "--steps",
            "2",
            "--retries",
            "0",
            "--report",
            "--json",
        ],
    )
    assert result.exit_code == 3, result.output  # the broken file fails; the report is still written
    return out, json.loads(result.stdout), result.stderr


def test_report_references_every_result_and_control_map(report_run):
    out, summary, stderr = report_run
    page = (out / "report.html").read_text()
    jobs = page_jobs(page)
    assert len(jobs) == len(summary["images"])
    for record, job in zip(summary["images"], jobs, strict=True):
        if record["status"] != "ok":
            assert job["t"] == record["status"] and job["e"] == record["error"]
            continue
        urls = [u.replace("%20", " ") for u in job_urls(job)]
        for kind in ("result", "thumbnail", "input", "depth", "edges", "masks"):
            relative = Path(record["outputs"][kind]).relative_to(out).as_posix()
            assert relative in urls, (kind, relative)
            assert (out / relative).is_file()
    assert "report" in stderr and str(out / "report.html") in stderr


def test_report_loads_nothing_from_the_network(report_run):
    out, _, _ = report_run
    page = (out / "report.html").read_text()
    parser = Links()
    parser.feed(page)
    urls = parser.urls + [u for job in page_jobs(page) for u in job_urls(job)]
    assert urls and not [u for u in urls if re.match(r"^[a-z]+:", u) or u.startswith("//")]
    assert "@import" not in page and "url(" not in page and "http" not in page.split("<script>")[-1]


def test_masks_preview_is_drawn(report_run):
    out, summary, _ = report_run
    record = next(r for r in summary["images"] if r["status"] == "ok")
    masks = np.asarray(Image.open(record["outputs"]["masks"]).convert("RGB"), dtype=np.int16)
    photo = np.asarray(Image.open(record["outputs"]["input"]).convert("RGB"), dtype=np.int16)
    assert masks.shape == photo.shape and np.abs(masks - photo).mean() > 1  # tinted masks, boxes and labels


def test_report_renders_in_headless_chromium(report_run, browser, tmp_path):
    out, summary, _ = report_run
    browser.load((out / "report.html").as_uri())
    assert browser.evaluate("document.querySelectorAll('.card').length") == len(summary["images"])
    browser.evaluate(
        "Promise.all([...document.images].filter(i => i.getBoundingClientRect().top < innerHeight)"
        ".map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })))"
    )
    pixels = browser.screenshot(tmp_path / "report.png")
    assert pixels.shape[:2] == (1600, 1280)
    assert pixels.std() > 20  # not a blank page: header, bars, photos
    header = pixels[:60].mean(axis=(0, 1))
    assert header.mean() < 80  # the dark header is there
    broken = browser.evaluate(
        "[...document.querySelectorAll('#grid img')].filter(i => i.complete && !i.naturalWidth).map(i => i.src)"
    )
    assert not broken  # every thumbnail the first screen shows was found


# Every caption inside its picture's column and its card, every card inside the window, no title cut.
BOXES = """(() => {
  const bad = [], width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width + 1) bad.push('the page is wider than the window');
  for (const card of document.querySelectorAll('#grid .card')) {
    const c = card.getBoundingClientRect(), title = card.querySelector('h2');
    if (c.left < -1 || c.right > width + 1) bad.push('a card leaves the window');
    if (title.scrollWidth > title.clientWidth + 1 || title.getBoundingClientRect().right > c.right + 1)
      bad.push('a title is cut: ' + title.textContent);
    for (const figure of card.querySelectorAll('figure')) {
      const f = figure.getBoundingClientRect(), caption = figure.querySelector('figcaption');
      for (const part of [caption, ...caption.children]) {
        const r = part.getBoundingClientRect();
        if (r.left < c.left - 1 || r.right > c.right + 1 || r.bottom > c.bottom + 1)
          bad.push('a caption leaves its card: ' + part.textContent);
        if (r.left < f.left - 1 || r.right > f.right + 1)
          bad.push('a caption runs into the next picture: ' + part.textContent);
      }
    }
  }
  return bad;
})()"""


@pytest.mark.parametrize("width", [1400, 390])
def test_report_layout_holds_at_every_width(report_run, catalogue, browser, tmp_path, width):
    """At a desktop's 1400 px and a phone's 390 px, measured in the browser: no caption leaves its picture or
    its card, nothing leaves the window; each card shows its photo beside its results."""
    for page in (report_run[0] / "report.html", catalogue[0]):
        browser.load(page.as_uri(), width=width, height=1200)
        assert browser.evaluate(BOXES) == [], page
        assert browser.evaluate(
            "[...document.querySelectorAll('.card:not(.failed)')].every(c => "
            "c.querySelector('figure.photo') && c.querySelectorAll('figure').length > 1)"
        )
        browser.screenshot(tmp_path / f"{page.parent.name}-{width}.png")


def test_viewer_shows_the_result_at_full_size_and_stages_in_pipeline_order(report_run, browser):
    from pipeline.stages.timing import STAGES

    out, summary, _ = report_run
    record = next(r for r in summary["images"] if r["status"] == "ok")
    width, height = Image.open(record["outputs"]["result"]).size
    browser.load((out / "report.html").as_uri() + "#open=0")
    browser.evaluate(
        "new Promise(r => { const i = document.getElementById('v-after'); "
        "i.complete && i.naturalWidth ? r() : (i.onload = i.onerror = r); })"
    )
    after = browser.evaluate(
        "(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight])(document.getElementById('v-after'))"
    )
    assert not after[0].endswith(".thumb.jpg") and after[1:] == [width, height]
    stages = browser.evaluate("[...document.querySelectorAll('#v-times th')].map(th => th.textContent)")
    assert stages and stages == sorted(stages, key=STAGES.index)
    bars = browser.evaluate("[...document.querySelectorAll('.bar span')].map(s => s.textContent)")
    assert bars and bars == sorted(bars, key=STAGES.index)


def test_report_in_r2_links_results_by_cdn_url(tiny_bundle, rooms, moto_server, r2_env, monkeypatch):
    monkeypatch.setenv("CDN_DOMAIN", "cdn.example.com")
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(rooms / "living-room-02-small.jpg"),
            "--models",
            str(tiny_bundle),
            "--out",
            "r2:///out/",
            "--size",
            "128",
            "--steps",
            "1",
            "--retries",
            "0",
            "--report",
        ],
    )
    assert result.exit_code == 0, result.output
    client = moto_server.client()
    head = client.head_object(Bucket=r2_env, Key="out/report.html")
    assert head["ContentType"].startswith("text/html")
    page = client.get_object(Bucket=r2_env, Key="out/report.html")["Body"].read().decode()
    images = [u for job in page_jobs(page) for u in job_urls(job)]
    assert images and all(u.startswith("https://cdn.example.com/out/") for u in images)


# A synthetic catalogue: 5,000 jobs, two styles, three variations, some failed.


def tinted(photo: Image.Image, size: tuple[int, int], tint: int) -> bytes:
    """A small JPEG of the room photo in one of a few colour casts (one per style and variation)."""
    image = photo.resize(size, Image.Resampling.BILINEAR)
    image = ImageEnhance.Color(image).enhance(0.4 + 0.5 * (tint % 3))
    overlay = Image.new("RGB", size, [(180, 120, 80), (80, 120, 170), (120, 150, 90)][tint % 3])
    buffer = io.BytesIO()
    Image.blend(image, overlay, 0.12 + 0.08 * (tint // 3)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def synthetic_record(n: int, out: Path, rng: random.Random, key: str | None = None) -> dict:
    """Job n: input n // 2 in style n % 2, with VARIATIONS results best first, or failed now and then."""
    number, style = divmod(n, len(STYLES))
    key = key or f"rooms/room-{number:04d}.jpg"
    stem = out / Path(key).with_suffix(f".{STYLES[style]}").as_posix()
    record = {
        "id": key,
        "input": f"in/{key}",
        "key": key,
        "style": STYLES[style],
        "status": "ok",
        "error": None,
        "room": "living room",
        "outputs": {},
        "seed": None,
        "quality": None,
        "quality_parts": {},
        "passed": None,
        "attempts": 1,
        "timings": {"decode": 0.01, "generate": 1.2, "write": 0.02},
        "variations": [],
    }
    if n % FAILED_EVERY == 7:
        return {**record, "status": "failed", "error": f"truncated or corrupt image: job {n}", "attempts": 0}
    qualities = sorted((round(rng.uniform(0.2, 0.95), 4) for _ in range(VARIATIONS)), reverse=True)
    for v, quality in enumerate(qualities, start=1):
        outputs = {"result": f"{stem}.v{v}.jpg", "thumbnail": f"{stem}.v{v}.thumb.jpg", "metadata": f"{stem}.v{v}.json"}
        record["variations"].append(
            {"n": v, "seed": 1000 + 10 * n + v, "quality": quality, "passed": quality >= 0.5, "outputs": outputs}
        )
    best = record["variations"][0]
    return {
        **record,
        "status": "skipped" if n % 97 == 3 else "ok",
        "seed": best["seed"],
        "quality": best["quality"],
        "passed": best["passed"],
        "quality_parts": {"clip": 0.3, "structure": 0.8},
        "outputs": {**best["outputs"], "input": f"{stem}.input.jpg"},
    }


def synthetic_summary(records: list[dict]) -> dict:
    counts = {s: sum(r["status"] == s for r in records) for s in ("ok", "failed", "skipped")}
    scored = [r["quality"] for r in records if r["quality"] is not None]
    return {
        "images": records,
        "counts": counts,
        "settings": {"room": "living room", "size": 768, "steps": 20},
        "styles": {"names": list(STYLES)},
        "device": {"type": "cuda", "name": "a synthetic GPU"},
        "stages": {
            "decode": {"mean": 0.01, "share": 0.01},
            "generate": {"mean": 1.2, "share": 0.95},
            "write": {"mean": 0.05, "share": 0.04},
        },
        "quality": {"mean": sum(scored) / len(scored) if scored else None, "success_rate": 0.8},
        "load_seconds": 12.5,
        "images_per_minute": 48.0,
        "stopped": None,
        "cost": {"currency": "USD", "per_image": 0.0012, "total": 6.0},
    }


def write_files(records: list[dict], photo: Image.Image, folder: Path, full: int) -> None:
    """Thumbnails for every variation; results and inputs for the first `full` jobs (what a test opens).

    Six real JPEGs, hard-linked under each job's names: 15,000 written files would take most of the
    suite's time on a slow disk.
    """
    folder.mkdir(parents=True, exist_ok=True)
    sources = {}
    for kind, size, tints in (
        ("thumb", (160, 120), range(6)),
        ("result", (480, 360), range(6)),
        ("input", (480, 360), [9]),
    ):
        for tint in tints:
            sources[kind, tint] = folder / f"{kind}-{tint}.jpg"
            sources[kind, tint].write_bytes(tinted(photo, size, tint))
    made = set()
    for n, record in enumerate(records):
        for v in record["variations"]:
            tint = 3 * STYLES.index(record["style"]) + v["n"] - 1
            wanted = [("thumb", v["outputs"]["thumbnail"])] + ([("result", v["outputs"]["result"])] if n < full else [])
            for kind, target in wanted:
                parent = os.path.dirname(target)
                if parent not in made:
                    os.makedirs(parent, exist_ok=True)
                    made.add(parent)
                os.link(sources[kind, tint], target)
        if n < full and record["outputs"].get("input"):
            os.link(sources["input", 9], record["outputs"]["input"])


@pytest.fixture(scope="module")
def catalogue(rooms, tmp_path_factory):
    """report.html for 5,000 jobs in a local output with real thumbnail files; (path, summary, seconds)."""
    import time

    out = tmp_path_factory.mktemp("catalogue") / "out"
    rng = random.Random(5)
    records = [synthetic_record(n, out, rng) for n in range(JOBS)]
    with Image.open(rooms / "living-room-02-small.jpg") as photo:
        write_files(records, photo.convert("RGB"), out.parent / "sources", full=PAGE_SIZE)
    summary = synthetic_summary(records)
    start = time.perf_counter()
    location = write_report(summary, LocalSink(out))
    return Path(location), summary, time.perf_counter() - start


def expected_order(summary: dict, status: str = "", style: str = "", sort: str = "input") -> list[int]:
    """The jobs the page should list, in its order: what the script computes, computed here independently."""
    records = summary["images"]
    keep = [
        i for i, r in enumerate(records) if (not status or r["status"] == status) and (not style or r["style"] == style)
    ]
    if sort in ("quality", "-quality"):
        sign = 1 if sort == "quality" else -1
        return sorted(keep, key=lambda i: (records[i]["quality"] is None, sign * (records[i]["quality"] or 0), i))
    return sorted(keep, key=lambda i: (records[i]["key"], i))


def shown(browser: Browser) -> list[int]:
    return browser.evaluate("[...document.querySelectorAll('#grid .card')].map(c => +c.dataset.job)")


def test_catalogue_page_is_light_and_written_quickly(catalogue):
    path, summary, seconds = catalogue
    page = path.read_text()
    assert seconds < 3, f"write_report took {seconds:.2f} s for {JOBS} jobs"
    assert len(page.encode()) / JOBS < 800, f"{len(page.encode()) / JOBS:.0f} bytes per job"
    assert len(page_jobs(page)) == JOBS
    assert page.count("<article") == 0  # cards are made by the script, a page at a time


def test_catalogue_first_paint_is_fast_and_shows_one_page(catalogue, browser, tmp_path):
    path, summary, _ = catalogue
    browser.load(path.as_uri())
    timing = browser.evaluate("""new Promise(done => { const look = () => {
        const paint = performance.getEntriesByName('first-contentful-paint')[0];
        if (!paint) return setTimeout(look, 20);
        const nav = performance.getEntriesByType('navigation')[0];
        done({paint: paint.startTime, ready: nav.domContentLoadedEventEnd,
              cards: document.querySelectorAll('.card').length});
      }; look(); })""")
    heap = browser.call("Runtime.getHeapUsage", session=True)["usedSize"]
    print(
        f"first contentful paint {timing['paint']:.0f} ms, cards ready {timing['ready']:.0f} ms, "
        f"JS heap {heap / 2**20:.1f} MiB"
    )
    assert timing["paint"] < 2000 and timing["ready"] < 2000, timing
    assert timing["cards"] == PAGE_SIZE
    assert heap < 64 * 2**20
    assert shown(browser) == expected_order(summary)[:PAGE_SIZE]
    images = browser.evaluate(
        "[...document.querySelectorAll('#grid figure:not(.photo) img')].map(i => [i.loading, i.getAttribute('src')])"
    )
    shown_ok = [i for i in expected_order(summary)[:PAGE_SIZE] if summary["images"][i]["status"] != "failed"]
    assert len(images) == PAGE_SIZE * VARIATIONS - VARIATIONS * (PAGE_SIZE - len(shown_ok))
    assert all(loading == "lazy" and src.endswith(".thumb.jpg") for loading, src in images)
    photos = browser.evaluate(
        "[...document.querySelectorAll('#grid figure.photo img')].map(i => [i.loading, i.getAttribute('src')])"
    )
    assert len(photos) == len(shown_ok)  # each card shows its photo beside its results
    assert all(loading == "lazy" and src.endswith(".input.jpg") for loading, src in photos)
    pixels = browser.screenshot(tmp_path / "catalogue.png")
    assert pixels[:60].mean() < 80 and pixels.std() > 20  # the dark header, then the summary and the cards


@pytest.mark.parametrize(
    "state",
    [
        "status=failed&sort=quality",
        "style=modern&sort=quality",
        "sort=-quality&page=3",
        "status=skipped&style=boho",
        "page=50",
    ],
)
def test_catalogue_filters_and_sorts_from_the_url(catalogue, browser, state):
    path, summary, _ = catalogue
    browser.load(f"{path.as_uri()}#{state}")
    params = dict(p.split("=") for p in state.split("&"))
    order = expected_order(summary, params.get("status", ""), params.get("style", ""), params.get("sort", "input"))
    page = int(params.get("page", 1))
    assert order, state
    assert shown(browser) == order[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], state
    assert browser.evaluate("document.getElementById('f-sort').value") == params.get("sort", "input")
    pager = browser.evaluate("document.querySelector('.pager').textContent")
    assert f"page {page} of {-(-len(order) // PAGE_SIZE)}" in pager and f"of {len(order):,} jobs" in pager


def test_catalogue_follows_fragment_changes_and_controls(catalogue, browser):
    path, summary, _ = catalogue
    browser.load(path.as_uri())
    browser.evaluate("location.hash = 'status=failed'; new Promise(r => setTimeout(r, 50))")
    assert shown(browser) == expected_order(summary, "failed")[:PAGE_SIZE]
    browser.evaluate("""(() => { const s = document.getElementById('f-style'); s.value = 'boho';
        s.dispatchEvent(new Event('change')); return new Promise(r => setTimeout(r, 50)); })()""")
    assert browser.evaluate("location.hash") == "#status=failed&style=boho"
    assert shown(browser) == expected_order(summary, "failed", "boho")[:PAGE_SIZE]


def test_catalogue_opens_a_job_with_its_variations(catalogue, browser, tmp_path):
    path, summary, _ = catalogue
    record = summary["images"][0]
    browser.load(f"{path.as_uri()}#open=0&v=2")
    view = browser.evaluate("""(() => { const $ = id => document.getElementById(id);
        return {hidden: $('viewer').hidden, after: $('v-after').getAttribute('src'),
                before: $('v-before').getAttribute('src'), slider: !$('v-slider').hidden,
                strip: [...$('v-strip').querySelectorAll('figcaption')].map(f => f.textContent),
                current: $('v-strip').querySelector('a.current img').getAttribute('src')}; })()""")
    assert not view["hidden"] and view["slider"]
    assert view["after"].endswith(".boho.v2.jpg") and view["before"].endswith(".boho.input.jpg")
    assert view["current"].endswith(".boho.v2.thumb.jpg")
    assert view["strip"] == [f"v{v['n']}seed {v['seed']}{v['quality']:.2f}" for v in record["variations"]]
    browser.evaluate(
        "new Promise(r => { const i = document.getElementById('v-after'); i.complete ? r() : i.onload = r; })"
    )
    pixels = browser.screenshot(tmp_path / "viewer.png")
    assert pixels.std() > 20
    browser.evaluate(
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'})); new Promise(r => setTimeout(r, 50))"
    )
    assert browser.evaluate("document.getElementById('viewer').hidden")


def test_report_escapes_what_it_embeds(tmp_path, browser):
    out = tmp_path / "out"
    hostile = [
        "rooms/</script><script>document.title='pwned'</script>.jpg",
        "rooms/\"quoted\" & 'single' <b>bold</b> #1?.jpg",
    ]
    records = [synthetic_record(n, out, random.Random(n), key=hostile[n // 2]) for n in range(4)]
    records[0] = {**records[0], "status": "failed", "error": "</script><!-- <script>alert(1)</script>"}
    location = Path(write_report(synthetic_summary(records), LocalSink(out)))
    page = location.read_text()
    assert page.count("</script>") == 2  # the JSON block and the script, nothing from the data
    assert page_jobs(page)[0]["k"] == hostile[0] and page_jobs(page)[0]["e"] == records[0]["error"]
    browser.load(location.as_uri())
    assert browser.evaluate("document.title") == "modomo report"
    titles = browser.evaluate("[...document.querySelectorAll('.card h2')].map(h => h.textContent)")
    assert sorted(titles) == sorted(r["key"] for r in records)
    assert browser.evaluate("document.querySelector('.card.failed .error').textContent") == records[0]["error"]
    assert browser.evaluate("document.querySelectorAll('.card h2 *, .error *, script').length") == 2


def test_links_per_folder_match_the_sinks_own(tmp_path):
    class Cdn:
        """Links like R2 with CDN_DOMAIN: a quoted key under a domain."""

        def link(self, location):
            from urllib.parse import quote

            return "https://cdn.example.com/" + quote(location.removeprefix("r2://bucket/"))

    out = tmp_path / "out"
    locations = [
        str(out / "flat.png"),
        str(out / "a b" / "r#1?.png"),
        str(out / "a b" / "ü €.jpg"),
        str(out / "deep" / "er" / "x.thumb.jpg"),
        str(out / "a b" / "x"),
    ]
    for sink, where in (
        (LocalSink(out), locations),
        (Cdn(), ["r2://bucket/" + Path(p).relative_to(out).as_posix() for p in locations]),
    ):
        link = FolderLinks(sink)
        for location in where * 2:  # the second time from the folder's cached link
            assert link(location) == _href(sink.link(location)), location


def test_report_of_nothing_still_renders(tmp_path, browser):
    summary = synthetic_summary([synthetic_record(7, tmp_path / "out", random.Random(1))])  # one failed job
    summary.update(images=[], stages={}, counts={"ok": 0, "failed": 0, "skipped": 0})
    location = Path(write_report(summary, LocalSink(tmp_path / "out")))
    browser.load(location.as_uri())
    assert browser.evaluate("document.querySelectorAll('.card').length") == 0
    assert not browser.evaluate("document.getElementById('empty').hidden")
