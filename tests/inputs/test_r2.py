"""R2/S3 locations against a real S3 endpoint on 127.0.0.1 (moto's server, checking signatures)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline import r2
from pipeline.errors import ModomoError, UsageError
from pipeline.inputs.imaging import IMAGE_SUFFIXES
from pipeline.outputs.sinks import R2Sink

PHOTO = "living-room-02-small.jpg"


def transform(*args) -> object:
    return CliRunner().invoke(app, ["transform", *map(str, args)])


def fast(bundle: Path, *extra) -> list[str]:
    return ["--models", str(bundle), "--size", "128", "--steps", "1", "--json", *extra]


def put_photos(client, bucket: str, keys: list[str], rooms: Path) -> None:
    data = (rooms / PHOTO).read_bytes()
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=data)


def keys_under(client, bucket: str, prefix: str, journal: bool = False) -> list[str]:
    """Keys under a prefix; the resume journal's segments only when asked for."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
    return [k for k in keys if ("/.modomo/" in k) == journal]


# -- locations and settings -------------------------------------------------------------------------


def test_parse_locations():
    assert r2.parse("r2://cat/in") == r2.Location("cat", "in/")
    assert r2.parse("s3://cat/a/b/") == r2.Location("cat", "a/b/")
    assert r2.parse("r2://cat") == r2.Location("cat", "")
    assert r2.parse("r2:///in/", default_bucket="dflt") == r2.Location("dflt", "in/")
    with pytest.raises(UsageError, match="R2_BUCKET_NAME"):
        r2.parse("r2:///in/")
    with pytest.raises(UsageError, match=r"'\.\.'"):
        r2.parse("r2://cat/in/../other")


@pytest.mark.parametrize("relative", ["../x.png", "a/../../x.png", "/abs.png", "./x.png", "a/./b.png", ""])
def test_keys_cannot_escape_the_prefix(relative):
    with pytest.raises(ModomoError, match="escape"):
        r2.Location("cat", "out/").key(relative)


def test_settings_from_env_with_aws_fallbacks():
    env = {
        "AWS_ACCESS_KEY_ID": "ak",
        "AWS_SECRET_ACCESS_KEY": "very-secret",
        "AWS_ENDPOINT_URL": "http://x",
        "R2_BUCKET_NAME": "cat",
        "CDN_DOMAIN": "cdn.example.com",
    }
    settings = r2.Settings.from_env(env)
    assert (settings.access_key_id, settings.endpoint_url, settings.bucket) == ("ak", "http://x", "cat")
    assert "very-secret" not in repr(settings)
    assert settings.public_url("out/salon d'été/a b.png") == (
        "https://cdn.example.com/out/salon%20d%27%C3%A9t%C3%A9/a%20b.png"
    )
    env["R2_ACCESS_KEY_ID"] = "r2key"
    assert r2.Settings.from_env(env).access_key_id == "r2key"


def test_client_is_shaped_for_r2():
    settings = r2.Settings("http://127.0.0.1:9", "a", "b", None, None)
    config = r2.make_client(settings, pool_size=7).meta.config
    assert config.region_name == "auto"
    assert config.request_checksum_calculation == "when_required"
    assert config.retries == {"mode": "standard", "total_max_attempts": r2.MAX_ATTEMPTS}
    assert config.max_pool_connections == 7


# -- listing ---------------------------------------------------------------------------------------


def test_listing_pages_skips_markers_hidden_and_non_images(moto_server, bucket, fault_proxy):
    client = moto_server.client()
    wanted = [f"in/{i:03d}.jpg" for i in range(23)] + ["in/sub/deeper/x.PNG", "in/sub/z.webp"]
    for key in wanted + ["in/sub/", "in/.DS_Store", "in/.hidden/a.jpg", "in/notes.txt", "other/a.jpg"]:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    settings = r2.Settings(fault_proxy.endpoint, moto_server.access_key_id, moto_server.secret_access_key, None, None)
    proxied = r2.make_client(settings)
    keys = [k for k, _ in r2.list_keys(proxied, r2.Location(bucket, "in/"), settings, IMAGE_SUFFIXES, page_size=5)]
    assert keys == sorted(wanted)
    assert len(fault_proxy.statuses("GET", "list-type=2")) >= 6  # 30 objects in pages of 5


# -- end to end through the CLI -------------------------------------------------------------------


def test_local_to_r2_with_cdn_urls(tiny_bundle, rooms, moto_server, r2_env, monkeypatch):
    monkeypatch.setenv("CDN_DOMAIN", "cdn.example.com")
    result = transform(rooms / PHOTO, "--out", "r2:///out/", *fast(tiny_bundle))
    assert result.exit_code == 0, result.output
    client = moto_server.client()
    stem = "out/living-room-02-small.modern"
    assert keys_under(client, r2_env, "out/") == [
        "out/index.csv",
        "out/index.jsonl",
        f"{stem}.json",
        f"{stem}.png",
        f"{stem}.thumb.jpg",
    ]
    segment, history = keys_under(client, r2_env, "out/", journal=True)
    assert segment.startswith("out/.modomo/journal/") and segment.endswith(".jsonl")
    assert history.startswith("out/.modomo/runs/") and history.endswith(".json")
    for key, kind in (
        (f"{stem}.png", "image/png"),
        (f"{stem}.thumb.jpg", "image/jpeg"),
        (f"{stem}.json", "application/json"),
    ):
        head = client.head_object(Bucket=r2_env, Key=key)
        assert head["ContentType"] == kind
    record = json.loads(result.stdout)["images"][0]
    assert record["outputs"]["result"] == f"r2://{r2_env}/{stem}.png"
    assert record["transformed_url"] == f"https://cdn.example.com/{stem}.png"
    assert record["thumbnail_url"] == f"https://cdn.example.com/{stem}.thumb.jpg"
    meta = json.loads(client.get_object(Bucket=r2_env, Key=f"{stem}.json")["Body"].read())
    assert meta["transformed_url"] == record["transformed_url"]


def test_r2_to_local_keeps_keys_with_spaces_and_accents(tiny_bundle, rooms, moto_server, r2_env, tmp_path):
    client = moto_server.client()
    put_photos(client, r2_env, ["in/salon d'été/room one.jpg", "in/a/b/c/deep.jpg", "in/a/room.jpg"], rooms)
    client.put_object(Bucket=r2_env, Key="in/a/", Body=b"")
    result = transform(f"r2://{r2_env}/in", "--out", tmp_path, *fast(tiny_bundle, "--style", "boho"))
    assert result.exit_code == 0, result.output
    for name in ("salon d'été/room one.boho.png", "a/b/c/deep.boho.png", "a/room.boho.png"):
        assert (tmp_path / name).is_file(), name
    inputs = [r["input"] for r in json.loads(result.stdout)["images"]]
    assert inputs == sorted(inputs) and inputs[0] == f"r2://{r2_env}/in/a/b/c/deep.jpg"


def test_r2_to_r2(tiny_bundle, rooms, moto_server, r2_env):
    client = moto_server.client()
    put_photos(client, r2_env, ["in/x.jpg", "in/y/z.jpg"], rooms)
    result = transform(f"r2://{r2_env}/in/", "--out", f"s3://{r2_env}/out/", *fast(tiny_bundle))
    assert result.exit_code == 0, result.output
    keys = keys_under(client, r2_env, "out/")
    assert "out/x.modern.png" in keys and "out/y/z.modern.thumb.jpg" in keys and len(keys) == 8  # + the index


def test_wrong_credentials_fail_fast_without_loading_models(tiny_bundle, rooms, r2_env, monkeypatch):
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", "not-the-secret-123")
    start = time.perf_counter()
    result = transform(rooms / PHOTO, "--out", "r2:///out/", *fast(tiny_bundle))
    assert result.exit_code == 1
    assert time.perf_counter() - start < 10
    assert "denied" in result.stderr and r2_env in result.stderr
    assert "not-the-secret-123" not in result.output and "Traceback" not in result.output
    assert "generate" not in result.stderr  # no run happened


def test_missing_bucket_is_one_line(tiny_bundle, rooms, r2_env, tmp_path):
    for location_args in (
        [f"r2://no-such-bucket-{r2_env}/in/", "--out", tmp_path],
        [rooms / PHOTO, "--out", "r2://no-such-bucket/out/"],
    ):
        result = transform(*location_args, *fast(tiny_bundle))
        assert result.exit_code == 1, result.output
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "does not exist" in lines[0]


def test_transient_faults_are_retried_and_a_failing_object_fails_alone(
    tiny_bundle, rooms, moto_server, r2_env, fault_proxy, monkeypatch, tmp_path
):
    client = moto_server.client()
    put_photos(client, r2_env, ["in/flaky.jpg", "in/broken.jpg", "in/fine.jpg"], rooms)
    monkeypatch.setenv("R2_ENDPOINT_URL", fault_proxy.endpoint)
    fault_proxy.fail(method="GET", path_contains="/in/flaky.jpg", times=2, status=503)
    fault_proxy.fail(method="GET", path_contains="/in/broken.jpg", times=50, status=500)
    fault_proxy.fail(method="PUT", path_contains="/out/fine.modern.png", times=1, reset_connection=True)
    result = transform(f"r2://{r2_env}/in/", "--out", f"r2://{r2_env}/out/", *fast(tiny_bundle))
    assert result.exit_code == 3, result.output
    records = {r["key"]: r for r in json.loads(result.stdout)["images"]}
    assert records["flaky.jpg"]["status"] == "ok" and records["fine.jpg"]["status"] == "ok"
    assert records["broken.jpg"]["status"] == "failed" and "cannot download" in records["broken.jpg"]["error"]
    assert fault_proxy.statuses("GET", "/in/flaky.jpg") == [503, 503, 200]
    assert len(fault_proxy.statuses("GET", "/in/broken.jpg")) == r2.MAX_ATTEMPTS
    assert "out/fine.modern.png" in keys_under(client, r2_env, "out/")


def test_multipart_upload_above_the_threshold(moto_server, r2_env, fault_proxy, monkeypatch):
    monkeypatch.setattr("pipeline.outputs.sinks.MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    monkeypatch.setenv("R2_ENDPOINT_URL", fault_proxy.endpoint)
    sink = R2Sink(r2.Remote(), r2.parse("r2:///out/", r2_env))
    data = bytes(range(256)) * (6 * 1024 * 4)  # 6 MiB
    assert sink.write("big/file.bin", data, "application/octet-stream") == f"r2://{r2_env}/out/big/file.bin"
    assert moto_server.client().get_object(Bucket=r2_env, Key="out/big/file.bin")["Body"].read() == data
    assert fault_proxy.statuses("POST", "uploads")  # a multipart upload was started


def test_unreachable_endpoint_fails_in_seconds(tiny_bundle, rooms, r2_env, monkeypatch):
    monkeypatch.setenv("R2_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    result = transform(rooms / PHOTO, "--out", "r2:///out/", *fast(tiny_bundle))
    assert result.exit_code == 1 and "cannot reach" in result.stderr
    assert time.perf_counter() - start < 10


def test_cache_headers_by_kind(tiny_bundle, rooms, moto_server, r2_env):
    """What is rewritten in place is revalidated every time; a result's key can be reused (--overwrite, a rerun
    with new settings), so a CDN may keep it but revalidates it too; nothing is `immutable`."""
    result = transform(rooms / PHOTO, "--out", "r2:///out/", *fast(tiny_bundle), "--report", "--contact-sheet")
    assert result.exit_code == 0, result.output
    client = moto_server.client()
    stem = "out/living-room-02-small.modern"
    expected = {
        "out/index.csv": "no-cache",
        "out/index.jsonl": "no-cache",
        "out/report.html": "no-cache",
        "out/contact-sheet.jpg": "no-cache",
        f"{stem}.png": "public, no-cache",
        f"{stem}.thumb.jpg": "public, no-cache",
        f"{stem}.json": "public, no-cache",
        "out/living-room-02-small.depth.png": "public, no-cache",  # the photo's own map, shared by its styles
    }
    for key, header in expected.items():
        assert client.head_object(Bucket=r2_env, Key=key)["CacheControl"] == header, key
    for key in keys_under(client, r2_env, "out/", journal=True):
        assert client.head_object(Bucket=r2_env, Key=key)["CacheControl"] == "private, no-store", key
    every = keys_under(client, r2_env, "out/") + keys_under(client, r2_env, "out/", journal=True)
    assert not any("immutable" in client.head_object(Bucket=r2_env, Key=k)["CacheControl"] for k in every)


def test_a_prefix_copied_to_another_prefix_resumes_and_indexes(tiny_bundle, rooms, moto_server, r2_env):
    """Keys are relative to the output prefix: a copy of the prefix is a complete output of its own."""
    assert transform(rooms / PHOTO, "--out", "r2:///first/", *fast(tiny_bundle)).exit_code == 0
    client = moto_server.client()
    for key in keys_under(client, r2_env, "first/") + keys_under(client, r2_env, "first/", journal=True):
        client.copy_object(
            Bucket=r2_env, Key="second/" + key.removeprefix("first/"), CopySource={"Bucket": r2_env, "Key": key}
        )
    again = transform(rooms / PHOTO, "--out", "r2:///second/", *fast(tiny_bundle))
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["counts"]["skipped"] == 1 and summary["counts"]["ok"] == 0
    assert summary["images"][0]["outputs"]["result"] == f"r2://{r2_env}/second/living-room-02-small.modern.png"
    assert CliRunner().invoke(app, ["index", "r2:///second/"]).exit_code == 0
    rows = [
        json.loads(line)
        for line in client.get_object(Bucket=r2_env, Key="second/index.jsonl")["Body"].read().decode().splitlines()
    ]
    assert [row["result"] for row in rows] == ["living-room-02-small.modern.png"]
    client.head_object(Bucket=r2_env, Key="second/" + rows[0]["result"])


def test_two_runs_in_one_second_keep_their_order_in_the_r2_journal(moto_server, r2_env, monkeypatch):
    """R2 journal segments are read in name order: a run that starts later in the same second sorts after the
    earlier one, whatever its random part, so the later run's line is the job's latest."""
    import uuid
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from pipeline.outputs import journal as journal_module

    class Clock:  # each Journal reads the time once, when it starts
        times = [datetime(2026, 12, 6, 12, 0, 0, 100, tzinfo=UTC), datetime(2026, 12, 6, 12, 0, 0, 900, tzinfo=UTC)]

        @classmethod
        def now(cls, tz=None):
            return cls.times.pop(0) if len(cls.times) > 1 else cls.times[0]

    hexes = ["f" * 32, "0" * 32, "0" * 32]  # the later run's random part sorts first
    monkeypatch.setattr(journal_module, "datetime", Clock)
    fake = SimpleNamespace(uuid4=lambda: uuid.UUID(hexes.pop(0) if len(hexes) > 1 else hexes[0]))
    monkeypatch.setattr(journal_module, "uuid", fake)
    sink = R2Sink(r2.Remote(), r2.parse("r2:///out/", r2_env))
    for run in ("first", "second"):
        journal = journal_module.Journal(sink)
        journal.record({"id": "room.jpg", "style": "boho", "settings": "s", "run": run})
        journal.close()
    assert [entry["run"] for entry in journal_module.Journal(sink).entries()] == ["first", "second"]
