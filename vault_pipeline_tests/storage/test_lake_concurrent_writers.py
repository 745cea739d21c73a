"""Delta on S3 with several writers: every commit lands, none replaces another, versions stay sequential.

Writers are worker processes loading through ``DeltaLake`` into one table on moto's
``ThreadedMotoServer``, watched at the HTTP level (``fixtures/delta_commits.py``): each commit
``PUT`` of ``_delta_log/<version>.json`` is seen with its ``If-None-Match`` header and moto's
answer. One scenario stages a collision for certain (a writer's commit is held until a rival has
committed the same version, so it must be refused with 412 and retried on top); another lets two
writers load side by side. Settings that would make commits unsafe, or only look safe, are refused
with a message naming them.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import boto3
import pytest

from vault_pipeline.storage.lake import DeltaLake
from vault_pipeline.storage.lake_common import s3_commit_options
from vault_pipeline_tests.fixtures.aws import FAKE_KEY_ID, FAKE_SECRET, REGION
from vault_pipeline_tests.fixtures.delta_commits import (
    ROWS_PER_LOAD,
    CommitWatch,
    load_hours,
    read_back,
    warm_up,
    watched_moto_server,
)

TABLE = "audit_events"
RESULT_S = 120


@dataclass
class S3Lake:
    root: str
    options: dict[str, str]
    bucket: str
    watch: CommitWatch
    client: object

    @property
    def table(self) -> str:
        """The table as the watch names it: "<bucket>/<path>"."""
        return f"{self.bucket}/lake/{TABLE}"

    def commit_files(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"lake/{TABLE}/_delta_log/")
        return sorted(o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", []) if o["Key"].endswith(".json"))


@pytest.fixture(scope="module")
def watched_server() -> Iterator[tuple[str, CommitWatch]]:
    with watched_moto_server() as server:
        yield server


@pytest.fixture(scope="module")
def writers() -> Iterator[ProcessPoolExecutor]:
    """Two writer processes (spawned: no state shared with this one), shut down at the end."""
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    try:
        pids = {pool.submit(warm_up).result(timeout=RESULT_S) for _ in range(4)}
        assert pids, "no writer process started"
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def s3_lake(watched_server: tuple[str, CommitWatch], aws_env: None, writers: ProcessPoolExecutor) -> S3Lake:
    """A fresh bucket whose table already holds one load (versions 0: create, 1: append)."""
    url, watch = watched_server
    client = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id=FAKE_KEY_ID,
                          aws_secret_access_key=FAKE_SECRET)
    bucket = f"vault-writers-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    # What the prod resource passes (defs/resources.py); the lake adds the commit settings.
    options = {"AWS_ENDPOINT_URL": url, "AWS_ALLOW_HTTP": "true", "AWS_REGION": REGION,
               "AWS_ACCESS_KEY_ID": FAKE_KEY_ID, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET}
    lake = S3Lake(f"s3://{bucket}/lake", options, bucket, watch, client)
    writers.submit(load_hours, lake.root, options, TABLE, "seed", ["00"], 0.0).result(timeout=RESULT_S)
    assert lake.commit_files() == [f"{v:020d}.json" for v in (0, 1)]
    return lake


def _side_by_side(writers: ProcessPoolExecutor, lake: S3Lake, loads: dict[str, list[str]]) -> None:
    start_at = time.time() + 1.5  # both workers are warm: they start loading within milliseconds
    futures = [writers.submit(load_hours, lake.root, lake.options, TABLE, provider, hours, start_at)
               for provider, hours in loads.items()]
    for future in futures:
        future.result(timeout=RESULT_S)  # a writer that failed raises here, with its error


def test_two_writers_racing_for_one_version_both_commit_one_after_the_other(
        s3_lake: S3Lake, writers: ProcessPoolExecutor) -> None:
    s3_lake.watch.race_next_commit(s3_lake.table)
    _side_by_side(writers, s3_lake, {"east": ["01"], "west": ["02"]})

    assert s3_lake.watch.race_staged, "the held commit was released before its rival had committed"
    attempts = [a for a in s3_lake.watch.attempts(s3_lake.table) if a.version >= 2]
    # The rival took version 2; the held writer's PUT of version 2 was refused and it retried as 3.
    assert sorted((a.version, a.status, a.held) for a in attempts) == [(2, 200, False), (2, 412, True), (3, 200, False)]
    assert {a.if_none_match for a in s3_lake.watch.attempts(s3_lake.table)} == {"*"}  # every commit conditional

    state = writers.submit(read_back, s3_lake.root, s3_lake.options, TABLE).result(timeout=RESULT_S)
    assert state["version"] == 3 and state["history"] == [0, 1, 2, 3]
    assert state["rows"] == {"seed": ROWS_PER_LOAD, "east": ROWS_PER_LOAD, "west": ROWS_PER_LOAD}
    assert s3_lake.commit_files() == [f"{v:020d}.json" for v in range(4)]


def test_writers_loading_side_by_side_lose_no_update(s3_lake: S3Lake, writers: ProcessPoolExecutor) -> None:
    hours = {"east": ["01", "02", "03", "04"], "west": ["11", "12", "13", "14"]}
    _side_by_side(writers, s3_lake, hours)

    loads = 1 + sum(len(h) for h in hours.values())  # the seed's and each writer's
    state = writers.submit(read_back, s3_lake.root, s3_lake.options, TABLE).result(timeout=RESULT_S)
    # One version per commit, in sequence from the table's creation (0) on, none missing or reused.
    assert state["version"] == loads and state["history"] == list(range(loads + 1))
    assert s3_lake.commit_files() == [f"{v:020d}.json" for v in range(loads + 1)]
    assert state["rows"] == {"seed": ROWS_PER_LOAD, "east": 4 * ROWS_PER_LOAD, "west": 4 * ROWS_PER_LOAD}
    assert state["distinct_ids"] == loads * ROWS_PER_LOAD
    attempts = s3_lake.watch.attempts(s3_lake.table)
    landed = sorted(a.version for a in attempts if a.status == 200)
    assert landed == list(range(loads + 1))  # each version written once: no commit replaced another
    assert {a.if_none_match for a in attempts} == {"*"}
    assert {a.status for a in attempts} <= {200, 412}  # a lost race is a refusal and a retry, never an error


# -- the commit settings ----------------------------------------------------------------------

def test_a_lake_on_s3_commits_with_conditional_puts_and_a_local_one_has_nothing_to_set() -> None:
    assert DeltaLake("s3://bucket/lake", {"AWS_REGION": REGION}).storage_options == {
        "AWS_REGION": REGION, "conditional_put": "etag"}
    assert DeltaLake("s3://bucket/lake", {"aws_conditional_put": "ETag"}).storage_options == {"aws_conditional_put": "ETag"}
    assert DeltaLake("/tmp/lake").storage_options == {}


@pytest.mark.parametrize(("setting", "named", "fix"), [
    ({"conditional_put": "disabled"}, "conditional_put='disabled'", "set conditional_put=etag"),
    ({"AWS_CONDITIONAL_PUT": "dynamo:locks"}, "AWS_CONDITIONAL_PUT='dynamo:locks'", "set AWS_CONDITIONAL_PUT=etag"),
    ({"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}, "AWS_S3_ALLOW_UNSAFE_RENAME='true'", "remove AWS_S3_ALLOW_UNSAFE_RENAME"),
    ({"AWS_S3_LOCKING_PROVIDER": "dynamodb"}, "AWS_S3_LOCKING_PROVIDER='dynamodb'", "remove AWS_S3_LOCKING_PROVIDER"),
])
def test_settings_that_make_commits_unsafe_or_only_look_safe_are_refused_by_name(setting, named, fix) -> None:
    secret = "wJalrXUtnFEMI-never-in-a-message"
    with pytest.raises(ValueError) as refused:
        DeltaLake("s3://bucket/lake", {**setting, "AWS_SECRET_ACCESS_KEY": secret})
    message = str(refused.value)
    assert f"storage option {named}" in message and fix in message
    assert secret not in message


def test_the_environment_delta_rs_also_reads_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_S3_LOCKING_PROVIDER", "dynamodb")
    with pytest.raises(ValueError, match="environment variable AWS_S3_LOCKING_PROVIDER='dynamodb'.*deltalake 1.x"):
        DeltaLake("s3://bucket/lake")
    assert DeltaLake("/tmp/lake").storage_options == {}  # a local lake has no S3 commits to protect
    # An explicit safe setting in the options wins over the environment's unsafe one.
    assert s3_commit_options({"conditional_put": "etag"}, {"AWS_CONDITIONAL_PUT": "disabled"}) == {
        "conditional_put": "etag"}
    assert s3_commit_options({"AWS_S3_ALLOW_UNSAFE_RENAME": "false"}, {}) == {
        "AWS_S3_ALLOW_UNSAFE_RENAME": "false", "conditional_put": "etag"}
