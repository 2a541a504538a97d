"""C2PA content credentials (`--sign-cert/--sign-key`): results and thumbnails signed, locally and on R2, that
c2pa's own Reader validates (a test CA is reported untrusted, as expected), with the input photo as parent
ingredient, opened then edited actions with the digital source type, and modomo's assertion; a changed byte fails
`modomo verify`; bad credentials are one line, exit 2, before any model loads."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import c2pa
import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.outputs.provenance import DIGITAL_SOURCE_TYPE
from tests.signing_certs import make_chain

PHOTO = "living-room-02-small.jpg"
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSION = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


def transform(*args) -> tuple[int, dict | None, str]:
    result = CliRunner().invoke(app, ["transform", *map(str, args), "--json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None, result.stderr


def tiny(bundle: Path, out, *extra) -> list:
    return [
        "--models",
        bundle,
        "--out",
        out,
        "--size",
        "128",
        "--steps",
        "1",
        "--retries",
        "0",
        "--style",
        "boho",
        "--room",
        "bedroom",
        *extra,
    ]


def read(data: bytes, mime: str) -> tuple[str, list[str], dict, dict]:
    """c2pa's verdict on a file: validation state, failure codes, the active manifest, the whole store."""
    with c2pa.Reader(mime, io.BytesIO(data)) as reader:
        failures = (reader.get_validation_results() or {}).get("activeManifest", {}).get("failure", [])
        return (
            reader.get_validation_state(),
            [f["code"] for f in failures],
            reader.get_active_manifest(),
            json.loads(reader.json()),
        )


def assertion(manifest: dict, label: str) -> dict:
    return next(a["data"] for a in manifest["assertions"] if a["label"].startswith(label))


@pytest.fixture(scope="module")
def signed_runs(tiny_bundle, rooms, signing_chain, tmp_path_factory) -> dict:
    """One signed run per format of one photo; the PNG run's input carries credentials of its own."""
    folder = tmp_path_factory.mktemp("signed")
    shutil.copy(rooms / PHOTO, folder / "room.jpg")
    from pipeline.outputs.signing import Parent, load_signing, sign

    photo = (rooms / PHOTO).read_bytes()
    credentials = load_signing(signing_chain.cert, signing_chain.key)
    (folder / "camera.jpg").write_bytes(
        sign(credentials, photo, "image/jpeg", "camera.jpg", Parent(photo, "raw.jpg"), {"style": "capture"})
    )
    runs = {}
    for fmt in ("png", "jpeg", "webp"):
        photo_name = "camera.jpg" if fmt == "png" else "room.jpg"
        out = folder / f"out-{fmt}"
        code, summary, stderr = transform(
            folder / photo_name,
            *tiny(
                tiny_bundle, out, "--format", fmt, "--sign-cert", signing_chain.cert, "--sign-key", signing_chain.key
            ),
        )
        assert code == 0, stderr
        runs[fmt] = (out, summary, Path(photo_name).stem)
    return runs


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_signed_results_and_thumbnails_validate(signed_runs, fmt):
    out, summary, stem = signed_runs[fmt]
    record = summary["images"][0]
    journal = [json.loads(line) for line in (out / ".modomo" / "journal.jsonl").read_text().splitlines()]
    for kind, mime in (("result", MIME[fmt]), ("thumbnail", "image/jpeg")):
        path = out / f"{stem}.boho{EXTENSION[fmt] if kind == 'result' else '.thumb.jpg'}"
        state, failures, manifest, _ = read(path.read_bytes(), mime)
        assert state == "Valid" and failures == ["signingCredential.untrusted"], (path.name, failures)
        assert manifest["signature_info"]["common_name"] == "modomo test signer" and "thumbnail" not in manifest
        [ingredient] = manifest["ingredients"]
        assert ingredient["title"] == f"{stem}.jpg" and ingredient["relationship"] == "parentOf"
        assert ingredient["format"] == "image/jpeg"
        actions = assertion(manifest, "c2pa.actions")["actions"]
        names = [a["action"] for a in actions]
        assert names == ["c2pa.opened", "c2pa.edited", *(["c2pa.resized"] if kind == "thumbnail" else [])]
        [used] = actions[0]["parameters"]["ingredients"]  # the opened action names its ingredient
        assert used["url"].endswith(ingredient["label"])
        assert actions[1]["digitalSourceType"] == DIGITAL_SOURCE_TYPE
        assert actions[1]["softwareAgent"]["name"] == "modomo"
        own = assertion(manifest, "modomo.restyle")
        assert own["style"] == "boho" and own["room"] == "bedroom" and own["seed"] == record["seed"]
        assert own["settings"] == journal[-1]["settings"] and own["models"]["stable_diffusion"]
    assert record["timings"]["sign"] > 0
    metadata = json.loads((out / f"{stem}.boho.json").read_text())
    assert metadata["credentials"]["c2pa"] == {
        "signer": "modomo test signer",
        "issuer": "modomo test CA",
        "alg": "es256",
    }
    assert metadata["settings"]["signed"] == "c2pa"


def test_a_signed_input_carries_its_own_credentials_over(signed_runs):
    out, _, stem = signed_runs["png"]
    _, _, manifest, store = read((out / f"{stem}.boho.png").read_bytes(), "image/png")
    [ingredient] = manifest["ingredients"]
    parent = store["manifests"][ingredient["active_manifest"]]
    assert assertion(parent, "modomo.restyle")["style"] == "capture"
    assert len(store["manifests"]) == 2


def test_verify_validates_a_signed_output_and_fails_a_changed_byte(signed_runs, tmp_path):
    out, _, stem = signed_runs["png"]
    result = CliRunner().invoke(app, ["verify", str(out), "--json"])
    assert result.exit_code == 0, result.output
    entries = [e for e in json.loads(result.stdout) if e["kind"] == "generated"]
    assert len(entries) == 2 and all(
        e["c2pa"]["valid"] and e["c2pa"]["signer"] == "modomo test signer" for e in entries
    )
    assert entries[0]["c2pa"]["actions"][:2] == ["c2pa.opened", "c2pa.edited"]
    assert "2 of 2 signed files valid" in result.stderr
    changed = tmp_path / "changed.png"
    data = bytearray((out / f"{stem}.boho.png").read_bytes())
    data[data.index(b"IDAT") + 40] ^= 0x01  # one bit of the compressed pixels
    changed.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["verify", str(changed)])
    assert result.exit_code == 1 and "assertion.dataHash.mismatch" in result.stderr, result.stderr


def test_verify_fails_a_signed_result_that_lost_its_manifest(signed_runs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(signed_runs["jpeg"][0], out)
    result_path = out / "room.boho.jpg"
    data = result_path.read_bytes()
    start = data.index(b"<x:xmpmeta")
    xmp = data[start : data.index(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")]
    Image.open(io.BytesIO(data)).save(result_path, "JPEG", xmp=xmp)  # marked, but no manifest
    result = CliRunner().invoke(app, ["verify", str(out)])
    assert result.exit_code == 1 and "carries no C2PA manifest" in result.stderr, result.stderr


def test_signed_r2_run_uploads_signed_bytes(tiny_bundle, rooms, signing_chain, moto_server, r2_env, monkeypatch):
    monkeypatch.setenv("MODOMO_SIGN_CERT", str(signing_chain.cert))  # the environment, as a CI secret would
    monkeypatch.setenv("MODOMO_SIGN_KEY", str(signing_chain.key))
    client = moto_server.client()
    client.put_object(Bucket=r2_env, Key="in/room.jpg", Body=(rooms / PHOTO).read_bytes())
    code, summary, stderr = transform(f"r2://{r2_env}/in", *tiny(tiny_bundle, f"r2://{r2_env}/out/"))
    assert code == 0, stderr
    for key, mime in (("out/room.boho.png", "image/png"), ("out/room.boho.thumb.jpg", "image/jpeg")):
        state, failures, manifest, _ = read(client.get_object(Bucket=r2_env, Key=key)["Body"].read(), mime)
        assert state == "Valid" and failures == ["signingCredential.untrusted"], key
        assert manifest["ingredients"][0]["title"] == "room.jpg"
    result = CliRunner().invoke(app, ["verify", f"r2://{r2_env}/out/"])
    assert result.exit_code == 0 and "2 of 2 signed files valid" in result.stderr, result.output


def bad_credentials(chain, folder: Path) -> dict[str, tuple[list, str]]:
    """Each way the signing options can be wrong: the arguments, and what the one line must say."""
    other = make_chain(folder / "other")
    no_usage = make_chain(folder / "no-usage", usage=False)
    expired = make_chain(folder / "expired", expired=True)
    return {
        "missing": (["--sign-cert", folder / "nope.pem", "--sign-key", chain.key], "nope.pem: no such file"),
        "key only": (["--sign-key", chain.key], "--sign-key needs --sign-cert"),
        "not a cert": (["--sign-cert", chain.key, "--sign-key", chain.key], "not a PEM certificate chain"),
        "not a key": (["--sign-cert", chain.cert, "--sign-key", chain.cert], "not a PEM private key"),
        "wrong key": (["--sign-cert", chain.cert, "--sign-key", other.key], "does not match the first certificate"),
        "a CA": (["--sign-cert", chain.ca_cert, "--sign-key", chain.ca_key], "is a CA's"),
        "no usage": (["--sign-cert", no_usage.cert, "--sign-key", no_usage.key], "no extended key usage"),
        "expired": (["--sign-cert", expired.cert, "--sign-key", expired.key], "not valid at time of signing"),
    }


def test_bad_credentials_are_one_line_before_models_load(tiny_bundle, rooms, signing_chain, tmp_path):
    for case, (args, reason) in bad_credentials(signing_chain, tmp_path).items():
        code, _, stderr = transform(rooms / PHOTO, *tiny(tiny_bundle, tmp_path / "out"), *args)
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and reason in lines[0], (case, stderr)
        assert not (tmp_path / "out").exists(), case


def test_signing_is_in_the_settings_hash(signing_chain):
    from pipeline.config import config_for
    from pipeline.options import TransformOptions
    from pipeline.outputs.signing import load_signing

    plain = config_for(TransformOptions(inputs=["x.jpg"], style="boho"))
    signed = config_for(plain.options, signing=load_signing(signing_chain.cert, signing_chain.key))
    assert plain.result_hash(plain.style, {}) != signed.result_hash(signed.style, {})
    assert "BEGIN" not in repr(signed.signing)  # the key never in a message


def test_the_example_signer_script_makes_credentials_modomo_accepts(tmp_path):
    from pipeline.outputs.signing import load_signing

    script = Path(__file__).resolve().parents[2] / "examples" / "signing" / "make-test-signer.sh"
    subprocess.run(["bash", str(script), str(tmp_path / "keys")], check=True, capture_output=True)
    credentials = load_signing(tmp_path / "keys" / "chain.pem", tmp_path / "keys" / "signer.key")
    assert credentials.signer == "Test signer" and credentials.alg == "es256"
    assert (tmp_path / "keys" / "signer.key").stat().st_mode & 0o077 == 0  # the key is its owner's alone
