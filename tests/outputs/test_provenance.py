"""Every result and thumbnail says it is an AI-edited photo: IPTC's digital source type in an XMP packet,
read back here with the standard library's XML parser from the file's own bytes (not the code that wrote it),
in PNG, JPEG and WebP; `modomo verify` reports it and fails a file without it."""

from __future__ import annotations

import json
import re
import shutil
import xml.dom.minidom
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modomo_cli.app import app

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


def packet(path: Path) -> xml.dom.minidom.Document:
    """The XMP packet found in a file's bytes, parsed by minidom."""
    found = re.search(rb"<x:xmpmeta.*?</x:xmpmeta>", path.read_bytes(), re.S)
    assert found, f"{path.name} has no XMP packet"
    return xml.dom.minidom.parseString(found.group(0))


def described(document: xml.dom.minidom.Document) -> tuple[str, str, str]:
    [node] = document.getElementsByTagNameNS("http://www.w3.org/1999/02/22-rdf-syntax-ns#", "Description")
    text = document.getElementsByTagNameNS("http://www.w3.org/1999/02/22-rdf-syntax-ns#", "li")[0].firstChild.data
    return (
        node.getAttributeNS("http://iptc.org/std/Iptc4xmpExt/2008-02-29/", "DigitalSourceType"),
        node.getAttributeNS("http://ns.adobe.com/xap/1.0/", "CreatorTool"),
        text,
    )


@pytest.fixture(scope="module")
def outputs(tiny_bundle, rooms, tmp_path_factory) -> dict[str, Path]:
    """One tiny run per format: the output folders."""
    folder = tmp_path_factory.mktemp("provenance")
    shutil.copy(rooms / "living-room-02-small.jpg", folder / "room.jpg")
    made = {}
    for fmt in ("png", "jpeg", "webp"):
        out = folder / f"out-{fmt}"
        result = CliRunner().invoke(
            app,
            [
                "transform",
                str(folder / "room.jpg"),
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
                "--room",
                "bedroom",
                "--style",
                "boho",
                "--format",
                fmt,
            ],
        )
        assert result.exit_code == 0, result.output
        made[fmt] = out
    return made


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_results_and_thumbnails_are_marked(outputs, fmt):
    from pipeline import __version__

    extension = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[fmt]
    for path in (outputs[fmt] / f"room.boho{extension}", outputs[fmt] / "room.boho.thumb.jpg"):
        source, tool, text = described(packet(path))
        assert source == SOURCE_TYPE, path.name
        assert tool == f"modomo {__version__}"
        assert "boho" in text and "bedroom" in text and "AI-edited" in text


def test_verify_reports_every_marked_result_and_fails_an_unmarked_one(outputs, tmp_path):
    result = CliRunner().invoke(app, ["verify", str(outputs["png"]), "--json"])
    assert result.exit_code == 0, result.output
    checked = [c for c in json.loads(result.stdout) if c["kind"] == "generated"]
    assert [Path(c["file"]).name for c in checked] == ["room.boho.png", "room.boho.thumb.jpg"]
    assert all(c["marked"] and c["source_type"] == SOURCE_TYPE for c in checked)
    stripped = tmp_path / "stripped.png"
    from PIL import Image

    Image.open(outputs["png"] / "room.boho.png").save(stripped)  # re-saved without its metadata
    result = CliRunner().invoke(app, ["verify", str(stripped)])
    assert result.exit_code == 1 and "unmarked" in result.stderr and "stripped.png" in result.stderr


def test_verify_of_nothing_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["verify", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file" in result.stderr
