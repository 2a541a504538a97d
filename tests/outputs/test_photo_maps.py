"""Control maps belong to the photo: one `room.depth.png` / `room.input.jpg` / `room.masks.jpg` for all its styles,
edge maps per style; names that would collide with them refused before models load; outputs with the earlier
per-style names still shown; and `--report` added to a finished output shows each photo's "before" (made from the
photo, no model loaded) or says it was not kept, never a broken picture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.outputs.names import PHOTO_MAPS
from styles import PHOTO_KINDS, STYLE_DIR
from tests.outputs.test_portable_output import local_links, sheet_cells_filled
from tests.outputs.test_report import page_jobs

SMALL, LARGE = "living-room-02-small.jpg", "living-room-01.jpg"
SHARED = {"input": "phone.input.jpg", "depth": "phone.depth.png", "masks": "phone.masks.jpg"}
IMAGES_LOADED = (
    "Promise.all([...document.images].filter(i => i.getAttribute('src') && i.getClientRects().length)"
    ".map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })))"
)
BROKEN = (
    "[...document.images].filter(i => i.getAttribute('src') && i.getClientRects().length"
    " && !(i.complete && i.naturalWidth)).map(i => i.getAttribute('src'))"
)


def transform(inputs: Path, out: Path, bundle: Path, *extra: str):
    return CliRunner().invoke(
        app,
        [
            "transform",
            str(inputs),
            "--models",
            str(bundle),
            "--out",
            str(out),
            "--size",
            "128",
            "--steps",
            "2",
            "--retries",
            "0",
            "--json",
            *extra,
        ],
    )


def no_models(*args, **kwargs):
    raise AssertionError("the models were loaded")


def photos(folder: Path, rooms: Path, **names: str) -> Path:
    folder.mkdir(parents=True)
    for name, photo in names.items():
        shutil.copy(rooms / photo, folder / f"{name}.jpg")
    return folder


@pytest.fixture(scope="module")
def two_styles(tiny_bundle, rooms, tmp_path_factory):
    """One photo, phone.jpg, in boho and modern with --report: (inputs, output, summary)."""
    folder = tmp_path_factory.mktemp("two-styles")
    inputs = photos(folder / "in", rooms, phone=SMALL)
    result = transform(inputs, folder / "out", tiny_bundle, "--style", "boho,modern", "--report")
    assert result.exit_code == 0, result.output
    return inputs, folder / "out", json.loads(result.stdout)


@pytest.fixture(scope="module")
def plain(tiny_bundle, rooms, tmp_path_factory):
    """Two photos in boho, no --report: nothing saves their inputs or maps. (inputs, output)"""
    folder = tmp_path_factory.mktemp("plain")
    inputs = photos(folder / "in", rooms, phone=SMALL, room=LARGE)
    result = transform(inputs, folder / "out", tiny_bundle, "--style", "boho")
    assert result.exit_code == 0, result.output
    assert not list((folder / "out").glob("*.input.jpg"))
    return inputs, folder / "out"


def report_again(inputs: Path, out: Path, bundle: Path, styles: str = "boho", *extra: str) -> dict:
    """The same command with --report (and `extra`) on a finished output, the model loader made to fail."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pipeline.run.engines.local.load_stack", no_models)
        result = transform(inputs, out, bundle, "--style", styles, "--report", *extra)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["loaded"] is False and summary["counts"]["ok"] == 0
    return summary


def copy_of(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to)
    return to


def test_the_kinds_no_style_may_take_are_the_photos_own_maps():
    assert tuple(PHOTO_MAPS) == PHOTO_KINDS


def test_two_styles_share_one_set_of_photo_maps_and_keep_their_own_edges(two_styles):
    _, out, summary = two_styles
    for kind, name in SHARED.items():
        assert sorted(p.name for p in out.glob(f"*{PHOTO_MAPS[kind][1]}")) == [name]
    assert sorted(p.name for p in out.glob("*.edges.png")) == ["phone.boho.edges.png", "phone.modern.edges.png"]
    for style in ("boho", "modern"):
        outputs = json.loads((out / f"phone.{style}.json").read_text())["outputs"]
        assert {k: outputs[k] for k in SHARED} == SHARED
        assert outputs["edges"] == f"phone.{style}.edges.png"
    for record in summary["images"]:
        assert {k: Path(record["outputs"][k]).name for k in SHARED} == SHARED


def test_a_template_with_folders_finds_the_photos_maps_from_its_metadata(tiny_bundle, rooms, tmp_path):
    inputs = photos(tmp_path / "in", rooms, phone=SMALL)
    out = tmp_path / "out"
    result = transform(inputs, out, tiny_bundle, "--style", "boho,modern", "--name", "{style}/{stem}", "--report")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.depth.png")) == ["phone.depth.png"]
    for style in ("boho", "modern"):
        outputs = json.loads((out / style / "phone.json").read_text())["outputs"]
        assert outputs["depth"] == "../phone.depth.png" and outputs["edges"] == "phone.edges.png"
        assert all((out / style / name).is_file() for name in outputs.values())


def style_file(folder: Path, name: str) -> Path:
    text = (STYLE_DIR / "boho.toml").read_text().replace('name = "boho"', f'name = "{name}"', 1)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["depth", "Input", "masks"])
def test_a_style_named_after_a_photo_map_is_refused_in_one_line_before_models_load(
    name, tiny_bundle, rooms, tmp_path, monkeypatch
):
    monkeypatch.setattr("pipeline.run.engines.local.load_stack", no_models)
    inputs = photos(tmp_path / "in", rooms, phone=SMALL)
    result = transform(inputs, tmp_path / "out", tiny_bundle, "--style-file", str(style_file(tmp_path, name)))
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert f"field 'name' must not be {name!r}" in line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.json"))


@pytest.mark.parametrize(
    "template, taken",
    [
        ("{stem}.depth", "'s depth map"),  # phone.depth.png would be a result and a map
        ("{stem}-x", "phone-x.jpg's own stem"),  # phone.jpg's result would be phone-x.jpg's maps' stem
    ],
)
def test_a_name_that_would_take_a_photo_maps_name_is_refused_in_one_line_before_models_load(
    template, taken, tiny_bundle, rooms, tmp_path, monkeypatch
):
    monkeypatch.setattr("pipeline.run.engines.local.load_stack", no_models)
    inputs = photos(tmp_path / "in", rooms, phone=SMALL, **{"phone-x": SMALL})
    result = transform(inputs, tmp_path / "out", tiny_bundle, "--style", "boho", "--name", template)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert f"--name {template!r}" in line and taken in line
    assert not list((tmp_path / "out").rglob("*.json"))


def test_an_output_with_the_earlier_per_style_map_names_still_shows_them(two_styles, tiny_bundle, tmp_path, browser):
    """Maps named after the first style (`phone.boho.depth.png`), as earlier versions wrote them, in the journal and
    the metadata: the report, the viewer and the contact sheet show them, and nothing is written under the new
    names."""
    inputs, out, _ = two_styles
    old = copy_of(out, tmp_path / "old")
    for name in SHARED.values():
        earlier = name.replace("phone.", "phone.boho.", 1)
        (old / name).rename(old / earlier)
        for text in [old / ".modomo" / "journal.jsonl", *old.glob("*.json")]:
            text.write_text(text.read_text().replace(f'"{name}"', f'"{earlier}"'))
    report_again(inputs, old, tiny_bundle, "boho,modern", "--contact-sheet")
    assert not [name for name in SHARED.values() if (old / name).exists()]
    page = (old / "report.html").read_text()
    jobs = page_jobs(page)
    assert [j["in"] for j in jobs] == ["phone.boho.input.jpg"] * 2
    assert {j["mp"]["depth"] for j in jobs} == {"phone.boho.depth.png"}
    assert not [link for link in local_links(page) if not (old / link).is_file()]
    assert sheet_cells_filled(old, 2)
    browser.load((old / "report.html").as_uri() + "#open=1")
    browser.evaluate(IMAGES_LOADED)
    assert browser.evaluate(BROKEN) == []
    assert browser.evaluate("document.querySelectorAll('#v-maps img').length") == len(jobs[1]["mp"]) >= 3
    assert browser.evaluate("document.querySelector('.compare .before').hidden") is False


def test_report_added_later_makes_each_photos_before_without_loading_a_model(
    plain, two_styles, tiny_bundle, tmp_path, browser
):
    inputs, out = plain
    out = copy_of(out, tmp_path / "out")
    report_again(inputs, out, tiny_bundle)
    assert sorted(p.name for p in out.glob("*.input.jpg")) == ["phone.input.jpg", "room.input.jpg"]
    made_by_a_run = two_styles[1] / "phone.input.jpg"  # the same photo at the same size, written by a run
    assert (out / "phone.input.jpg").read_bytes() == made_by_a_run.read_bytes()
    jobs = page_jobs((out / "report.html").read_text())
    assert [j.get("in") for j in jobs] == ["phone.input.jpg", "room.input.jpg"] and not any(j.get("mp") for j in jobs)
    browser.load((out / "report.html").as_uri())
    browser.evaluate(IMAGES_LOADED)
    assert browser.evaluate("document.querySelectorAll('.card figure.photo img').length") == 2
    assert browser.evaluate("document.querySelectorAll('.card figure.gone').length") == 0
    assert browser.evaluate(BROKEN) == []
    browser.load((out / "report.html").as_uri() + "#open=0")
    browser.evaluate(IMAGES_LOADED)
    assert browser.evaluate("document.getElementById('v-maps').textContent") == "control maps not kept"
    assert browser.evaluate("document.getElementById('v-gone').hidden") is True
    assert browser.evaluate(BROKEN) == []


def test_report_added_later_says_before_not_kept_where_the_photo_is_gone(plain, tiny_bundle, tmp_path, browser):
    inputs, out = plain
    inputs, out = copy_of(inputs, tmp_path / "in"), copy_of(out, tmp_path / "out")
    (inputs / "room.jpg").unlink()
    report_again(inputs, out, tiny_bundle)
    assert sorted(p.name for p in out.glob("*.input.jpg")) == ["phone.input.jpg"]
    jobs = page_jobs((out / "report.html").read_text())
    assert [(j["k"], j.get("in")) for j in jobs] == [("phone.jpg", "phone.input.jpg"), ("room.jpg", None)]
    browser.load((out / "report.html").as_uri())
    browser.evaluate(IMAGES_LOADED)
    gone = browser.evaluate(
        "[...document.querySelectorAll('.card')].map(c => [c.querySelector('h2').textContent,"
        " (c.querySelector('figure.gone') || {}).textContent || null, c.querySelectorAll('figure.photo img').length])"
    )
    assert gone == [["phone.jpg", None, 1], ["room.jpg", "before not keptphoto", 0]]
    assert browser.evaluate(BROKEN) == []
    browser.load((out / "report.html").as_uri() + "#open=1")
    browser.evaluate(IMAGES_LOADED)
    assert browser.evaluate("document.getElementById('v-gone').hidden") is False
    assert browser.evaluate("document.querySelector('.compare .before').hidden") is True
    assert browser.evaluate(BROKEN) == []
