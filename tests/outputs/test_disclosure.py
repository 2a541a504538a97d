"""`--disclose TEXT` draws a legible label in a corner of every result and thumbnail and leaves the rest of
the picture as it is without it; a style file can set it; the index links every result to its original."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.outputs.disclosure import disclose, label_box

TEXT = "Virtually staged"


def run(tiny_bundle, photo, out, *extra) -> dict:
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(photo),
            "--models",
            str(tiny_bundle),
            "--out",
            str(out),
            "--size",
            "128",
            "--steps",
            "1",
            "--retries",
            "0",
            "--style",
            "boho",
            "--json",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_disclose_changes_the_corner_and_nothing_else(tiny_bundle, rooms, tmp_path):
    photo = tmp_path / "room.jpg"
    shutil.copy(rooms / "living-room-02-small.jpg", photo)
    plain = run(tiny_bundle, photo, tmp_path / "plain")["images"][0]
    shown = run(tiny_bundle, photo, tmp_path / "shown", "--disclose", TEXT)["images"][0]
    for kind, spill in (("result", 0), ("thumbnail", 16)):  # a JPEG thumbnail's 8x8 blocks by the label move
        a, b = pixels(plain["outputs"][kind]), pixels(shown["outputs"][kind])
        (x0, y0, x1, y1), _ = label_box((a.shape[1], a.shape[0]), TEXT)
        inside = np.zeros(a.shape[:2], dtype=bool)
        inside[y0:y1, x0:x1] = True
        assert np.abs(a - b)[inside].mean() > 20, kind  # the label is there
        away = np.ones(a.shape[:2], dtype=bool)
        away[max(0, y0 - spill) : y1 + spill, max(0, x0 - spill) : x1 + spill] = False
        assert np.abs(a - b)[away].max() <= (0 if kind == "result" else 3), kind  # the rest is as without it
    meta = json.loads(open(shown["outputs"]["metadata"]).read())
    assert meta["settings"]["disclose"] == TEXT


def test_the_label_is_legible_on_light_and_dark_pictures():
    for shade in (0, 255):
        picture = Image.new("RGB", (768, 576), (shade, shade, shade))
        (x0, y0, x1, y1), _ = label_box(picture.size, TEXT)
        box = np.asarray(disclose(picture, TEXT), dtype=np.int16)[y0:y1, x0:x1].mean(axis=2)
        text, ground = np.percentile(box, 99), np.percentile(box, 10)
        assert text - ground > 120, shade  # light text on a dark box, whatever is behind it
        assert x1 - x0 < 768 // 2 and y1 - y0 < 576 // 8  # small: a corner, not a banner


def test_a_style_file_sets_it_and_the_index_links_the_original(tiny_bundle, rooms, tmp_path):
    from styles import STYLE_DIR

    photo = tmp_path / "room.jpg"
    shutil.copy(rooms / "living-room-02-small.jpg", photo)
    style = tmp_path / "staged.toml"
    style.write_text(
        (STYLE_DIR / "boho.toml").read_text().replace('name = "boho"', f'name = "staged"\ndisclose = "{TEXT}"')
    )  # a top-level key, before any table
    result = CliRunner().invoke(
        app,
        [
            "transform",
            str(photo),
            "--models",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "out"),
            "--size",
            "128",
            "--steps",
            "1",
            "--retries",
            "0",
            "--style-file",
            str(style),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["images"][0]
    assert json.loads(open(record["outputs"]["metadata"]).read())["settings"]["disclose"] == TEXT
    with open(tmp_path / "out" / "index.csv", encoding="utf-8-sig", newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["original"] == str(photo)
