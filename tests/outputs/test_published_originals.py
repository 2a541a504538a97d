"""--publish-originals, for listing rules (California AB 723): each input published once under originals/ as
decoded (upright, sRGB, its pixels) and without EXIF; the index, the disclosure, its QR code, the XMP description and
the report name it; locally by its path in the output ({original}), on R2 by its CDN URL ({original_url})."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.inputs import imaging

PHOTO = "living-room-02-small.jpg"
LOCAL_LABEL = "Virtually staged · original: {original}"
R2_LABEL = "Virtually staged · original: {original_url}"


def invoke(*args) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def tiny(bundle: Path, out, *extra) -> list:
    return ["--models", bundle, "--out", out, "--size", "128", "--steps", "2", "--retries", "0", *extra]


def gps_photo(rooms: Path, target: Path) -> Path:
    """The test photo with a GPS position (and a camera) in its EXIF, as a phone writes it."""
    image = Image.open(rooms / PHOTO)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.2)}  # GPSInfo
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, "JPEG", exif=exif, quality=92)
    assert Image.open(target).getexif().get_ifd(0x8825)  # the position is there to leak
    return target


def qr_text(data: bytes) -> str:
    """What OpenCV's QR reader finds in an encoded picture."""
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.QRCodeDetector().detectAndDecode(picture)[0]


def assert_published(data: bytes, photo: Path) -> None:
    """A published original: the photo's decoded pixels, no EXIF (no GPS)."""
    published = Image.open(io.BytesIO(data))
    assert published.format == "PNG" and not published.getexif() and b"Exif" not in data and b"GPS" not in data
    decoded = imaging.decode(photo.read_bytes(), photo.name)
    assert published.size == decoded.size
    assert np.array_equal(np.asarray(published.convert("RGB")), np.asarray(decoded.convert("RGB")))


@pytest.fixture(scope="module")
def local(tiny_bundle, rooms, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("originals")
    photos = [gps_photo(rooms, root / "in" / "kitchen.jpg"), gps_photo(rooms, root / "in" / "hall.jpg")]
    out = root / "out"
    argv = ["transform", root / "in", *tiny(tiny_bundle, out, "--style", "boho,modern", "--variations", "2"),
            "--publish-originals", "--disclose", LOCAL_LABEL, "--disclose-qr", "--report", "--json"]  # fmt: skip
    from pipeline.outputs.sinks import LocalSink

    real, writes = LocalSink.write, []

    def write(self, relative, *args, **kwargs):
        writes.append(relative)
        return real(self, relative, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalSink, "write", write)
        code, output = invoke(*argv)
    assert code == 0, output
    return {"out": out, "photos": photos, "argv": argv, "writes": writes}


def test_each_photo_is_published_once_as_decoded_without_exif(local):
    out = local["out"]
    assert sorted(p.name for p in (out / "originals").iterdir()) == ["hall.png", "kitchen.png"]
    assert sorted(w for w in local["writes"] if w.startswith("originals/")) == [
        "originals/hall.png",
        "originals/kitchen.png",
    ]  # each written once, though each photo has two styles of two variations
    for photo in local["photos"]:
        assert_published((out / "originals" / f"{photo.stem}.png").read_bytes(), photo)


def test_the_index_the_label_its_qr_code_and_the_xmp_name_the_published_original(local):
    out = local["out"]
    rows = list(csv.DictReader(io.StringIO((out / "index.csv").read_text(encoding="utf-8-sig"))))
    assert len(rows) == 8  # 2 photos x 2 styles x 2 variations
    for row in rows:
        stem = Path(row["input"]).stem
        assert row["original"] == f"originals/{stem}.png" and row["input"].endswith(f"in/{stem}.jpg")
        for kind in ("result", "thumbnail"):
            data = (out / row[kind]).read_bytes()
            assert qr_text(data) == f"originals/{stem}.png", (row[kind], kind)  # scans from the thumbnail too
        meta = json.loads((out / row["result"].replace(".png", ".json")).read_text())
        assert meta["outputs"]["original"].endswith(f"originals/{stem}.png")
        xmp = Image.open(out / row["result"]).info["XML:com.adobe.xmp"]
        assert f"unaltered original: originals/{stem}.png" in xmp
    assert "originals/kitchen.png" in (out / "report.html").read_text()  # the report links it beside the photo


def test_a_rerun_redoes_nothing_and_the_output_verifies(local):
    before = {p: p.read_bytes() for p in (local["out"] / "originals").iterdir()}
    code, output = invoke(*local["argv"])
    assert code == 0, output
    summary = json.loads(output[output.index("{\n") :])
    assert {image["status"] for image in summary["images"]} == {"skipped"} and summary["loaded"] is False
    assert {p: p.read_bytes() for p in before} == before
    code, output = invoke("verify", local["out"])
    assert code == 0 and "2 published originals) unmarked, as photos are" in output
    code, output = invoke("prune", local["out"])
    assert code == 0 and "originals/" not in output  # every published original is some job's


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--publish-originals", "--disclose", R2_LABEL], "--disclose {original_url}: this output has no public"),
        (["--disclose", LOCAL_LABEL], "{original} names the published original: add --publish-originals"),
        (["--publish-originals", "--disclose-qr"], "--disclose-qr stands beside the disclosure"),
    ],
)
def test_a_link_without_an_original_or_an_address_is_one_line(tiny_bundle, rooms, tmp_path, extra, said):
    photo = tmp_path / "room.jpg"
    shutil.copy(rooms / PHOTO, photo)
    code, output = invoke("transform", photo, *tiny(tiny_bundle, tmp_path / "out", *extra))
    assert code == 2 and said in output and len(output.strip().splitlines()) == 1, output
    assert not (tmp_path / "out").exists()


def test_on_r2_the_original_is_uploaded_once_and_linked_by_its_cdn_url(
    tiny_bundle, rooms, tmp_path, moto_server, r2_env, monkeypatch
):
    monkeypatch.setenv("CDN_DOMAIN", "cdn.example.com")
    client = moto_server.client()
    photo = gps_photo(rooms, tmp_path / "kitchen.jpg")
    client.put_object(Bucket=r2_env, Key="in/kitchen.jpg", Body=photo.read_bytes())
    argv = ["transform", f"r2://{r2_env}/in", *tiny(tiny_bundle, f"r2://{r2_env}/out/", "--style", "boho,modern"),
            "--publish-originals", "--disclose", R2_LABEL, "--disclose-qr", "--report"]  # fmt: skip
    code, output = invoke(*argv)
    assert code == 0, output
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=r2_env, Prefix="out/originals/")["Contents"]]
    assert keys == ["out/originals/kitchen.png"]
    assert_published(client.get_object(Bucket=r2_env, Key=keys[0])["Body"].read(), photo)
    url = "https://cdn.example.com/out/originals/kitchen.png"
    index = client.get_object(Bucket=r2_env, Key="out/index.csv")["Body"].read().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(index)))
    assert {(row["original"], row["original_url"]) for row in rows} == {("originals/kitchen.png", url)}
    for row in rows:
        for kind in ("result", "thumbnail"):
            data = client.get_object(Bucket=r2_env, Key=f"out/{row[kind]}")["Body"].read()
            assert qr_text(data) == url
    report = client.get_object(Bucket=r2_env, Key="out/report.html")["Body"].read().decode()
    assert f'"og":"{url}"' in report.replace(" ", "")  # the report links the original by its URL
    again = CliRunner().invoke(app, [str(a) for a in argv])
    assert again.exit_code == 0 and "0 ok, 0 failed, 2 skipped" in again.output


def test_signed_results_name_the_published_original_as_their_parent(tiny_bundle, rooms, tmp_path, signing_chain):
    from tests.outputs.test_signing import read

    photo = tmp_path / "in" / "kitchen.jpg"
    photo.parent.mkdir()
    shutil.copy(rooms / PHOTO, photo)
    out = tmp_path / "out"
    code, output = invoke("transform", photo.parent, *tiny(tiny_bundle, out), "--publish-originals",
                          "--sign-cert", signing_chain.cert, "--sign-key", signing_chain.key)  # fmt: skip
    assert code == 0, output
    _, _, manifest, _ = read((out / "kitchen.modern.png").read_bytes(), "image/png")
    [ingredient] = manifest["ingredients"]
    assert ingredient["title"] == "originals/kitchen.png" and ingredient["relationship"] == "parentOf"


def test_prune_lists_an_original_only_once_no_job_uses_it(tiny_bundle, rooms, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("kitchen.jpg", "hall.jpg"):
        shutil.copy(rooms / PHOTO, inputs / name)
    out = tmp_path / "out"
    assert invoke("transform", inputs, *tiny(tiny_bundle, out, "--style", "boho,modern"), "--publish-originals")[0] == 0
    # the kitchen's boho job redone without publishing: its modern job still uses the original
    assert invoke("transform", inputs / "kitchen.jpg", *tiny(tiny_bundle, out, "--style", "boho"))[0] == 0
    assert "originals/" not in invoke("prune", out)[1]
    # and its modern job too: now no job uses the kitchen's original; the hall's are untouched
    assert invoke("transform", inputs / "kitchen.jpg", *tiny(tiny_bundle, out, "--style", "modern"))[0] == 0
    code, output = invoke("prune", out, "--json")
    listed = [f["file"] for f in json.loads(output[output.index("{") :])["files"]]
    assert "originals/kitchen.png" in listed and "originals/hall.png" not in listed
