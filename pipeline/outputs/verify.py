"""`modomo verify`: whether each result says what it is. Its XMP packet is found in the file's bytes (PNG iTXt,
JPEG APP1, WebP XMP chunk alike) and read with an XML parser, independently of the code that wrote it; its C2PA
manifest, when it has one, is validated by c2pa's own Reader (signature, and the hash binding to the bytes).

Each entry has a `kind`: "generated" (a result, thumbnail or contact sheet page: must be marked), "photo" (a
report's `<photo>.input.jpg` preview or an original published under `originals/`: the photo itself, left unmarked
and not failed) or "skipped" (not an image,
or in an output a picture that shows no generated result, like a depth map: nothing to check)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.outputs.credentials import TRUST_CODES
from pipeline.outputs.index import latest_jobs
from pipeline.outputs.journal import Journal
from pipeline.outputs.names import ORIGINALS
from pipeline.outputs.provenance import DIGITAL_SOURCE_TYPE, DUBLIN_CORE, IPTC_EXT, RDF, XMP_BASIC
from pipeline.outputs.signing import image_mime
from pipeline.outputs.sinks import open_sink

PREVIEW = ".input.jpg"  # the report's "before" preview of a photo: the photo, not a generated picture


def is_photo(name: str) -> bool:
    """A photo kept in an output: a "before" preview, or an original published with --publish-originals."""
    return name.endswith(PREVIEW) or name.startswith(ORIGINALS) or f"/{ORIGINALS}" in name


START, END = b"<x:xmpmeta", b"</x:xmpmeta>"


def xmp_of(data: bytes) -> ET.Element | None:
    """The file's XMP packet as XML, or None when it has none (or a broken one)."""
    start = data.find(START)
    end = data.find(END, start)
    if start < 0 or end < 0:
        return None
    try:
        return ET.fromstring(data[start : end + len(END)])
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


def content_credentials(data: bytes) -> dict | None:
    """The file's C2PA manifest as c2pa's Reader validates it, or None when it has none. `valid`: the signature
    and the hash binding hold (a chain the validator does not trust is reported in `trusted`, not failed)."""
    import c2pa

    mime = image_mime(data)
    if mime is None:
        return None
    try:
        with c2pa.Reader(mime, io.BytesIO(data)) as reader:
            state, results = reader.get_validation_state(), reader.get_validation_results() or {}
            active = reader.get_active_manifest() or {}
    except c2pa.C2paError.ManifestNotFound:
        return None
    except c2pa.C2paError as exc:
        return {"valid": False, "state": "Unreadable", "failures": [" ".join(str(exc).split())]}
    codes = [f["code"] for f in (results.get("activeManifest") or {}).get("failure", [])]
    actions = [
        action
        for assertion in active.get("assertions", [])
        if assertion["label"].startswith("c2pa.actions")
        for action in assertion["data"].get("actions", [])
    ]
    signature = active.get("signature_info") or {}
    problems = [code for code in codes if code not in TRUST_CODES]
    return {
        "valid": state in ("Valid", "Trusted") and not problems,
        "state": state,
        "trusted": state == "Trusted",
        "failures": problems,
        "signer": signature.get("common_name"),
        "issuer": signature.get("issuer"),
        "ingredients": [ingredient.get("title") for ingredient in active.get("ingredients", [])],
        "actions": [action["action"] for action in actions],
        "source_type": next((a["digitalSourceType"] for a in actions if a.get("digitalSourceType")), None),
    }


def checked(name: str, data: bytes, signed: bool = False) -> dict:
    """One file's marking and credentials; `ok` when it is marked and any manifest it has (or, `signed`,
    must have) validates."""
    if data and image_mime(data) is None:
        return skipped(name, "not an image", ok=False)
    found = {"file": name, "kind": "generated", "signed": signed, **marking(data), "c2pa": content_credentials(data)}
    credentials = found["c2pa"]
    found["ok"] = found["marked"] and (credentials["valid"] if credentials else not signed)
    return found


def skipped(name: str, reason: str, ok: bool = True) -> dict:
    """A file verify does not check (`ok` False when it was asked about that file alone)."""
    return {"file": name, "kind": "skipped", "reason": reason, "marked": False, "c2pa": None, "ok": ok}


def preview(name: str, data: bytes) -> dict:
    """A photo's preview: reported with its marking, never failed for lacking one."""
    return {"file": name, "kind": "photo", **marking(data), "c2pa": content_credentials(data), "ok": True}


def in_folder(name: str, data: bytes) -> dict:
    """A file met in a folder: an image is checked (a preview as the photo it is); anything else skipped."""
    if image_mime(data) is None:
        return skipped(name, "not an image")
    return preview(name, data) if is_photo(name) else checked(name, data)


def output_files(sink) -> list[tuple[str, bool]]:
    """An output's results and thumbnails, from its journal, relative to its root; and whether each was signed;
    then its contact sheet pages (signed when every job was)."""
    from pipeline.outputs.contact_sheet import sheet_name

    names, signed = [], []
    for entry in latest_jobs(Journal(sink).entries()):
        signed.append(bool(entry.get("signed")))
        for variation in entry.get("variations") or [entry]:
            outputs = variation.get("outputs") or {}
            names += [(outputs[k], signed[-1]) for k in ("result", "thumbnail") if outputs.get(k)]
    page = 1
    while sink.size(sheet_name(page)) is not None:
        names.append((sheet_name(page), bool(signed) and all(signed)))
        page += 1
    return names


def output_rest(path: Path, done: set[str]) -> list[dict]:
    """A local output's other files: previews as photos, non-images and other pictures (maps) skipped."""
    entries = []
    for file in files_in(path):
        name = file.relative_to(path).as_posix()
        if name in done:
            continue
        data = file.read_bytes()
        if image_mime(data) is None:
            entries.append(skipped(str(file), "not an image"))
        elif is_photo(name):
            entries.append(preview(str(file), data))
        else:
            entries.append(skipped(str(file), "shows no generated result"))
    return entries


def files_in(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and ".modomo" not in p.relative_to(path).parts)


def verify(target: str) -> list[dict]:
    """Per file: its kind, marking and credentials. A folder that is an output is read from its journal (a result
    its run signed must still carry a valid manifest) and its contact sheet pages; the rest of a local output, and
    every file of any other folder, is reported by kind."""
    path = Path(target).expanduser()
    sink = open_sink(target)
    if path.is_file():
        return [checked(str(path), path.read_bytes())]
    if sink.is_output():
        names = output_files(sink)
        entries = [checked(sink.locate(name), sink.read(name) or b"", signed) for name, signed in names]
        return entries + (output_rest(path, {name for name, _ in names}) if path.is_dir() else [])
    if path.is_dir():
        return [in_folder(str(p), p.read_bytes()) for p in files_in(path)]
    raise UsageError(f"{target}: no such file, folder or output")
