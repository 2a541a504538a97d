"""report.html's layout, measured in headless Chromium: the viewer's before and after fill one box whatever their
natural sizes (a working-size "before" beside a full-size "after"), the opened job's title wraps by words on a
phone, the stage chart's tracks end at one x; and the header names the runs that made the results, not a rerun
that found them done."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from pipeline.outputs.history import record_run
from pipeline.outputs.report import write_report
from pipeline.outputs.sinks import LocalSink
from pipeline.outputs.views import output_summary

KEY = "rooms/living-room-north-wall-client-copy-final.jpg"
BEFORE, AFTER = (64, 48), (512, 384)  # `--size 64` beside `--output-size 512`
IMAGES_LOADED = (
    "Promise.all([...document.images].filter(i => i.getAttribute('src') && i.getClientRects().length)"
    ".map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })))"
)
BOX = "(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })"


def jpeg(photo: Image.Image, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    photo.resize(size, Image.Resampling.BILINEAR).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def record(out: Path, photo: Image.Image) -> dict:
    """One job with three variations: its before at the working size, its results at the output size."""
    stem = out / "rooms" / "living-room-north-wall-client-copy-final"
    stem.parent.mkdir(parents=True)
    (before := Path(f"{stem}.input.jpg")).write_bytes(jpeg(photo, BEFORE))
    variations = []
    for n in (1, 2, 3):
        result, thumb = Path(f"{stem}.boho.v{n}.jpg"), Path(f"{stem}.boho.v{n}.thumb.jpg")
        result.write_bytes(jpeg(photo, AFTER))
        thumb.write_bytes(jpeg(photo, (160, 120)))
        outputs = {"result": str(result), "thumbnail": str(thumb)}
        variations.append({"n": n, "seed": 10 + n, "quality": 0.9 - n / 10, "passed": True, "outputs": outputs})
    return {
        "key": KEY,
        "style": "boho",
        "status": "ok",
        "quality": 0.8,
        "passed": True,
        "timings": {"decode": 0.012, "generate": 12.345},
        "variations": variations,
        "outputs": {**variations[0]["outputs"], "input": str(before)},
    }


@pytest.fixture(scope="module")
def page(rooms, tmp_path_factory) -> Path:
    """report.html of one job whose "before" is far smaller than its "after", with a stage chart whose values
    differ in width (0.012 s beside 12.345 s)."""
    out = tmp_path_factory.mktemp("layout") / "out"
    with Image.open(rooms / "living-room-02-small.jpg") as photo:
        job = record(out, photo.convert("RGB"))
    summary = {
        "images": [job],
        "counts": {"ok": 1, "failed": 0, "skipped": 0},
        "settings": {"room": "living room", "size": 64, "steps": 2},
        "styles": {"names": ["boho"]},
        "device": "cpu",
        "stages": {
            "decode": {"mean": 0.012, "share": 0.001},
            "edges": {"mean": 0.4, "share": 0.031},
            "generate": {"mean": 12.345, "share": 0.968},
        },
        "quality": {"mean": 0.8, "success_rate": 1.0},
        "images_per_minute": 4.0,
        "cost": {"currency": "USD", "per_image": 0.0, "total": 0.0},
    }
    return Path(write_report(summary, LocalSink(out)))


@pytest.mark.parametrize("width", [1400, 390])
def test_before_and_after_fill_the_same_box_whatever_their_sizes(page, browser, width):
    browser.load(page.as_uri() + "#open=0&v=2", width=width, height=1000)
    browser.evaluate(IMAGES_LOADED)
    after, before = (browser.evaluate(f"{BOX}(document.getElementById('{i}'))") for i in ("v-after", "v-before"))
    natural = browser.evaluate("(i => [i.naturalWidth, i.naturalHeight])(document.getElementById('v-before'))")
    assert natural == list(BEFORE) and after[2] > 2 * BEFORE[0]  # a small before, a large after on screen
    assert before == pytest.approx(after, abs=1), (before, after)


def test_the_opened_jobs_title_wraps_by_words_on_a_phone(page, browser):
    """A 51-character name at 390 px: a few lines across the panel, not a letter per line beside the buttons."""
    browser.load(page.as_uri() + "#open=0", width=390, height=900)
    title = browser.evaluate(
        "(h => { const r = h.getBoundingClientRect(), p = h.closest('.panel').getBoundingClientRect();"
        " return {height: r.height, width: r.width, line: parseFloat(getComputedStyle(h).lineHeight),"
        " inside: r.left >= p.left - 1 && r.right <= p.right + 1}; })(document.getElementById('v-title'))"
    )
    assert title["line"] > 0 and round(title["height"] / title["line"]) <= 3, title
    assert title["width"] > 200 and title["inside"], title


@pytest.mark.parametrize("width", [1400, 390])
def test_every_stage_track_ends_at_the_same_x(page, browser, width):
    browser.load(page.as_uri(), width=width, height=900)
    tracks = browser.evaluate(
        "[...document.querySelectorAll('.bar .track')].map(t => (r => [r.left, r.right])(t.getBoundingClientRect()))"
    )
    assert len(tracks) == 3
    assert max(r for _, r in tracks) - min(r for _, r in tracks) < 0.5, tracks
    assert max(left for left, _ in tracks) - min(left for left, _ in tracks) < 0.5, tracks
    assert min(r - left for left, r in tracks) > 40  # a track, not a sliver
    assert browser.evaluate("document.documentElement.scrollWidth <= innerWidth")


def header_text(page: str) -> str:
    found = re.search(r'<header class="top">(.*?)</header>', page, re.S)
    assert found
    return re.sub(r"<[^>]+>", " ", found.group(1)).replace("&middot;", "·")


def run_summary(device: dict, ok: int, skipped: int, size: int) -> dict:
    """A run's summary as `record_run` gets it (the fields the history keeps)."""
    return {
        "device": device,
        "counts": {"ok": ok, "failed": 0, "skipped": skipped},
        "settings": {"size": size, "steps": 20, "room": "living room"},
        "styles": {"names": ["boho"]},
    }


def test_header_names_the_runs_that_made_the_results_not_a_rerun_that_skipped(tmp_path):
    sink = LocalSink(tmp_path / "out")
    record_run(sink, run_summary({"type": "cuda", "name": "NVIDIA A10G"}, ok=1, skipped=0, size=512))
    record_run(sink, run_summary({"type": "cuda", "name": "NVIDIA H100 80GB HBM3"}, ok=1, skipped=1, size=768))
    record_run(sink, run_summary({"type": "none", "name": "none: nothing to do"}, ok=0, skipped=2, size=640))
    page = Path(write_report(output_summary(sink), sink)).read_text()
    header = header_text(page)
    assert "nothing to do" not in header and "640 px" not in header, header
    assert "NVIDIA H100 80GB HBM3, NVIDIA A10G" in header and "768 px" in header, header
    assert "none: nothing to do" in page  # the history table still lists the rerun as it was
