"""List and fetch N small objects from an S3 endpoint: modomo's read-ahead pool versus one at a time.

    python benchmarks/r2_fetch.py                       # moto's S3 server on 127.0.0.1, 20 ms added per request
    python benchmarks/r2_fetch.py --latency-ms 0        # loopback as it is
    python benchmarks/r2_fetch.py --location r2://bucket/prefix/   # a real bucket (R2_* variables), read-only

Both ways list through the same paginator and fetch through the same `Item.read`; the pooled way
uses `pipeline.run.prefetch.read_ahead`, the window the runner uses. Writes JSON beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.inputs.sources import collect_inputs  # noqa: E402
from pipeline.r2 import Remote, Settings  # noqa: E402
from pipeline.run.prefetch import read_ahead  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.1)
    return server, f"http://127.0.0.1:{port}"


def fill(remote: Remote, bucket: str, count: int) -> None:
    remote.client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "auto"})
    payload = os.urandom(20_000)
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: remote.client.put_object(Bucket=bucket, Key=f"in/{i:04d}.jpg", Body=payload), range(count)
            )
        )


def measure(location: str, remote: Remote, workers: int) -> dict[str, float]:
    """List + fetch everything one at a time, then list + fetch through the read-ahead pool."""
    start = time.perf_counter()
    items = collect_inputs([location], remote)
    list_seconds = time.perf_counter() - start
    for item in items:
        item.read()
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    items = collect_inputs([location], remote)
    with ThreadPoolExecutor(workers) as pool:
        for _ in read_ahead(items, lambda item: item.read(), pool, window=2 + workers):
            pass
    pooled = time.perf_counter() - start
    return {
        "objects": len(items),
        "list_seconds": round(list_seconds, 3),
        "sequential_seconds": round(sequential, 3),
        "pooled_seconds": round(pooled, 3),
        "speedup": round(sequential / pooled, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added per request (local server only)")
    parser.add_argument("--location", help="benchmark an existing r2://bucket/prefix instead")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("r2_fetch.json"))
    args = parser.parse_args()

    server = proxy = None
    try:
        if args.location:
            remote, location, endpoint = Remote(pool_size=args.workers + 2), args.location, "R2_ENDPOINT_URL"
        else:
            from tests.s3_server import FaultProxy

            server, upstream = start_moto()
            endpoint_url = upstream
            if args.latency_ms > 0:  # a proxy that sleeps before forwarding stands in for the WAN round trip
                proxy = FaultProxy(upstream, delay=args.latency_ms / 1000).start()
                endpoint_url = proxy.endpoint
            settings = Settings(endpoint_url, "bench", "bench", "bench", None)
            fill(Remote(Settings(upstream, "bench", "bench", "bench", None)), "bench", args.objects)
            remote, location, endpoint = Remote(settings, pool_size=args.workers + 2), "r2://bench/in/", "moto"
        result = measure(location, remote, args.workers)
    finally:
        if proxy:
            proxy.stop()
        if server:
            server.terminate()
    result.update(
        workers=args.workers,
        latency_ms=None if args.location else args.latency_ms,
        endpoint=endpoint,
        command="python " + " ".join([f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
    )
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
