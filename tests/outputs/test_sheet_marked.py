"""The contact sheet shows generated results, so it is marked as AI-edited like them (and signed when the run
signs, the pictures it shows as ingredients); `modomo verify OUT` checks it, leaves the report's photo previews
unmarked without failing, calls report.html and index.csv "not an image", and counts what each line names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.outputs.contact_sheet import write_contact_sheet
from pipeline.outputs.signing import load_signing
from pipeline.outputs.sinks import open_sink
from pipeline.outputs.verify import checked, marking
from pipeline.outputs.views import job_records


def run(bundle: Path, photos: Path, out: Path, *extra) -> None:
    args = ["transform", photos, "--models", bundle, "--out", out, "--size", "64", "--steps", "2", "--retries", "0"]
    result = CliRunner().invoke(app, [*map(str, args), "--contact-sheet", "--report", *map(str, extra)])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def outputs(tiny_bundle, rooms, signing_chain, tmp_path_factory) -> dict[str, Path]:
    """Two photos, made once unsigned and once signed, with the report and the contact sheet."""
    folder = tmp_path_factory.mktemp("sheet-marked")
    (folder / "in").mkdir()
    shutil.copy(rooms / "living-room-02-small.jpg", folder / "in" / "a.jpg")
    shutil.copy(rooms / "living-room-01.jpg", folder / "in" / "b.jpg")
    run(tiny_bundle, folder / "in", folder / "plain")
    run(
        tiny_bundle,
        folder / "in",
        folder / "signed",
        "--sign-cert",
        signing_chain.cert,
        "--sign-key",
        signing_chain.key,
    )
    resigned = folder / "resigned"  # the signed output, its sheet written again with the run's identity
    shutil.copytree(folder / "signed", resigned)
    sink = open_sink(str(resigned))
    write_contact_sheet(
        job_records(sink), sink, lambda record: None, load_signing(signing_chain.cert, signing_chain.key)
    )
    return {"plain": folder / "plain", "signed": folder / "signed", "resigned": resigned}


def verified(out: Path) -> tuple[int, dict[str, dict], str]:
    result = CliRunner().invoke(app, ["verify", str(out), "--json"])
    assert result.stdout, (result.output, repr(result.exception))
    entries = json.loads(result.stdout)
    return result.exit_code, {Path(e["file"]).name: e for e in entries}, result.stderr


@pytest.mark.parametrize("kind", ["plain", "resigned", "signed"])
def test_verify_passes_an_output_with_its_sheet_and_report(outputs, kind):
    code, entries, text = verified(outputs[kind])
    assert code == 0, text
    sheet = entries["contact-sheet.jpg"]
    assert sheet["kind"] == "generated" and sheet["marked"] and sheet["ok"]
    assert "Contact sheet of 2 photos" in sheet["description"]
    for preview in ("a.input.jpg", "b.input.jpg"):
        assert entries[preview]["kind"] == "photo" and not entries[preview]["marked"] and entries[preview]["ok"]
    for name in ("report.html", "index.csv", "index.jsonl"):
        assert entries[name]["kind"] == "skipped" and entries[name]["reason"] == "not an image"
    generated = [name for name, e in entries.items() if e["kind"] == "generated"]
    assert len(generated) == 5 and sum(name.endswith(".thumb.jpg") for name in generated) == 2
    assert "verify      5 of 5 generated pictures marked" in text
    assert "photos      2 of 2 photo previews (.input.jpg) unmarked" in text
    assert "files, not an image: index.csv, index.jsonl, report.html" in text
    if kind == "plain":
        assert "c2pa" not in text
    else:
        assert "c2pa        5 of 5 signed files valid" in text


def test_the_sheet_read_back_is_marked(outputs):
    for kind in ("plain", "signed", "resigned"):
        found = marking((outputs[kind] / "contact-sheet.jpg").read_bytes())
        assert found["marked"] and found["creator_tool"].startswith("modomo "), kind
        assert not marking((outputs[kind] / "a.input.jpg").read_bytes())["marked"]


@pytest.mark.parametrize("kind", ["resigned", "signed"])
def test_the_signed_sheet_names_the_results_it_shows(outputs, kind):
    sheet = checked("contact-sheet.jpg", (outputs[kind] / "contact-sheet.jpg").read_bytes(), signed=True)
    credentials = sheet["c2pa"]
    assert sheet["ok"] and credentials and credentials["valid"], sheet
    assert credentials["signer"] == "modomo test signer"
    assert credentials["actions"] == ["c2pa.created", "c2pa.placed"]
    assert "compositeWithTrainedAlgorithmicMedia" in credentials["source_type"]
    assert sorted(credentials["ingredients"]) == sorted(p.name for p in outputs[kind].glob("*.thumb.jpg"))


def test_an_unsigned_sheet_in_a_signed_output_fails_and_counts(outputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(outputs["resigned"], out)
    shutil.copy(outputs["plain"] / "contact-sheet.jpg", out / "contact-sheet.jpg")
    code, entries, text = verified(out)
    assert code == 1 and not entries["contact-sheet.jpg"]["ok"]
    assert "c2pa        4 of 5 signed files valid" in text


def test_report_html_alone_is_not_an_image(outputs):
    result = CliRunner().invoke(app, ["verify", str(outputs["plain"] / "report.html")])
    assert result.exit_code == 1
    assert "not an image" in result.output and "no IPTC" not in result.output
