"""Who used the vault's API in a period: the access log counted by key, endpoint and status.

The counting happens in the catalog (``Catalog.summarise_access``, one indexed range of the
period); this module turns concrete paths into endpoints (``/v1/logs/{log_id}/raw`` rather
than one line per record fetched) and lists every failed authentication (401: no or unknown
key, 403: a key without the role) with its time, key name (``anonymous`` without a key), path
and client address. The access log never holds a key or a query string (api/middleware.py),
so neither does anything here.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Any

from vault_pipeline.reports.moments import fixed_width, period
from vault_pipeline.storage.catalog import Catalog

# Path segments that are identifiers, by shape: a log id, a promotion or report id, a Dagster
# run id (UUID), a hex digest, or any long token mixing letters and digits.
_ID_SEGMENTS = (
    (re.compile(r"^log_[0-9a-f]{32}$"), "{log_id}"),
    (re.compile(r"^prm_[0-9a-f]{24}$"), "{promotion_id}"),
    (re.compile(r"^rpt_[0-9A-Za-z_-]+$"), "{report_id}"),
    (re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"), "{job_id}"),
    (re.compile(r"^[0-9a-f]{16,}$"), "{id}"),
    (re.compile(r"^(?=.*\d)[A-Za-z0-9_.:-]{16,}$"), "{id}"),
)


def endpoint_of(path: str) -> str:
    """``path`` with its identifier segments named, e.g. ``/v1/logs/{log_id}/raw``."""
    segments = []
    for segment in path.split("/"):
        for pattern, name in _ID_SEGMENTS:
            if pattern.match(segment):
                segment = name
                break
        segments.append(segment)
    return "/".join(segments)


def access_summary(catalog: Catalog, start: datetime | str, end: datetime | str, *,
                   max_failures: int | None = None) -> dict[str, Any]:
    """The access log in [start, end). ``max_failures`` caps the listed failed authentications
    (None: all); ``failed_authentications_total`` always counts every one."""
    low, high = period(start, end)
    summary = catalog.summarise_access(start=fixed_width(low), end=fixed_width(high), failure_limit=max_failures)
    by_principal: Counter[str] = Counter()
    denied: Counter[str] = Counter()
    by_status: Counter[int] = Counter()
    for principal, status, n in summary.by_principal_status:
        by_principal[principal] += n
        by_status[status] += n
        if status >= 400:
            denied[principal] += n
    by_endpoint: Counter[tuple[str, str]] = Counter()
    for method, path, n in summary.by_method_path:
        by_endpoint[(method, endpoint_of(path))] += n
    return {
        "period": {"start": fixed_width(low), "end": fixed_width(high)},
        "total": summary.total,
        "by_principal": [{"principal": p, "requests": n, "errors": denied[p]}
                         for p, n in sorted(by_principal.items(), key=lambda i: (-i[1], i[0]))],
        "by_endpoint": [{"method": m, "endpoint": e, "requests": n}
                        for (m, e), n in sorted(by_endpoint.items(), key=lambda i: (-i[1], i[0]))],
        "by_status": [{"status": s, "requests": n} for s, n in sorted(by_status.items())],
        "failed_authentications": [
            {"at": e.at, "principal": e.principal or "anonymous", "status": e.status, "method": e.method,
             "path": e.path, "client": e.client} for e in summary.auth_failures],
        "failed_authentications_total": summary.auth_failures_total,
        "failed_authentications_truncated": len(summary.auth_failures) < summary.auth_failures_total,
    }
