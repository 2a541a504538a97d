"""--mode stage from an R2 bucket into one (a real S3 server on 127.0.0.1): the same staging as from a folder into a
folder, pixel for pixel, with its region map, metadata, index row, disclosure and published original uploaded with
their headers, and a rerun that redoes nothing.

A photo's seed derives from the name it goes by (its folder's name, or its R2 URI, plus its key), so the two runs
are given the same job as a catalogue gives it: a manifest row with its seed, mode, style, room and keep mask."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.outputs.sinks import CACHE_RESULT
from tests.run.test_stage_run import as_empty_rooms

PHOTO = "living-room-01.jpg"
STEM = PHOTO.removesuffix(".jpg")
LISTING = ("--publish-originals", "--disclose", "Virtually staged", "--save-controls")


def manifest(path, photo: str, mask) -> str:
    path.write_text(f"input,style,mode,room,seed,mask\n{photo},boho,stage,living room,7,{mask}\n")
    return str(path)


def transform(models, manifest_file: str, out: str):
    args = ["transform", "--manifest", manifest_file, "--models", str(models), "--out", out, "--size", "128",
            "--steps", "2", "--retries", "0", *LISTING]  # fmt: skip
    with as_empty_rooms():
        return CliRunner().invoke(app, args)


@pytest.fixture(scope="module")
def given(floor_bundle, rooms, tmp_path_factory):
    """The photo, its user mask (its right half kept), and the staging made from a folder into a folder."""
    root = tmp_path_factory.mktemp("stage-r2")
    photo = root / "in" / PHOTO
    photo.parent.mkdir()
    shutil.copy(rooms / PHOTO, photo)
    keep = np.zeros((96, 128), np.uint8)
    keep[:, 64:] = 255
    mask = root / "keep.png"
    Image.fromarray(keep).save(mask)
    result = transform(floor_bundle, manifest(root / "local.csv", str(photo), mask), str(root / "local"))
    assert result.exit_code == 0, result.output
    return root, photo, mask


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_a_staging_on_r2_is_the_folders_staging_uploaded(given, floor_bundle, moto_server, r2_env):
    root, photo, mask = given
    local = root / "local"
    client = moto_server.client()
    client.put_object(Bucket=r2_env, Key=f"in/{PHOTO}", Body=photo.read_bytes())
    jobs = manifest(root / "r2.csv", f"r2://{r2_env}/in/{PHOTO}", mask)
    result = transform(floor_bundle, jobs, f"r2://{r2_env}/out/")
    assert result.exit_code == 0, result.output

    def get(key: str) -> dict:
        return client.get_object(Bucket=r2_env, Key=f"out/{key}")

    staged = get(f"{STEM}.boho.png")
    assert staged["CacheControl"] == CACHE_RESULT
    data = staged["Body"].read()
    assert np.array_equal(pixels(data), pixels((local / f"{STEM}.boho.png").read_bytes()))  # the same staging
    assert b"virtually staged as boho" in data
    region = pixels(get(f"{STEM}.boho.region.png")["Body"].read())
    assert np.array_equal(region, pixels((local / f"{STEM}.boho.region.png").read_bytes()))
    assert 0 < (region > 127).mean() < 1  # the map of what was made: some of the photo, not all
    meta = json.loads(get(f"{STEM}.boho.json")["Body"].read())
    ours = json.loads((local / f"{STEM}.boho.json").read_text())
    assert meta["seed"] == ours["seed"] == 7 and meta["settings"]["mode"] == "stage"
    assert meta["stage"] == ours["stage"] and meta["fidelity"] == ours["fidelity"]
    (row,) = list(csv.DictReader(io.StringIO(get("index.csv")["Body"].read().decode("utf-8-sig"))))
    assert row["mode"] == "stage" and row["furniture_added"] and row["original"] == f"originals/{STEM}.png"
    assert get(f"originals/{STEM}.png")["Body"].read()  # the listing's original, published once
    again = transform(floor_bundle, jobs, f"r2://{r2_env}/out/")
    assert again.exit_code == 0 and "0 ok, 0 failed, 1 skipped" in again.output, again.output
