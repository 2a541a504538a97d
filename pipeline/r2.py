"""Cloudflare R2 (S3-compatible) locations: parsing `r2://bucket/prefix`, the client, access checks, listing.

Configuration comes from the environment only, never the command line: R2_ENDPOINT_URL,
R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY, R2_BUCKET_NAME (the bucket when a location names none),
CDN_DOMAIN; the standard AWS_* variables (and AWS_ENDPOINT_URL) are the fallbacks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePosixPath

from pipeline.errors import ModomoError, UsageError

SCHEMES = ("r2://", "s3://")
MAX_ATTEMPTS = 5


def is_remote(location: str | os.PathLike) -> bool:
    return isinstance(location, str) and location.lower().startswith(SCHEMES)


@dataclass(frozen=True)
class Location:
    """A bucket and a key prefix ('' or ending in '/')."""

    bucket: str
    prefix: str

    def uri(self, key: str = "") -> str:
        return f"r2://{self.bucket}/{self.prefix}{key}"

    def key(self, relative: str) -> str:
        """The object key for a path relative to this prefix; refuses anything that would escape it."""
        parts = relative.split("/")
        if not relative or relative.startswith("/") or any(p in ("..", ".") for p in parts):
            raise ModomoError(f"{relative}: key would escape the output prefix {self.uri()}")
        return self.prefix + relative


def parse(location: str, default_bucket: str | None = None) -> Location:
    """`r2://bucket/prefix`, `s3://bucket/prefix`, or `r2:///prefix` for the R2_BUCKET_NAME bucket."""
    rest = location.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    bucket = bucket or (default_bucket or "")
    if not bucket:
        raise UsageError(f"{location}: names no bucket and R2_BUCKET_NAME is not set")
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if any(part == ".." for part in prefix.split("/")):
        raise UsageError(f"{location}: '..' is not allowed in a prefix")
    return Location(bucket, prefix)


@dataclass(frozen=True)
class Settings:
    """Endpoint, credentials, default bucket and CDN domain, from the environment."""

    endpoint_url: str | None
    access_key_id: str | None
    secret_access_key: str | None
    bucket: str | None
    cdn_domain: str | None

    @classmethod
    def from_env(cls, env: dict | None = None) -> Settings:
        env = os.environ if env is None else env

        def first(*names: str) -> str | None:
            return next((env[n] for n in names if env.get(n)), None)

        return cls(
            endpoint_url=first("R2_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            access_key_id=first("R2_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
            secret_access_key=first("R2_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
            bucket=first("R2_BUCKET_NAME"),
            cdn_domain=first("CDN_DOMAIN"),
        )

    def __repr__(self) -> str:  # never print the secret
        return f"Settings(endpoint_url={self.endpoint_url!r}, bucket={self.bucket!r}, cdn_domain={self.cdn_domain!r})"

    def public_url(self, key: str) -> str | None:
        """The CDN URL of an object key when CDN_DOMAIN is set."""
        if not self.cdn_domain:
            return None
        from urllib.parse import quote

        domain = self.cdn_domain.rstrip("/")
        if "://" not in domain:
            domain = "https://" + domain
        return f"{domain}/{quote(key)}"


PROBE_ATTEMPTS = 2  # the access check before models load: a dead endpoint is reported in seconds


def make_client(settings: Settings, pool_size: int = 10, attempts: int = MAX_ATTEMPTS, connect_timeout: int = 5):
    """A boto3 S3 client shaped for R2: region auto, checksums only when required, bounded retries."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name="auto",
        signature_version="s3v4",
        # R2 rejects the CRC checksums boto3 adds by default since 1.36.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "total_max_attempts": attempts},
        max_pool_connections=pool_size,
        connect_timeout=connect_timeout,
        read_timeout=60,
        s3={"addressing_style": "path"},
    )
    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id, aws_secret_access_key=settings.secret_access_key
    )
    return session.client("s3", endpoint_url=settings.endpoint_url, config=config)


def explain(exc: Exception, location: Location, settings: Settings) -> str:
    """One line for an S3 failure, naming the bucket and the likely cause; never a secret."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = settings.endpoint_url or "the default S3 endpoint"
    if isinstance(exc, NoCredentialsError):
        return "no R2 credentials: set R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach {where}: check R2_ENDPOINT_URL"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket", "404") or status == 404 and code in ("", "NotFound"):
            return f"bucket {location.bucket!r} does not exist at {where}"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied", "Forbidden") or status == 403:
            return (
                f"access to bucket {location.bucket!r} denied ({code or status}): "
                "check R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY and the key's permissions"
            )
        return f"bucket {location.bucket!r}: {code or status}: {exc.response.get('Error', {}).get('Message', '')}"
    return f"bucket {location.bucket!r}: {type(exc).__name__}: {exc}"


def check_bucket(client, location: Location, settings: Settings) -> None:
    """Fail fast, before any model loads, on wrong keys, a missing bucket or an unreachable endpoint."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_bucket(Bucket=location.bucket)
    except (ClientError, BotoCoreError) as exc:
        raise ModomoError(explain(exc, location, settings)) from None


def list_keys(
    client, location: Location, settings: Settings, suffixes: frozenset[str], page_size: int = 1000
) -> list[tuple[str, str]]:
    """(key, ETag) of the images under the prefix, all pages, folder markers and hidden names skipped, sorted."""
    from botocore.exceptions import BotoCoreError, ClientError

    keys = []
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=location.bucket, Prefix=location.prefix, PaginationConfig={"PageSize": page_size}
        )
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                relative = key[len(location.prefix) :]
                name = relative.rsplit("/", 1)[-1]
                if key.endswith("/") or not name or any(p.startswith(".") for p in relative.split("/")):
                    continue
                if PurePosixPath(name).suffix.lower() in suffixes:
                    keys.append((key, obj.get("ETag", "").strip('"')))
    except (ClientError, BotoCoreError) as exc:
        raise ModomoError(explain(exc, location, settings)) from None
    return sorted(keys)


class Remote:
    """The environment's R2 settings and one shared client, made on first use."""

    def __init__(self, settings: Settings | None = None, pool_size: int = 10):
        self.settings = settings or Settings.from_env()
        self.pool_size = pool_size
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = make_client(self.settings, self.pool_size)
        return self._client

    def check(self, location: Location) -> None:
        """Credentials and bucket, with few retries and a short timeout: fail in seconds, not minutes."""
        check_bucket(make_client(self.settings, 1, PROBE_ATTEMPTS, connect_timeout=3), location, self.settings)

    def location(self, uri: str) -> Location:
        return parse(uri, self.settings.bucket)

    def get(self, bucket: str, key: str) -> bytes:
        """One object's bytes; OSError with a one-line reason once retries are spent."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise OSError(f"cannot download: {exc.response.get('Error', {}).get('Code', 'error')}") from None
        except BotoCoreError as exc:
            raise OSError(f"cannot download: {exc}") from None

    def etag(self, bucket: str, key: str) -> str | None:
        """The object's ETag, or None when there is no such object."""
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        except ClientError:
            return None
