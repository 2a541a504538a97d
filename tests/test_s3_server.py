"""The loopback S3 fixtures themselves, exercised with plain boto3 (no modomo code)."""

from __future__ import annotations

import os
import threading

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from tests.s3_server import FaultProxy, S3Server


def _status(exc: ClientError) -> int:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"]


def test_put_get_list(moto_server: S3Server, bucket: str):
    s3 = moto_server.client()
    assert moto_server.endpoint.startswith("http://127.0.0.1:")
    s3.put_object(Bucket=bucket, Key="rooms/a.jpg", Body=b"alpha")
    s3.put_object(Bucket=bucket, Key="rooms/b.jpg", Body=b"beta")
    s3.put_object(Bucket=bucket, Key="other/c.jpg", Body=b"gamma")
    assert s3.get_object(Bucket=bucket, Key="rooms/b.jpg")["Body"].read() == b"beta"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="rooms/")
    assert [o["Key"] for o in listed["Contents"]] == ["rooms/a.jpg", "rooms/b.jpg"]
    assert s3.head_object(Bucket=bucket, Key="rooms/a.jpg")["ContentLength"] == 5


def test_region_auto_works_like_r2(moto_server: S3Server, bucket: str):
    s3 = moto_server.client(region_name="auto")
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_buckets_are_fresh(moto_server: S3Server, bucket: str):
    assert bucket.startswith("test-")
    assert moto_server.client().list_objects_v2(Bucket=bucket)["KeyCount"] == 0


@pytest.mark.parametrize("wrong", ["secret", "key"])
def test_wrong_credentials_are_rejected(moto_server: S3Server, bucket: str, wrong: str):
    moto_server.client().put_object(Bucket=bucket, Key="k", Body=b"v")
    creds = (
        {"aws_secret_access_key": "not-the-secret"}
        if wrong == "secret"
        else {"aws_access_key_id": "AKIAMADEUPMADEUPMADE", "aws_secret_access_key": "made-up"}
    )
    bad = moto_server.client(**creds)
    expected = "SignatureDoesNotMatch" if wrong == "secret" else "InvalidAccessKeyId"
    for call in (
        lambda: bad.get_object(Bucket=bucket, Key="k"),
        lambda: bad.put_object(Bucket=bucket, Key="k2", Body=b"x"),
        lambda: bad.list_objects_v2(Bucket=bucket),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert _status(info.value) == 403
        assert info.value.response["Error"]["Code"] == expected
    # Nothing was written by the rejected PUT.
    assert [o["Key"] for o in moto_server.client().list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


def test_r2_env(r2_env: str, moto_server: S3Server):
    assert os.environ["R2_BUCKET_NAME"] == r2_env
    assert os.environ["R2_ENDPOINT_URL"] == moto_server.endpoint
    assert os.environ["R2_ACCESS_KEY_ID"] == moto_server.access_key_id
    assert os.environ["R2_SECRET_ACCESS_KEY"] == moto_server.secret_access_key
    for name in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
    ):
        assert name not in os.environ
    assert not os.path.exists(os.environ["AWS_CONFIG_FILE"])
    assert not os.path.exists(os.environ["AWS_SHARED_CREDENTIALS_FILE"])


def test_proxy_forwards_put_and_get(moto_server: S3Server, bucket: str, fault_proxy: FaultProxy):
    s3 = moto_server.client(endpoint_url=fault_proxy.endpoint)
    small = b"hello through the proxy"
    big = os.urandom(6 * 1024 * 1024)
    s3.put_object(Bucket=bucket, Key="small.txt", Body=small)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=big)
    assert s3.get_object(Bucket=bucket, Key="small.txt")["Body"].read() == small
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == big
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ContentLength"] == len(big)
    # And the bytes really landed on the server, not just in the proxy.
    assert moto_server.client().get_object(Bucket=bucket, Key="big.bin")["Body"].read() == big
    assert fault_proxy.statuses("PUT") == [200, 200]
    assert fault_proxy.statuses("GET") == [200, 200]
    assert all(not r.injected for r in fault_proxy.requests)


def test_proxy_expect_100_continue_upload(moto_server: S3Server, bucket: str, fault_proxy: FaultProxy, tmp_path):
    """upload_fileobj sends a file-like body, which botocore sends with Expect: 100-continue."""
    import io

    s3 = moto_server.client(endpoint_url=fault_proxy.endpoint)
    data = os.urandom(300_000)
    s3.upload_fileobj(io.BytesIO(data), bucket, "up.bin")
    assert moto_server.client().get_object(Bucket=bucket, Key="up.bin")["Body"].read() == data


def test_proxy_dechunks_a_chunked_upload(moto_server: S3Server, bucket: str, fault_proxy: FaultProxy):
    """A signed PUT sent with Transfer-Encoding: chunked is forwarded with the same bytes."""
    import http.client

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = os.urandom(200_000)
    request = AWSRequest("PUT", f"{fault_proxy.endpoint}/{bucket}/chunked.bin", data=data)
    credentials = Credentials(moto_server.access_key_id, moto_server.secret_access_key)
    S3SigV4Auth(credentials, "s3", moto_server.region).add_auth(request)
    conn = http.client.HTTPConnection("127.0.0.1", fault_proxy.port, timeout=10)
    try:
        conn.request(
            "PUT",
            f"/{bucket}/chunked.bin",
            body=iter([data[:70_000], data[70_000:]]),
            headers=dict(request.headers),
            encode_chunked=True,
        )
        response = conn.getresponse()
        assert response.status == 200, response.read()
    finally:
        conn.close()
    assert moto_server.client().get_object(Bucket=bucket, Key="chunked.bin")["Body"].read() == data


def test_proxy_keeps_signature_checks(moto_server: S3Server, bucket: str, fault_proxy: FaultProxy):
    bad = moto_server.client(endpoint_url=fault_proxy.endpoint, aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as info:
        bad.list_objects_v2(Bucket=bucket)
    assert _status(info.value) == 403
    assert fault_proxy.statuses() == [403]


def test_injected_failures_are_retried(moto_server: S3Server, bucket: str, fault_proxy: FaultProxy):
    moto_server.client().put_object(Bucket=bucket, Key="photo.jpg", Body=b"jpeg bytes")
    s3 = moto_server.client(
        endpoint_url=fault_proxy.endpoint, config=Config(retries={"mode": "standard", "max_attempts": 5})
    )
    fault_proxy.fail(method="GET", path_contains="photo.jpg", times=2)
    assert s3.get_object(Bucket=bucket, Key="photo.jpg")["Body"].read() == b"jpeg bytes"
    assert fault_proxy.statuses("GET", "photo.jpg") == [503, 503, 200]
    assert [r.injected for r in fault_proxy.requests] == [True, True, False]


def test_injected_failure_without_retries_raises(moto_server: S3Server, bucket: str, fault_proxy: FaultProxy):
    moto_server.client().put_object(Bucket=bucket, Key="photo.jpg", Body=b"jpeg bytes")
    s3 = moto_server.client(
        endpoint_url=fault_proxy.endpoint, config=Config(retries={"mode": "standard", "max_attempts": 1})
    )
    fault_proxy.fail(method="GET", path_contains="photo.jpg", times=3)
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="photo.jpg")
    assert _status(info.value) == 503
    assert info.value.response["Error"] == {"Code": "ServiceUnavailable", "Message": "injected"}
    # botocore's Config(retries={"max_attempts": N}) counts *retries*: N=1 is two attempts in all.
    assert fault_proxy.statuses() == [503, 503]
    # Rules only match what they name: a PUT goes straight through while one GET failure is still armed.
    s3.put_object(Bucket=bucket, Key="other.jpg", Body=b"x")
    assert fault_proxy.statuses() == [503, 503, 200]
    once = moto_server.client(
        endpoint_url=fault_proxy.endpoint, config=Config(retries={"mode": "standard", "total_max_attempts": 1})
    )
    with pytest.raises(ClientError):
        once.get_object(Bucket=bucket, Key="photo.jpg")
    assert fault_proxy.statuses() == [503, 503, 200, 503]


def test_injected_connection_reset(moto_server: S3Server, bucket: str, fault_proxy: FaultProxy):
    moto_server.client().put_object(Bucket=bucket, Key="k", Body=b"v")
    once = moto_server.client(endpoint_url=fault_proxy.endpoint, config=Config(retries={"total_max_attempts": 1}))
    fault_proxy.fail(method="GET", times=1, reset_connection=True)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError, ConnectionError)):
        once.get_object(Bucket=bucket, Key="k")
    assert fault_proxy.requests[-1].status is None and fault_proxy.requests[-1].injected
    retrying = moto_server.client(
        endpoint_url=fault_proxy.endpoint, config=Config(retries={"mode": "standard", "max_attempts": 3})
    )
    fault_proxy.fail(method="GET", times=1, reset_connection=True)
    assert retrying.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    assert fault_proxy.statuses("GET") == [None, None, 200]


def test_proxy_delay_and_concurrency(moto_server: S3Server, bucket: str, fault_proxy: FaultProxy):
    import time

    fault_proxy.delay = 0.2
    s3 = moto_server.client(endpoint_url=fault_proxy.endpoint, config=Config(max_pool_connections=8))
    errors: list[BaseException] = []

    def put(i: int):
        try:
            s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x" * i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    start = time.perf_counter()
    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert not errors
    # Delayed, but in parallel: one at a time would take at least 8 x 0.2 = 1.6 s; the bound leaves room for a
    # loaded 2-core machine (1.24 s seen) without letting a proxy that serialises requests pass.
    assert 0.2 <= elapsed < 1.5
    assert fault_proxy.statuses("PUT") == [200] * 8


def test_stopped_proxy_forwards_nothing(moto_server: S3Server, bucket: str):
    proxy = FaultProxy(moto_server.endpoint).start()
    s3 = moto_server.client(endpoint_url=proxy.endpoint, config=Config(retries={"total_max_attempts": 1}))
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")  # leaves a kept-alive connection in the pool
    proxy.stop()
    with pytest.raises((ConnectionClosedError, EndpointConnectionError, ConnectionError)):
        s3.get_object(Bucket=bucket, Key="k")
    assert [r.method for r in proxy.requests] == ["PUT"]
