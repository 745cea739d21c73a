"""Where things live in the object store: the key layout every stage agrees on.

``raw/`` holds provider pages byte-exact and content-addressed; ``inbox/`` what was pushed
(a test run's JUnit XML, an agent's results) with what came with it, until the hour's run lands it; ``dlq/`` bodies that could
not be used and validation rejects; ``snapshots/`` the landing snapshot each integrity diff
starts from; ``reports/`` validation and integrity reports; ``golden/`` promoted (verified,
masked where needed) records by kind, and ``quarantine/`` what failed verification. All keys of one partition share
the ``{provider}/{YYYY}/{MM}/{DD}/{HH}`` part, so a partition is one prefix per zone.
"""

from __future__ import annotations

from vault_pipeline.core.windows import HourWindow


def partition_path(provider: str, window: HourWindow) -> str:
    return f"{provider}/{window.object_prefix()}"


def raw_prefix(provider: str, window: HourWindow) -> str:
    return f"raw/{partition_path(provider, window)}/"


def raw_key(provider: str, window: HourWindow, sha256_hex: str, extension: str = "json") -> str:
    """A page's content address; ``extension`` is ``xml`` for a pushed JUnit report."""
    return f"raw/{partition_path(provider, window)}/{sha256_hex}.{extension}"


def inbox_prefix(provider: str, window: HourWindow) -> str:
    return f"inbox/{partition_path(provider, window)}/"


def inbox_body_key(provider: str, window: HourWindow, sha256_hex: str, extension: str) -> str:
    """A pushed body as received, until (and after) the hour's run lands it in ``raw/``."""
    return f"{inbox_prefix(provider, window)}{sha256_hex}.{extension}"


def inbox_context_key(provider: str, window: HourWindow, sha256_hex: str) -> str:
    """What came with a pushed body (commit, branch, build, started_at, who sent it)."""
    return f"{inbox_prefix(provider, window)}{sha256_hex}.push.json"


def push_pointer_key(push_id: str) -> str:
    """Where a push (test run or agent execution) is found again by its id."""
    return f"inbox/_pushes/{push_id}.json"


def dlq_body_key(provider: str, window: HourWindow, sha256_hex: str) -> str:
    return f"dlq/{partition_path(provider, window)}/{sha256_hex}.body"


def dlq_report_key(provider: str, window: HourWindow) -> str:
    return f"dlq/{partition_path(provider, window)}/input-validation.json"


def snapshot_records_key(provider: str, window: HourWindow) -> str:
    return f"snapshots/{partition_path(provider, window)}/landing-records.parquet"


def snapshot_objects_key(provider: str, window: HourWindow) -> str:
    return f"snapshots/{partition_path(provider, window)}/landing-objects.json"


def report_key(provider: str, window: HourWindow, name: str) -> str:
    return f"reports/{partition_path(provider, window)}/{name}.json"


def golden_prefix(kind: str, provider: str, window: HourWindow) -> str:
    """``golden/{kind}/{provider}/{YYYY-MM-DD}/{HH}/``: consumers list a day or an hour by prefix."""
    return f"golden/{kind}/{provider}/{window.start:%Y-%m-%d}/{window.start:%H}/"


def quarantine_key(provider: str, window: HourWindow, log_id: str) -> str:
    return f"quarantine/{partition_path(provider, window)}/{log_id}.json"
