"""Contract tests for the ObjectStore port: the local directory and S3 (moto) adapters must
keep raw provider bytes identically, refuse silent overwrites and hostile keys, and (S3) encrypt
every object and ride out S3 throttling through botocore's own retries."""

from __future__ import annotations

import base64
import hashlib
import pickle
from pathlib import Path

import botocore.retries.standard
import pytest
from botocore.awsrequest import AWSResponse

from vault_pipeline.core.checksums import checksum
from vault_pipeline.storage.local_store import LocalObjectStore
from vault_pipeline.storage.object_store import (
    InvalidKeyError,
    ObjectConflictError,
    ObjectMissingError,
    ObjectStore,
    ObjectStoreError,
)
from vault_pipeline.storage.s3_store import S3ObjectStore, make_s3_client, s3_client_config
from vault_pipeline_tests.fixtures.aws import REGION, S3Bucket

PREFIX = "vault/objects"
# Unicode, NULs, every byte value and a trailing newline: what a provider page may contain.
AWKWARD = "{\"actor\": \"Zoë ☃ 🔐\"}\n".encode() + b"\x00\x00\xff" + bytes(range(256)) + b"\r\n"
HOSTILE_KEYS = ["../x", "/abs", "a/../../b", "", "a\\b", "..\\..\\x", "a\x00b", "raw/../../etc/passwd", "a//b"]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    return S3ObjectStore(bucket.client, bucket.name, prefix=PREFIX)


def test_put_get_is_byte_exact(store: ObjectStore) -> None:
    result = store.put("raw/acme/2026/01/01/07/page.json", AWKWARD)
    assert result.created and result.size == len(AWKWARD) and result.checksum == checksum(AWKWARD)
    assert store.get("raw/acme/2026/01/01/07/page.json") == AWKWARD
    assert store.exists("raw/acme/2026/01/01/07/page.json")
    assert store.size("raw/acme/2026/01/01/07/page.json") == len(AWKWARD)


def test_empty_object_round_trips(store: ObjectStore) -> None:
    assert store.put("reports/empty.json", b"").created
    assert store.get("reports/empty.json") == b""
    assert store.size("reports/empty.json") == 0


def test_put_of_identical_bytes_is_a_no_op(store: ObjectStore) -> None:
    assert store.put("raw/a.json", AWKWARD).created
    again = store.put("raw/a.json", AWKWARD)
    assert not again.created and again.checksum == checksum(AWKWARD)
    assert store.get("raw/a.json") == AWKWARD


def test_put_of_different_bytes_is_refused_and_keeps_the_original(store: ObjectStore) -> None:
    store.put("raw/a.json", AWKWARD)
    with pytest.raises(ObjectConflictError, match="raw/a.json"):
        store.put("raw/a.json", AWKWARD + b"tampered")
    with pytest.raises(ObjectConflictError):
        store.put("raw/a.json", AWKWARD[:-1] + b"X")  # same length, different bytes
    assert store.get("raw/a.json") == AWKWARD


def test_overwrite_replaces(store: ObjectStore) -> None:
    store.put("reports/r.json", b"v1")
    result = store.put("reports/r.json", b"version 2", overwrite=True)
    assert result.created and store.get("reports/r.json") == b"version 2"


def test_get_range_is_exact(store: ObjectStore) -> None:
    store.put("raw/p.json", AWKWARD)
    for offset, length in [(0, 1), (0, len(AWKWARD)), (5, 17), (len(AWKWARD) - 3, 3), (30, 0)]:
        assert store.get_range("raw/p.json", offset, length) == AWKWARD[offset : offset + length]
    with pytest.raises(ObjectStoreError, match="shorter"):
        store.get_range("raw/p.json", len(AWKWARD) - 2, 5)
    with pytest.raises(ObjectStoreError):
        store.get_range("raw/p.json", len(AWKWARD) + 10, 5)
    with pytest.raises(ValueError):
        store.get_range("raw/p.json", -1, 5)


def test_missing_key(store: ObjectStore) -> None:
    with pytest.raises(ObjectMissingError, match="raw/nope.json"):
        store.get("raw/nope.json")
    with pytest.raises(ObjectMissingError, match="raw/nope.json"):
        store.get_range("raw/nope.json", 0, 4)
    assert not store.exists("raw/nope.json")
    assert store.size("raw/nope.json") is None


def test_list_by_prefix_is_sorted_and_relative(store: ObjectStore) -> None:
    keys = ["raw/b/2.json", "raw/a/9.json", "dlq/x.json", "raw/a/10.json", "raw/ab/1.json", "raw/a/1.json"]
    for key in keys:
        store.put(key, key.encode())
    assert list(store.list()) == sorted(keys)
    assert list(store.list("raw/a/")) == ["raw/a/1.json", "raw/a/10.json", "raw/a/9.json"]
    assert list(store.list("raw/a")) == ["raw/a/1.json", "raw/a/10.json", "raw/a/9.json", "raw/ab/1.json"]
    assert list(store.list("nothing/")) == []


def test_delete(store: ObjectStore) -> None:
    store.put("reports/r.json", b"x")
    store.delete("reports/r.json")
    assert not store.exists("reports/r.json")


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_are_rejected(store: ObjectStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        store.put(key, b"evil")
    with pytest.raises(InvalidKeyError):
        store.get(key)
    with pytest.raises(InvalidKeyError):
        store.get_range(key, 0, 1)
    with pytest.raises(InvalidKeyError):
        store.exists(key)
    with pytest.raises(InvalidKeyError):
        store.local_path(key)
    assert list(store.list()) == []
    # Nothing landed anywhere under tmp_path but the (empty) store root itself.
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []


def test_local_path_is_the_objects_own_file_or_none(store: ObjectStore) -> None:
    """What a landing snapshot is read from in pieces: the very file holding the stored bytes
    (locally), or None, and then the bytes come from ``get`` as before."""
    store.put("snapshots/p/landing-records.parquet", AWKWARD)
    path = store.local_path("snapshots/p/landing-records.parquet")
    assert store.local_path("snapshots/p/absent.parquet") is None
    if isinstance(store, S3ObjectStore):
        assert path is None
        return
    assert Path(path).read_bytes() == AWKWARD and Path(path).is_relative_to(store.root)


def test_an_objects_digest_is_its_checksum_and_size_however_it_is_read(store: ObjectStore) -> None:
    """``digest_of`` hashes a local file in chunks and other backends' bytes whole: the same answer."""
    big = AWKWARD * 40_000  # several MB: more than one chunk of the file read
    store.put("snapshots/p/landing-records.parquet", big)
    store.put("raw/empty.json", b"")
    assert store.digest_of("snapshots/p/landing-records.parquet") == (checksum(big), len(big))
    assert store.digest_of("raw/empty.json") == (checksum(b""), 0)
    with pytest.raises(ObjectMissingError, match="raw/nope.json"):
        store.digest_of("raw/nope.json")
    with pytest.raises(ValueError):
        store.digest_of("../escape")


def test_a_view_of_a_buffer_is_stored_as_its_bytes(store: ObjectStore) -> None:
    """Landing hands its snapshot over as a view of the writer's buffer, not a copy."""
    view = memoryview(bytearray(AWKWARD))
    stored = store.put("snapshots/p/landing-records.parquet", view)
    assert store.get("snapshots/p/landing-records.parquet") == AWKWARD
    assert stored.created and stored.size == len(AWKWARD)
    assert store.put("snapshots/p/landing-records.parquet", memoryview(AWKWARD)).created is False


def test_a_staged_file_is_stored_as_its_bytes_and_refused_like_a_put(store: ObjectStore, tmp_path: Path) -> None:
    """Promotion hands its staged parts over as files; the same rules as ``put`` hold."""
    def staged(name: str, data: bytes) -> Path:
        path = tmp_path / "work" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return path

    stored = store.put_file("golden/p/records-00000.ndjson", staged("part-0.records", AWKWARD))
    assert stored.created and stored.size == len(AWKWARD) and stored.checksum == checksum(AWKWARD)
    assert store.get("golden/p/records-00000.ndjson") == AWKWARD
    again = store.put_file("golden/p/records-00000.ndjson", staged("again", AWKWARD), known_checksum=checksum(AWKWARD))
    assert not again.created  # identical bytes: nothing written
    with pytest.raises(ObjectConflictError, match="records-00000"):
        store.put_file("golden/p/records-00000.ndjson", staged("other", AWKWARD[:-1] + b"X"))
    assert store.get("golden/p/records-00000.ndjson") == AWKWARD
    replaced = store.put_file("golden/p/records-00000.ndjson", staged("v2", b"v2\n"), overwrite=True)
    assert replaced.created and store.get("golden/p/records-00000.ndjson") == b"v2\n"
    assert store.put_file("golden/p/empty", staged("empty", b"")).size == 0 and store.get("golden/p/empty") == b""
    with pytest.raises(InvalidKeyError):
        store.put_file("../outside", staged("hostile", b"x"))
    if isinstance(store, LocalObjectStore):  # moved in, not copied, and private like every object
        assert not (tmp_path / "work" / "part-0.records").exists()
        mode = Path(store.local_path("golden/p/empty")).stat().st_mode & 0o777
        assert mode == 0o600


def test_worker_opener_opens_the_same_store_or_is_none(store: ObjectStore) -> None:
    store.put("raw/a.json", AWKWARD)
    opener = store.worker_opener()
    if isinstance(store, S3ObjectStore):
        assert opener is None  # a handed-in client (here moto's) cannot be re-created elsewhere
        return
    reopened = pickle.loads(pickle.dumps(opener))()  # what a spawned worker process gets and calls
    assert type(reopened) is LocalObjectStore and reopened.get("raw/a.json") == AWKWARD
    store.put("raw/b.json", b"later")
    assert reopened.get("raw/b.json") == b"later"  # the same directory, not a copy


# -- S3 only ----------------------------------------------------------------------------


@pytest.fixture
def s3_store(s3_bucket: S3Bucket) -> S3ObjectStore:
    return S3ObjectStore(s3_bucket.client, s3_bucket.name, prefix=PREFIX)


def test_s3_uri_and_prefix(s3_store: S3ObjectStore, s3_bucket: S3Bucket) -> None:
    s3_store.put("raw/a.json", b"x")
    assert s3_store.uri("raw/a.json") == f"s3://{s3_bucket.name}/{PREFIX}/raw/a.json"
    listed = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name)["Contents"]
    assert [o["Key"] for o in listed] == [f"{PREFIX}/raw/a.json"]
    bare = S3ObjectStore(s3_bucket.client, s3_bucket.name)
    assert bare.uri("raw/a.json") == f"s3://{s3_bucket.name}/raw/a.json"
    assert list(bare.list("vault/")) == [f"{PREFIX}/raw/a.json"]


def test_s3_every_put_is_encrypted_and_checksummed(s3_store: S3ObjectStore, s3_bucket: S3Bucket) -> None:
    sent: list[dict[str, str]] = []

    def capture(request, **_):
        sent.append({k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()})
        return None  # observe only; the request goes on to (mock) S3

    s3_bucket.client.meta.events.register_first("before-send.s3.PutObject", capture)
    s3_store.put("raw/a.json", AWKWARD)
    s3_store.put("reports/r.json", b"1")
    s3_store.put("reports/r.json", b"2", overwrite=True)
    assert len(sent) == 3
    for key in ("raw/a.json", "reports/r.json"):
        head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"{PREFIX}/{key}")
        assert head["ServerSideEncryption"] == "AES256"
    assert all(headers["x-amz-server-side-encryption"] == "AES256" for headers in sent)
    expected = base64.b64encode(hashlib.sha256(AWKWARD).digest()).decode()
    assert sent[0]["x-amz-checksum-sha256"] == expected


def test_s3_kms_encryption(s3_bucket: S3Bucket) -> None:
    store = S3ObjectStore(s3_bucket.client, s3_bucket.name, sse="aws:kms", kms_key_id="alias/vault-raw")
    store.put("raw/a.json", b"secret")
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="raw/a.json")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/vault-raw")
    with pytest.raises(ValueError):
        S3ObjectStore(s3_bucket.client, s3_bucket.name, sse="none")
    with pytest.raises(ValueError):
        S3ObjectStore(s3_bucket.client, s3_bucket.name, kms_key_id="alias/x")  # AES256 + key id


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object):
        yield self._data


_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>BROWNOUT</RequestId></Error>"
)


def test_s3_brownout_is_retried_by_botocore(
    s3_store: S3ObjectStore, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore backs off up to 1 s, then 2 s, on throttling; the retry itself is what is
    # under test, not the waiting, so the backoff is zeroed to keep the suite fast.
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    sends: list[int] = []

    def brownout(request, **_):
        sends.append(1)
        if len(sends) <= 2:
            return AWSResponse(request.url, 503, {"Content-Type": "application/xml"}, _Body(_SLOWDOWN))
        return None  # let the request through to (mock) S3

    s3_bucket.client.meta.events.register_first("before-send.s3.PutObject", brownout)
    result = s3_store.put("raw/acme/page.json", AWKWARD)
    assert result.created
    assert len(sends) == 3  # two SlowDowns, one success
    assert s3_store.get("raw/acme/page.json") == AWKWARD


def test_s3_brownout_beyond_max_attempts_is_a_clear_error(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    client = make_s3_client(max_attempts=1, region_name=REGION)  # one retry after the first try
    sends: list[int] = []

    def always_slow(request, **_):
        sends.append(1)
        return AWSResponse(request.url, 503, {}, _Body(_SLOWDOWN))

    client.meta.events.register_first("before-send.s3.PutObject", always_slow)
    store = S3ObjectStore(client, s3_bucket.name)
    with pytest.raises(ObjectStoreError, match=rf"s3://{s3_bucket.name}/raw/a.json.*SlowDown"):
        store.put("raw/a.json", b"x")
    assert len(sends) == 2


def test_s3_errors_name_bucket_and_key_not_credentials(monkeypatch: pytest.MonkeyPatch, s3_bucket: S3Bucket) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-7f3a")
    client = make_s3_client(region_name=REGION)
    store = S3ObjectStore(client, "vault-bucket-that-does-not-exist")
    with pytest.raises(ObjectStoreError) as caught:
        store.put("raw/a.json", b"x")
    message = str(caught.value)
    assert "vault-bucket-that-does-not-exist" in message and "raw/a.json" in message
    assert "NoSuchBucket" in message
    assert "very-secret-value-7f3a" not in message


def test_s3_client_config() -> None:
    config = s3_client_config(max_attempts=7)
    assert config.retries == {"mode": "standard", "max_attempts": 7}
    assert config.connect_timeout and config.read_timeout
    with pytest.raises(ValueError):
        s3_client_config(max_attempts=-1)


def test_a_staged_file_on_another_filesystem_is_copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A work directory on another disk than the objects: the rename fails with EXDEV, the bytes are copied."""
    import errno
    import os

    store = LocalObjectStore(tmp_path / "objects")
    staged = tmp_path / "part-0.records"
    staged.write_bytes(AWKWARD)
    real_replace = os.replace

    def across_filesystems(src, dst):
        if Path(src) == staged:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", across_filesystems)
    assert store.put_file("golden/p/records-00000.ndjson", staged).created
    assert store.get("golden/p/records-00000.ndjson") == AWKWARD
