"""`modomo verify`: whether each result says what it is. Its XMP packet is found in the file's bytes (PNG iTXt,
JPEG APP1, WebP XMP chunk alike) and read with an XML parser, independently of the code that wrote it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.inputs.imaging import IMAGE_SUFFIXES
from pipeline.outputs.index import latest_jobs
from pipeline.outputs.journal import Journal
from pipeline.outputs.provenance import DIGITAL_SOURCE_TYPE, DUBLIN_CORE, IPTC_EXT, RDF, XMP_BASIC
from pipeline.outputs.sinks import open_sink

START, END = b"<x:xmpmeta", b"</x:xmpmeta>"


def xmp_of(data: bytes) -> ET.Element | None:
    """The file's XMP packet as XML, or None when it has none (or a broken one)."""
    start = data.find(START)
    end = data.find(END, start)
    if start < 0 or end < 0:
        return None
    try:
        return ET.fromstring(data[start:end + len(END)])
    except ET.ParseError:
        return None


def marking(data: bytes) -> dict:
    """What a file says about itself: its digital source type, creator tool and description."""
    root = xmp_of(data)
    found = {"source_type": None, "creator_tool": None, "description": None}
    if root is not None:
        for node in root.iter(f"{{{RDF}}}Description"):
            found["source_type"] = found["source_type"] or node.get(f"{{{IPTC_EXT}}}DigitalSourceType")
            found["creator_tool"] = found["creator_tool"] or node.get(f"{{{XMP_BASIC}}}CreatorTool")
            text = node.find(f"{{{DUBLIN_CORE}}}description/{{{RDF}}}Alt/{{{RDF}}}li")
            found["description"] = found["description"] or (text.text if text is not None else None)
    found["marked"] = found["source_type"] == DIGITAL_SOURCE_TYPE
    return found


def output_files(sink) -> list[str]:
    """An output's results and thumbnails, from its journal, relative to its root."""
    names = []
    for entry in latest_jobs(Journal(sink).entries()):
        for variation in entry.get("variations") or [entry]:
            outputs = variation.get("outputs") or {}
            names += [outputs[k] for k in ("result", "thumbnail") if outputs.get(k)]
    return names


def verify(target: str) -> list[dict]:
    """Per result (or image file): its marking. A folder that is an output is read from its journal; any other
    folder, for every image in it."""
    path = Path(target).expanduser()
    sink = open_sink(target)
    if path.is_file():
        return [{"file": str(path), **marking(path.read_bytes())}]
    if sink.is_output():
        return [{"file": sink.locate(name), **marking(sink.read(name) or b"")} for name in output_files(sink)]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                       and ".modomo" not in p.parts)
        return [{"file": str(p), **marking(p.read_bytes())} for p in files]
    raise UsageError(f"{target}: no such file, folder or output")
