"""Ledger objects are locked where the backend can: S3 Object Lock, or a read-only file locally."""

from datetime import UTC, datetime, timedelta

from vault_pipeline.storage.local_store import LocalObjectStore
from vault_pipeline.storage.s3_store import S3ObjectStore


def test_s3_puts_with_retention_are_locked_when_the_bucket_has_object_lock(s3_bucket):
    client = s3_bucket.client
    client.create_bucket(Bucket=s3_bucket.name + "-locked", ObjectLockEnabledForBucket=True)
    store = S3ObjectStore(client, s3_bucket.name + "-locked")
    store.put("ledger/acme/000000000001.json", b'{"sequence": 1}', retain_days=30)
    # moto answers GetObjectRetention with a 500; HEAD reports the same lock.
    head = client.head_object(Bucket=s3_bucket.name + "-locked", Key="ledger/acme/000000000001.json")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=29)


def test_s3_puts_with_retention_still_work_on_a_bucket_without_object_lock(s3_bucket):
    store = S3ObjectStore(s3_bucket.client, s3_bucket.name)
    store.put("ledger/acme/000000000001.json", b"{}", retain_days=30)
    assert store.get("ledger/acme/000000000001.json") == b"{}"


def test_local_retained_objects_are_read_only(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.put("ledger/acme/000000000001.json", b"{}", retain_days=30)
    assert (tmp_path / "ledger/acme/000000000001.json").stat().st_mode & 0o777 == 0o444
    store.put("ledger/acme/000000000001.json", b"{}", retain_days=30)  # identical bytes: still a no-op


def test_each_store_says_what_keeps_its_objects_immutable(s3_bucket, tmp_path):
    client = s3_bucket.client
    locked = s3_bucket.name + "-lock-rule"
    client.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}}})
    facts = S3ObjectStore(client, locked).immutability()
    assert facts["object_lock"] is True and facts["default_retention"] == "COMPLIANCE 30 days"
    assert facts["versioning"] == "Enabled" and locked in facts["backend"]  # Object Lock turns versioning on

    plain = S3ObjectStore(client, s3_bucket.name).immutability()
    assert plain["object_lock"] is False and plain["default_retention"] is None and "not locked" in plain["retained_objects"]

    local = LocalObjectStore(tmp_path).immutability()
    assert local["object_lock"] is False and "read-only" in local["retained_objects"]
