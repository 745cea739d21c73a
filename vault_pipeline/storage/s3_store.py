"""S3ObjectStore: the production home of every raw provider page, dead letter and report.

Each object is written once with server-side encryption (SSE-S3 by default, SSE-KMS when a
key is configured) and with its SHA-256 sent as ``ChecksumSHA256``, so S3 itself rejects a
body damaged in transit, checking the same digest the vault records as ``sha256:``. Record
spans are served with ranged GETs. Throttling (503 SlowDown) and transient network failures
are retried by botocore's standard retry mode, configured in ``s3_client_config``; there is
deliberately no retry loop here. Errors name the bucket, key and cause, never credentials.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vault_pipeline.core.checksums import hex_of
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore, ObjectStoreError, validate_key

_SSE_MODES = ("AES256", "aws:kms", "aws:kms:dsse")
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def s3_client_config(max_attempts: int = 5) -> Config:
    """botocore config for the vault's S3 traffic.

    Standard mode retries throttling (503 SlowDown, 429), 5xx and connection errors with
    jittered exponential backoff. In botocore's ``retries`` dict ``max_attempts`` counts the
    retries after the first try, so a request is sent at most ``max_attempts + 1`` times.
    """
    if max_attempts < 0:
        raise ValueError(f"max_attempts must be >= 0, got {max_attempts}")
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=10,
        # Large raw pages on a slow link must not hang a run forever, but must not time out
        # mid-body either: 60 s between bytes is generous for S3.
        read_timeout=60,
        tcp_keepalive=True,
    )


def make_s3_client(max_attempts: int = 5, endpoint_url: str | None = None, region_name: str | None = None) -> Any:
    """A boto3 S3 client with the vault's retry policy.

    Credentials, region and ``AWS_ENDPOINT_URL`` come from boto3's usual chain when not given.
    """
    return boto3.client(
        "s3", config=s3_client_config(max_attempts), endpoint_url=endpoint_url, region_name=region_name
    )


class S3ObjectStore(ObjectStore):
    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        sse: str = "AES256",
        kms_key_id: str | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3ObjectStore needs a bucket name")
        if sse not in _SSE_MODES:
            raise ValueError(f"unsupported server-side encryption {sse!r}; use one of {', '.join(_SSE_MODES)}")
        if kms_key_id and not sse.startswith("aws:kms"):
            raise ValueError("kms_key_id is only meaningful with sse='aws:kms' or 'aws:kms:dsse'")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix + "/" if prefix else ""
        self._object_lock: bool | None = None  # learnt on the first retained put
        self._sse_args: dict[str, str] = {"ServerSideEncryption": sse}
        if kms_key_id:
            self._sse_args["SSEKMSKeyId"] = kms_key_id

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def worker_opener(self) -> None:
        # Not re-openable from a description: the client is handed in and may be a test double
        # (moto) or hold credentials and a session that cannot be re-created in another process
        # from what this object holds, so vault verify keeps an S3 vault in-process.
        return None

    def _object_key(self, key: str) -> str:
        return self.prefix + key

    def _error(self, action: str, key: str, exc: Exception) -> ObjectStoreError:
        where = self.uri(key)
        if isinstance(exc, ClientError):
            code = _code(exc)
            message = exc.response.get("Error", {}).get("Message") or "no message"
            if code in _MISSING_CODES:
                return ObjectMissingError(f"object {key!r} is missing from {where}")
            return ObjectStoreError(f"S3 {action} of {where} failed: {code}: {message}")
        # BotoCoreError messages describe endpoints and timeouts, never secrets.
        return ObjectStoreError(f"S3 {action} of {where} failed: {type(exc).__name__}: {exc}")

    def _size(self, key: str) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise self._error("HEAD", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("HEAD", key, exc) from exc
        return int(head["ContentLength"])

    def _get(self, key: str, **extra: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key), **extra)
            body = response["Body"]
            try:
                return body.read()
            finally:
                body.close()
        except ClientError as exc:
            if extra and _code(exc) == "InvalidRange":
                raise ObjectStoreError(f"object {key!r} at {self.uri(key)} is shorter than the requested range") from exc
            raise self._error("ranged GET" if extra else "GET", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("ranged GET" if extra else "GET", key, exc) from exc

    def _read(self, key: str) -> bytes:
        return self._get(key)

    def _read_range(self, key: str, offset: int, length: int) -> bytes:
        data = self._get(key, Range=f"bytes={offset}-{offset + length - 1}")
        if len(data) != length:
            raise ObjectStoreError(f"object {key!r} is shorter than the range {offset}+{length}")
        return data

    def _write(self, key: str, data: bytes | memoryview, digest: str) -> None:
        sha256_b64 = base64.b64encode(bytes.fromhex(hex_of(digest))).decode("ascii")
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._object_key(key),
                Body=bytes(data) if isinstance(data, memoryview) else data,
                ContentLength=len(data),
                ChecksumSHA256=sha256_b64,
                **self._sse_args,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("PUT", key, exc) from exc

    def _retain(self, key: str, days: int) -> None:
        """COMPLIANCE-mode Object Lock retention, when the bucket has Object Lock enabled."""
        if not self._bucket_has_object_lock():
            return
        until = datetime.now(UTC) + timedelta(days=days)
        try:
            self.client.put_object_retention(
                Bucket=self.bucket, Key=self._object_key(key),
                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("PUT retention on", key, exc) from exc

    def immutability(self) -> dict[str, object]:
        try:
            lock = self.client.get_object_lock_configuration(Bucket=self.bucket).get("ObjectLockConfiguration", {})
        except ClientError as exc:
            if _code(exc) not in ("ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration"):
                raise self._error("GET object lock configuration of", "", exc) from exc
            lock = {}
        except BotoCoreError as exc:
            raise self._error("GET object lock configuration of", "", exc) from exc
        try:
            versioning = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status") or "Disabled"
        except (ClientError, BotoCoreError) as exc:
            raise self._error("GET versioning of", "", exc) from exc
        enabled = lock.get("ObjectLockEnabled") == "Enabled"
        default = lock.get("Rule", {}).get("DefaultRetention")
        if default:
            span = f"{default['Days']} days" if "Days" in default else f"{default.get('Years')} years"
            default = f"{default.get('Mode')} {span}"
        return {"backend": f"S3 bucket {self.bucket}", "object_lock": enabled, "default_retention": default or None,
                "versioning": versioning,
                "retained_objects": "COMPLIANCE-mode Object Lock" if enabled else "not locked: the bucket has no Object Lock"}

    def with_timeout(self, seconds: float) -> S3ObjectStore:
        """A store on a client of its own that waits at most ``seconds`` to connect and to read and
        never retries; same endpoint, region and client settings, credentials from boto3's chain."""
        if not seconds > 0:
            raise ValueError(f"a timeout must be positive, got {seconds!r}")
        config = self.client.meta.config.merge(Config(connect_timeout=seconds, read_timeout=seconds,
                                                      retries={"mode": "standard", "max_attempts": 0}))
        client = boto3.session.Session().client("s3", config=config, endpoint_url=self.client.meta.endpoint_url,
                                                region_name=self.client.meta.region_name)
        bounded = S3ObjectStore(client, self.bucket, self.prefix, sse=self._sse_args["ServerSideEncryption"],
                                kms_key_id=self._sse_args.get("SSEKMSKeyId"))
        return bounded

    def server_time(self) -> datetime | None:
        """S3's clock: the Date header of a HEAD on the bucket (also proves the bucket answers)."""
        try:
            response = self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("HEAD", "", exc) from exc
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if not date:
            return None
        try:
            return parsedate_to_datetime(date).astimezone(UTC)
        except (TypeError, ValueError):
            return None

    def _bucket_has_object_lock(self) -> bool:
        if self._object_lock is None:
            try:
                config = self.client.get_object_lock_configuration(Bucket=self.bucket)
                self._object_lock = config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _code(exc) not in ("ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration"):
                    raise self._error("GET object lock configuration of", "", exc) from exc
                self._object_lock = False
        return self._object_lock

    def _list(self, prefix: str) -> Iterator[str]:
        # S3 lists keys in UTF-8 byte order, which for the ASCII-only keys validate_key
        # allows is the lexicographic order the port promises, so pages stream unsorted.
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.prefix)
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", ()):
                    yield item["Key"][strip:]
        except (ClientError, BotoCoreError) as exc:
            raise self._error("LIST", prefix, exc) from exc

    def _delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error("DELETE", key, exc) from exc
