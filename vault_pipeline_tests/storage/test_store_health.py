"""The object store port's health methods: a bounded twin of the store, and the store's own clock.

``vault doctor`` reaches the store only through the port: ``with_timeout`` gives it a store that
answers at once when S3 cannot be reached, and ``server_time`` the bucket's Date header to
compare this machine's clock with. A local directory has neither a network nor a clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from vault_pipeline.storage.local_store import LocalObjectStore
from vault_pipeline.storage.object_store import ObjectStoreError
from vault_pipeline.storage.s3_store import S3ObjectStore, make_s3_client
from vault_pipeline_tests.fixtures.aws import REGION
from vault_pipeline_tests.fixtures.provider_server import closed_port_url


def test_a_local_store_is_its_own_bounded_store_and_has_no_clock_of_its_own(tmp_path):
    store = LocalObjectStore(tmp_path / "objects")
    assert store.with_timeout(1.0) is store
    assert store.server_time() is None


def test_the_bounded_s3_store_reads_the_same_bucket_and_tells_its_time(moto_s3):
    store = S3ObjectStore(moto_s3.client, moto_s3.bucket, prefix="vault")
    store.put("raw/page.json", b'{"records": []}')
    bounded = store.with_timeout(2.0)
    assert bounded is not store and bounded.client is not store.client
    assert bounded.get("raw/page.json") == b'{"records": []}' and bounded.uri() == store.uri()
    server = bounded.server_time()
    assert server is not None and server.tzinfo is not None
    assert abs((server - datetime.now(UTC)).total_seconds()) < 5


def test_an_unreachable_bucket_fails_at_once_naming_the_bucket(aws_env):
    with closed_port_url("") as endpoint:
        store = S3ObjectStore(make_s3_client(max_attempts=8, endpoint_url=endpoint, region_name=REGION), "vault-gone")
        bounded = store.with_timeout(1.0)
        started = time.monotonic()
        with pytest.raises(ObjectStoreError, match=r"S3 HEAD of s3://vault-gone/ failed: EndpointConnectionError"):
            bounded.server_time()
    assert time.monotonic() - started < 2  # no retries, no backoff
    with pytest.raises(ValueError, match="a timeout must be positive"):
        store.with_timeout(0)
