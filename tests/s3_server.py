"""A real, credential-checking S3 endpoint on loopback (moto's server) and a fault-injecting proxy in front of it.

Fixtures (loaded suite-wide through ``pytest_plugins`` in conftest.py):

- ``moto_server`` (session): an :class:`S3Server` -- moto's S3 server on ``127.0.0.1:<free port>``, in a
  thread of this process, that *authenticates* every request: only the access key it issued is accepted.
- ``bucket`` (function): a fresh, empty bucket with a unique name on that server.
- ``r2_env`` (function): the ``R2_*`` variables pointed at the server and the bucket; every ``AWS_*`` /
  other ``R2_*`` variable and the developer's ``~/.aws`` files kept out. Returns the bucket name.
- ``fault_proxy`` (function): a started :class:`FaultProxy` in front of the server.

The server runs inside the test process and shares moto's global state, so do not combine it with moto's
in-process ``mock_aws`` in the same session: that resets every backend (including the IAM user that owns
the access key) and would see authentication switched on.
"""

from __future__ import annotations

import http.client
import http.server
import json
import logging
import os
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "us-east-1"  # moto also accepts "auto" for object calls; CreateBucket needs us-east-1 or a LocationConstraint
PATH_STYLE = Config(s3={"addressing_style": "path"}, ignore_configured_endpoint_urls=True)
_IAM_USER = "modomo-tests"
_ALLOW_S3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def _isolated_session() -> boto3.session.Session:
    """A boto3 session that reads no ~/.aws config or credentials file."""
    core = botocore.session.Session()
    missing = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".no-such-aws-file")
    core.set_config_variable("config_file", missing)
    core.set_config_variable("credentials_file", missing)
    return boto3.session.Session(botocore_session=core)


@dataclass
class S3Server:
    """An S3 endpoint on loopback with the one key pair it accepts."""

    endpoint: str
    access_key_id: str
    secret_access_key: str
    region: str = REGION
    _session: boto3.session.Session = field(default_factory=_isolated_session, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def client(self, **overrides):
        """A boto3 S3 client for this server (path-style, signed with the issued key); kwargs override any
        argument of ``boto3.client``; a ``config`` override is merged over the path-style config."""
        config = PATH_STYLE.merge(overrides.pop("config")) if "config" in overrides else PATH_STYLE
        kwargs = {
            "endpoint_url": self.endpoint,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "config": config,
            **overrides,
        }
        with self._lock:  # one session (loaded service models) for every client; creation is not thread-safe
            return self._session.client("s3", **kwargs)

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique ``test-...`` name unless one is given) and return its name."""
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def _start_authenticating_moto() -> tuple[object, S3Server, float]:
    """Start moto's server on a free loopback port, issue one access key through IAM, then require auth."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    previous = settings.INITIAL_NO_AUTH_ACTION_COUNT
    try:
        # Unauthenticated while the key is made (the default, inf); from then on every request must be signed
        # with it (auth applies once request_count >= INITIAL_NO_AUTH_ACTION_COUNT, so 0 means always).
        settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
        session = _isolated_session()
        iam = session.client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName=_IAM_USER)
        iam.put_user_policy(UserName=_IAM_USER, PolicyName="s3-all", PolicyDocument=json.dumps(_ALLOW_S3))
        key = iam.create_access_key(UserName=_IAM_USER)["AccessKey"]
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin.request_count = 0
        s3 = S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], _session=session)
        # Refuse to hand out a server that would accept anything.
        made_up = s3.client(aws_access_key_id="AKIAMADEUPMADEUPMADE", aws_secret_access_key="made-up")
        try:
            made_up.list_buckets()
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] != 403:
                raise
        else:
            raise RuntimeError("moto accepted a made-up access key: authentication is not enabled")
        s3.client().list_buckets()
    except BaseException:
        server.stop()
        settings.INITIAL_NO_AUTH_ACTION_COUNT = previous
        ActionAuthenticatorMixin.request_count = 0
        raise
    return server, s3, previous


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 server on 127.0.0.1, checking signatures against the one access key it issued."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    server, s3, previous = _start_authenticating_moto()
    try:
        yield s3
    finally:
        server.stop()
        settings.INITIAL_NO_AUTH_ACTION_COUNT = previous
        ActionAuthenticatorMixin.request_count = 0


@pytest.fixture
def bucket(moto_server: S3Server) -> str:
    """A fresh, empty bucket with a unique name."""
    return moto_server.make_bucket()


@pytest.fixture
def r2_env(monkeypatch, tmp_path, moto_server: S3Server, bucket: str) -> str:
    """Point the R2_* settings at the moto server and the test's bucket; keep AWS_* and ~/.aws out."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "R2_")) or name == "CDN_DOMAIN":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("R2_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("R2_ACCESS_KEY_ID", moto_server.access_key_id)
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", moto_server.secret_access_key)
    monkeypatch.setenv("R2_BUCKET_NAME", bucket)
    return bucket


# --------------------------------------------------------------------------------------------------------------
# Fault-injecting reverse proxy


class ProxiedRequest(NamedTuple):
    """One request the proxy saw. ``status`` is None when the connection was reset instead of answered."""

    method: str
    path: str
    status: int | None
    injected: bool = False


@dataclass
class _Fault:
    method: str | None
    path_contains: str | None
    remaining: int
    status: int
    code: str
    reset_connection: bool

    def matches(self, method: str, path: str) -> bool:
        if self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in path


_ERROR_CODES = {
    400: "BadRequest",
    403: "AccessDenied",
    404: "NoSuchKey",
    408: "RequestTimeout",
    429: "SlowDown",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
# Not forwarded in either direction: connection-level headers, and the framing the proxy redoes itself.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and Expect: 100-continue answered by handle_expect_100
    # Headers and body go out in two writes: with Nagle on, the client's delayed ACK adds ~40 ms to each reply.
    disable_nagle_algorithm = True
    timeout = 60
    server: _ProxyServer

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _dispatch(self):
        proxy = self.server.proxy
        body = self._read_body()
        fault = proxy._take_fault(self.command, self.path)
        if fault is not None and fault.reset_connection:
            proxy._record(ProxiedRequest(self.command, self.path, None, True))
            self._reset()
            return
        if fault is not None:
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{fault.code}</Code>'
                f"<Message>injected</Message><RequestId>fault-proxy</RequestId></Error>"
            ).encode()
            proxy._record(ProxiedRequest(self.command, self.path, fault.status, True))
            self._reply(fault.status, "Injected", [("Content-Type", "application/xml")], payload)
            return
        if proxy.delay:
            time.sleep(proxy.delay)
        try:
            status, reason, headers, payload = self._forward(body)
        except OSError as exc:
            proxy._record(ProxiedRequest(self.command, self.path, 502, False))
            self._reply(502, "Bad Gateway", [("Content-Type", "text/plain")], f"proxy: {exc}".encode())
            return
        proxy._record(ProxiedRequest(self.command, self.path, status, False))  # before the client can see it
        self._reply(status, reason, headers, payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _dispatch

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes):
        upstream = self.server.proxy.upstream
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        try:
            # The client's Host header goes through unchanged: SigV4 signed it.
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    conn.putheader(name, value)
            if body or self.command in ("PUT", "POST", "PATCH") or "Content-Length" in self.headers:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            payload = response.read()
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, response.reason, headers, payload
        finally:
            conn.close()

    def _reply(self, status: int, reason: str, headers, payload: bytes):
        self.send_response_only(status, reason)
        head = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        for name, value in headers:
            if name.lower() == "content-length" and not head:
                continue
            self.send_header(name, value)
        if not head:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not head:
            self.wfile.write(payload)
        self.wfile.flush()

    def _reset(self):
        """Drop the connection with an RST, as a peer or middlebox resetting it would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def process_request(self, request, client_address):
        self.proxy._track(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        self.proxy._untrack(request)
        super().shutdown_request(request)


@dataclass
class FaultProxy:
    """A reverse proxy on 127.0.0.1 in front of ``upstream`` that can fail, reset or slow chosen requests.

    Everything not matched by a :meth:`fail` rule is forwarded as sent (method, path and query, headers
    including Host, body) and the upstream's status, headers and body are relayed back. ``delay`` seconds
    are slept before each forwarded request. ``requests`` lists every request seen, in order.
    """

    upstream_url: str
    delay: float = 0.0
    requests: list[ProxiedRequest] = field(default_factory=list)

    def __post_init__(self):
        self.upstream = urlsplit(self.upstream_url)
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()

    # -- lifecycle

    def start(self) -> FaultProxy:
        self._server = _ProxyServer(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            open_now, self._open = list(self._open), set()
        for sock in open_now:  # kept-alive client connections must not outlive the proxy
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the proxy first"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- faults

    def fail(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
        status: int = 503,
        *,
        reset_connection: bool = False,
        code: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and ``path_contains`` (path plus query) with
        ``status`` and an S3-style XML error (``code`` defaults from the status), or with
        ``reset_connection=True`` drop the connection abruptly instead. Rules are consumed in the order added."""
        fault = _Fault(
            method, path_contains, times, status, code or _ERROR_CODES.get(status, "InjectedFault"), reset_connection
        )
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def statuses(self, method: str | None = None, path_contains: str | None = None) -> list[int | None]:
        """Statuses of the recorded requests matching ``method`` and ``path_contains``, in order."""
        return [
            r.status
            for r in list(self.requests)
            if (method is None or r.method == method.upper()) and (path_contains is None or path_contains in r.path)
        ]

    # -- used by the handler

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    return fault
        return None

    def _record(self, entry: ProxiedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)


@pytest.fixture
def fault_proxy(moto_server: S3Server):
    """A started :class:`FaultProxy` in front of the session's moto server; point clients at ``.endpoint``."""
    proxy = FaultProxy(moto_server.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()
