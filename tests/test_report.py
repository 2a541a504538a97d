"""report.html: every result and control map referenced, nothing from the network, and it renders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


class Links(HTMLParser):
    """Every src/href in the page, and whether any script or stylesheet is loaded from elsewhere."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


@pytest.fixture(scope="module")
def report_run(tiny_bundle, rooms, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    inputs = folder / "in"
    inputs.mkdir()
    shutil.copy(rooms / "living-room-02-small.jpg", inputs / "small room.jpg")
    shutil.copy(rooms / "living-room-01.jpg", inputs / "big.jpg")
    (inputs / "broken.jpg").write_bytes(b"not an image")
    out = folder / "out"
    result = CliRunner().invoke(app, ["transform", str(inputs), "--style", "boho,modern", "--models", str(tiny_bundle),
                                      "--out", str(out), "--size", "256", "--steps", "2", "--retries", "0",
                                      "--report", "--json"])
    assert result.exit_code == 3, result.output  # the broken file fails; the report is still written
    return out, json.loads(result.stdout), result.stderr


def test_report_references_every_result_and_control_map(report_run):
    out, summary, stderr = report_run
    page = (out / "report.html").read_text()
    parser = Links()
    parser.feed(page)
    for record in summary["images"]:
        if record["status"] != "ok":
            assert record["error"] in page
            continue
        for kind in ("result", "input", "depth", "edges", "masks"):
            relative = Path(record["outputs"][kind]).relative_to(out).as_posix()
            assert any(url.replace("%20", " ") == relative for url in parser.urls), (kind, relative)
            assert (out / relative).is_file()
    assert "report" in stderr and str(out / "report.html") in stderr


def test_report_loads_nothing_from_the_network(report_run):
    out, _, _ = report_run
    page = (out / "report.html").read_text()
    parser = Links()
    parser.feed(page)
    assert parser.urls and not [u for u in parser.urls if re.match(r"^[a-z]+:", u) or u.startswith("//")]
    assert "@import" not in page and "url(" not in page


def test_masks_preview_is_drawn(report_run):
    out, summary, _ = report_run
    record = next(r for r in summary["images"] if r["status"] == "ok")
    masks = np.asarray(Image.open(record["outputs"]["masks"]).convert("RGB"), dtype=np.int16)
    photo = np.asarray(Image.open(record["outputs"]["input"]).convert("RGB"), dtype=np.int16)
    assert masks.shape == photo.shape and np.abs(masks - photo).mean() > 1  # tinted masks, boxes and labels


def test_report_renders_in_headless_chromium(report_run, tmp_path):
    out, _, _ = report_run
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed for this test: `make test` installs it"
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1280,1600", (out / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[:2] == (1600, 1280)
    assert pixels.std() > 20  # not a blank page: header, bars, photos
    header = pixels[:60].mean(axis=(0, 1))
    assert header.mean() < 80  # the dark header is there


def test_report_in_r2_links_results_by_cdn_url(tiny_bundle, rooms, moto_server, r2_env, monkeypatch):
    monkeypatch.setenv("CDN_DOMAIN", "cdn.example.com")
    result = CliRunner().invoke(app, ["transform", str(rooms / "living-room-02-small.jpg"), "--models",
                                      str(tiny_bundle), "--out", "r2:///out/", "--size", "128", "--steps", "1",
                                      "--retries", "0", "--report"])
    assert result.exit_code == 0, result.output
    client = moto_server.client()
    head = client.head_object(Bucket=r2_env, Key="out/report.html")
    assert head["ContentType"].startswith("text/html")
    page = client.get_object(Bucket=r2_env, Key="out/report.html")["Body"].read().decode()
    parser = Links()
    parser.feed(page)
    images = [u for u in parser.urls if u.endswith((".png", ".jpg"))]
    assert images and all(u.startswith("https://cdn.example.com/out/") for u in images)
