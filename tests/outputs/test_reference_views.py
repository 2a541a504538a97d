"""Style references and room sets in the views rebuilt from the journal: records, order, report, sheet, index.

Outputs are synthetic: journal lines and flat-coloured JPEGs written straight into a folder, so a cell's colour
on the contact sheet says which file was drawn where, and no model runs.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.outputs.contact_sheet import key_line, layout, write_contact_sheet
from pipeline.outputs.index import COLUMNS, write_index
from pipeline.outputs.records import ImageRecord
from pipeline.outputs.report import FolderLinks, job_data, write_report
from pipeline.outputs.sinks import LocalSink
from pipeline.outputs.views import job_records, natural, output_summary
from tests.outputs.test_report import BOXES, page_jobs

INPUT, REFERENCE = (230, 200, 40), (40, 180, 200)
STYLE_COLOURS = {"modern": (40, 70, 200), "boho": (200, 40, 40)}
PREVIEW = "references/0123abcd4567ef89.jpg"
STYLES = ["modern", "boho"]  # the run's order: not by name, so a test sees that it is kept
# A set whose anchor's key sorts after its other photos', among inputs outside any set.
ANCHOR, MEMBERS, LONE = "room-b/3.jpg", ["room-b/2.jpg", "room-b/1.jpg"], ["room-b/4.jpg", "room-a/1.jpg"]


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (160, 120)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def stem(key: str, style: str) -> str:
    return Path(key).with_suffix(f".{style}").as_posix()


def entry(key: str, style: str, **extra) -> dict:
    """A finished job's journal line with one result, its outputs relative to the output's root."""
    outputs = {
        "result": f"{stem(key, style)}.png",
        "thumbnail": f"{stem(key, style)}.thumb.jpg",
        "input": f"{stem(key, style)}.input.jpg",
    }
    variation = {
        "n": 1,
        "seed": 7,
        "quality": 0.71,
        "passed": True,
        "outputs": {k: outputs[k] for k in ("result", "thumbnail")},
    }
    return {
        "id": f"in::{key}",
        "input": f"in/{key}",
        "key": key,
        "style": style,
        "status": "ok",
        "settings": f"hash-{style}",
        "room": "living room",
        "outputs": outputs,
        "seed": 7,
        "quality": 0.71,
        "passed": True,
        "attempts": 1,
        "variations": [variation],
        "finished": "2026-01-02T03:04:05+00:00",
        **extra,
    }


def reference_of(key: str, style: str, reference: bool) -> dict:
    """The set and reference fields a job's line carries: the anchor styled by --style-ref (when `reference`),
    each other photo of the set by the anchor's result in its style."""
    if key == ANCHOR:
        ref = (
            {
                "reference": {
                    "source": "/home/me/moods/warm oak.jpg",
                    "digest": "0123abcd4567ef89",
                    "scale": 0.6,
                    "preview": PREVIEW,
                }
            }
            if reference
            else {}
        )
        return {"set": "kitchen", "anchor": True, **ref}
    if key in MEMBERS:
        return {
            "set": "kitchen",
            "reference": {
                "source": ANCHOR,
                "digest": "89ef67a5cd23b101",
                "scale": 0.6,
                "preview": f"{stem(ANCHOR, style)}.thumb.jpg",
                "anchor": f"in::{ANCHOR}",
            },
        }
    return {}


def lines(sets: bool = True, reference: bool = True) -> list[dict]:
    """Every job, members written before their anchor and styles by name: nothing is in order already."""
    keys = [*MEMBERS, *LONE, ANCHOR]
    return [
        entry(key, style, **(reference_of(key, style, reference) if sets else {}))
        for key in keys
        for style in sorted(STYLES)
    ]


def output(folder: Path, journal: list[dict]) -> LocalSink:
    """An output folder holding the journal and every file it names (the reference's copy included)."""
    sink = LocalSink(folder)
    for line in journal:
        sink.write(line["outputs"]["input"], jpeg(INPUT))
        for kind in ("result", "thumbnail"):
            sink.write(line["outputs"][kind], jpeg(STYLE_COLOURS[line["style"]]))
    sink.write(PREVIEW, jpeg(REFERENCE))
    text = "".join(json.dumps(line) + "\n" for line in journal)
    sink.write(".modomo/journal.jsonl", text.encode())
    return sink


def read_input(sink: LocalSink):
    return lambda record: sink.read(sink.relative(record["outputs"]["input"]))


# Records.


def test_records_carry_the_set_and_the_reference_located_and_round_trip(tmp_path):
    sink = LocalSink(tmp_path / "out")
    line = entry(MEMBERS[0], "boho", **reference_of(MEMBERS[0], "boho", True))
    record = ImageRecord.from_entry(line, sink.locate)
    assert record.set == "kitchen" and record.anchor is False
    assert record.reference["source"] == ANCHOR and record.reference["anchor"] == f"in::{ANCHOR}"
    assert record.reference["scale"] == 0.6 and record.reference["digest"] == "89ef67a5cd23b101"
    assert record.reference["preview"] == sink.locate(f"{stem(ANCHOR, 'boho')}.thumb.jpg")  # as outputs are
    assert ImageRecord.from_json(record.to_json()) == record
    assert json.loads(json.dumps(record.to_json()))["reference"] == record.reference
    anchor = ImageRecord.from_entry(entry(ANCHOR, "boho", **reference_of(ANCHOR, "boho", True)), sink.locate)
    assert anchor.anchor is True and anchor.reference["preview"] == sink.locate(PREVIEW)
    assert line["reference"]["preview"] == f"{stem(ANCHOR, 'boho')}.thumb.jpg"  # the journal's line is untouched


def test_records_of_an_old_journal_have_no_set_and_no_reference(tmp_path):
    record = ImageRecord.from_entry(entry("room.jpg", "boho"), LocalSink(tmp_path).locate)
    assert (record.set, record.anchor, record.reference) == (None, False, {})
    assert ImageRecord.from_json(record.to_json()) == record
    positional = ImageRecord("in::a.jpg", "in/a.jpg", "a.jpg", "boho", "ok", None, "kitchen", outputs={"result": "r"})
    assert positional.room == "kitchen" and positional.set is None  # the new fields came last


# Order.


def test_a_sets_jobs_sit_together_where_its_anchor_sorts_anchor_first(tmp_path):
    records = job_records(output(tmp_path / "out", lines()), STYLES)
    order = [(r["key"], r["style"]) for r in records]
    assert order == [
        (key, style)
        for key in ["room-a/1.jpg", ANCHOR, "room-b/1.jpg", "room-b/2.jpg", "room-b/4.jpg"]
        for style in STYLES
    ]
    assert [r["set"] for r in records[2:8]] == ["kitchen"] * 6 and records[2]["anchor"] and records[3]["anchor"]


def test_a_set_whose_anchor_lines_are_gone_sorts_where_its_members_say_the_anchor_is(tmp_path):
    journal = [line for line in lines() if line["key"] != ANCHOR]
    order = [r["key"] for r in job_records(output(tmp_path / "out", journal), STYLES)][::2]
    assert order == ["room-a/1.jpg", "room-b/1.jpg", "room-b/2.jpg", "room-b/4.jpg"]


def test_an_old_journal_sorts_as_before(tmp_path):
    records = job_records(output(tmp_path / "out", lines(sets=False)), STYLES)
    before = sorted(records, key=lambda r: (natural(r["key"]), STYLES.index(r["style"])))
    assert records == before and [r["key"] for r in records][::2] == sorted(
        ["room-a/1.jpg", *MEMBERS, ANCHOR, "room-b/4.jpg"]
    )


# Report.


def test_report_names_the_set_and_links_the_reference_relatively(tmp_path):
    out = tmp_path / "out"
    sink = output(out, lines())
    page = Path(write_report(output_summary(sink), sink)).read_text()
    jobs = page_jobs(page)
    anchor = next(j for j in jobs if j["k"] == ANCHOR)
    member = next(j for j in jobs if j["k"] == MEMBERS[0] and j["s"] == "boho")
    assert anchor["g"] == "kitchen" and anchor["an"] is True
    assert anchor["rf"] == {"h": PREVIEW, "sc": 0.6, "src": "warm oak.jpg"}  # the file's name, not where it was
    assert member["rf"] == {"h": f"{stem(ANCHOR, 'boho')}.thumb.jpg", "sc": 0.6, "src": ANCHOR, "a": 1}
    assert "/home/me" not in page
    lone = next(j for j in jobs if j["k"] == "room-a/1.jpg")
    assert not {"g", "an", "rf"} & set(lone)
    for job in (anchor, member):
        assert not job["rf"]["h"].startswith(("/", "file:", "http")) and (out / job["rf"]["h"]).is_file()


@pytest.mark.parametrize("width", [1400, 390])
def test_report_shows_a_set_under_one_heading_with_its_references(tmp_path, browser, width):
    sink = output(tmp_path / "out", lines())
    location = Path(write_report(output_summary(sink), sink))
    browser.load(location.as_uri(), width=width, height=1400)
    browser.evaluate(
        "Promise.all([...document.images].filter(i => i.getAttribute('src')).map(i => { "
        "i.loading = 'eager'; return i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; }); "
        "}))"
    )  # lazy images below the fold would never load: fetch them all
    assert browser.evaluate(BOXES) == []
    sets = browser.evaluate("""[...document.querySelectorAll('#grid section.set')].map(s => ({
        title: s.querySelector('h3').textContent, about: s.querySelector('header span').textContent,
        cards: [...s.querySelectorAll('.card')].map(c => c.querySelector('h2').textContent),
        anchors: [...s.querySelectorAll('.tag.anchor')].length}))""")
    assert sets == [
        {
            "title": "Room set kitchen",
            "about": f"3 photos · anchor {ANCHOR}",
            "cards": [ANCHOR] * 2 + [MEMBERS[1]] * 2 + [MEMBERS[0]] * 2,
            "anchors": 2,
        }
    ]
    order = browser.evaluate("[...document.querySelectorAll('#grid .card h2')].map(h => h.textContent)")
    assert order[::2] == ["room-a/1.jpg", ANCHOR, "room-b/1.jpg", "room-b/2.jpg", "room-b/4.jpg"]
    refs = browser.evaluate("""[...document.querySelectorAll('#grid figure.ref')].map(f => ({
        src: f.querySelector('img').getAttribute('src'), href: f.querySelector('a').getAttribute('href'),
        loaded: f.querySelector('img').naturalWidth > 0, caption: f.querySelector('figcaption').textContent}))""")
    caption = "style referencescale 0.6warm oak.jpg"
    assert refs[0] == {"src": PREVIEW, "href": PREVIEW, "loaded": True, "caption": caption}
    anchor_result = f"{stem(ANCHOR, 'boho')}.thumb.jpg"  # no run history here: styles by name
    assert refs[2] == {"src": anchor_result, "href": anchor_result, "loaded": True, "caption": f"from anchor{ANCHOR}"}
    assert len(refs) == 6  # the anchor's two jobs and both members' two
    pixels = browser.screenshot(tmp_path / f"sets-{width}.png")
    assert pixels.std() > 20


def test_report_sorted_by_quality_tags_set_cards_instead(tmp_path, browser):
    sink = output(tmp_path / "out", lines())
    location = Path(write_report(output_summary(sink), sink))
    anchor = next(i for i, j in enumerate(page_jobs(location.read_text())) if j["k"] == ANCHOR)
    browser.load(location.as_uri() + f"#sort=quality&open={anchor}")
    assert browser.evaluate("document.querySelectorAll('#grid section.set').length") == 0
    assert browser.evaluate("document.querySelectorAll('#grid .tag.set').length") == 6
    facts = browser.evaluate("[...document.querySelectorAll('#v-facts tr')].map(r => r.textContent)")
    assert "room setkitchen (anchor)" in facts and "style referencewarm oak.jpg · scale 0.6" in facts


def test_report_of_an_old_journal_embeds_what_it_did(tmp_path, browser):
    sink = output(tmp_path / "out", lines(sets=False))
    summary = output_summary(sink)
    link = FolderLinks(sink)
    old = [{k: v for k, v in r.items() if k not in ("set", "anchor", "reference")} for r in summary["images"]]
    assert [job_data(r, link) for r in summary["images"]] == [job_data(r, link) for r in old]
    location = Path(write_report(summary, sink))
    assert not any({"g", "an", "rf"} & set(job) for job in page_jobs(location.read_text()))
    browser.load(location.as_uri())
    assert browser.evaluate("document.querySelectorAll('#grid section.set, #grid figure.ref, .tag.anchor').length") == 0
    assert browser.evaluate("document.querySelectorAll('#grid > .card').length") == len(summary["images"])


# Contact sheet.


def sheet(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def centre(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    left, top, right, bottom = box
    y, x = (top + bottom) // 2, (left + right) // 2
    return pixels[y - 10 : y + 10, x - 10 : x + 10].reshape(-1, 3).mean(axis=0)


def close(colour: np.ndarray, expected: tuple[int, int, int], tolerance: int = 24) -> bool:
    return bool(np.abs(colour - np.array(expected)).max() <= tolerance)


def test_contact_sheet_shows_the_reference_after_the_input(tmp_path):
    with_ref = output(tmp_path / "with", lines())
    records = job_records(with_ref, STYLES)
    [path] = write_contact_sheet(records[:8], with_ref, read_input(with_ref))
    grid = layout(records[:8])
    assert grid.reference and grid.columns == 3 and grid.first_result == 2  # input, reference, the one result
    pixels = sheet(path)
    rows = {(r["key"], r["style"]): n for n, r in enumerate(records[:8])}
    anchor, member, lone = rows[ANCHOR, "boho"], rows["room-b/1.jpg", "boho"], rows["room-a/1.jpg", "modern"]
    assert close(centre(pixels, grid.cell_box(anchor, 1)), REFERENCE)  # the --style-ref copy
    assert close(centre(pixels, grid.cell_box(member, 1)), STYLE_COLOURS["boho"])  # the anchor's boho result
    assert close(centre(pixels, grid.cell_box(anchor, 2)), STYLE_COLOURS["boho"])  # results moved one column on
    assert close(centre(pixels, grid.cell_box(lone, 1)), (246, 244, 240), 8)  # no reference: the column is empty
    plain = output(tmp_path / "plain", lines(sets=False))
    [plain_path] = write_contact_sheet(job_records(plain, STYLES)[:8], plain, read_input(plain))
    without = sheet(plain_path)
    assert layout(job_records(plain, STYLES)).columns == 2 and without.shape[1] < pixels.shape[1]
    left, top, right, bottom = grid.cell_box(anchor, 1)
    assert np.abs(pixels[top:bottom, left:right] - without[top:bottom, left:right]).mean() > 40


def test_contact_sheet_groups_a_set_with_a_bar_and_titles(tmp_path):
    sink = output(tmp_path / "out", lines())
    records = job_records(sink, STYLES)
    [path] = write_contact_sheet(records[:8], sink, read_input(sink))
    pixels, grid = sheet(path), layout(records[:8])
    bar = pixels[:, 26:34]
    accent = (np.abs(bar - np.array((184, 105, 58))).max(axis=2) < 30).all(axis=1)
    inside = [accent[grid.row_top(r) + 5 : grid.row_top(r) + grid.row_h - 30].all() for r in range(8)]
    assert inside == [False, False, True, True, True, True, True, True]  # the set's six rows, not the lone input's
    assert key_line(records[2], 1, 1) == f"Room set kitchen — anchor  ·  {ANCHOR}  ·  modern"
    assert key_line(records[4], 1, 1) == "Room set kitchen  ·  room-b/1.jpg  ·  modern"
    assert key_line(records[0], 1, 1) == "room-a/1.jpg  ·  modern"


def test_contact_sheet_of_an_old_journal_is_drawn_as_before(tmp_path):
    sink = output(tmp_path / "out", lines(sets=False))
    records = job_records(sink, STYLES)[:8]  # one page
    old = [{k: v for k, v in r.items() if k not in ("set", "anchor", "reference")} for r in records]
    grid = layout(records)
    assert grid == layout(old) and not grid.reference and grid.columns == 2
    [new_path] = write_contact_sheet(records, sink, read_input(sink))
    first = Path(new_path).read_bytes()
    [old_path] = write_contact_sheet(old, sink, read_input(sink))
    assert Path(old_path).read_bytes() == first


# Index.


def index_rows(folder: Path) -> list[dict]:
    text = (folder / "index.csv").read_bytes().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_index_adds_set_and_style_ref_columns_at_the_end(tmp_path):
    sink = output(tmp_path / "out", lines())
    write_index(sink)
    # only ever added at the end: set and style_ref after original, then original_url (--publish-originals)
    at = COLUMNS.index("set")  # then a declutter's numbers (issue 37)
    assert COLUMNS[at : at + 3] == ("set", "style_ref", "original_url") and COLUMNS.index("original") == at - 1
    rows = {(Path(r["input"]).as_posix().removeprefix("in/"), r["style"]): r for r in index_rows(tmp_path / "out")}
    assert list(next(iter(rows.values()))) == list(COLUMNS)
    cells = {job: (row["set"], row["style_ref"]) for job, row in rows.items()}
    assert cells[ANCHOR, "boho"] == ("kitchen", "/home/me/moods/warm oak.jpg")  # the index keeps the full source
    assert cells[MEMBERS[0], "modern"] == ("kitchen", ANCHOR)
    assert cells["room-a/1.jpg", "boho"] == ("", "")
