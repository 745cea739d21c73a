"""The integrity report: findings of a snapshot diff, and whether they fail the partition.

A finding is one concrete discrepancy (a missing object, changed bytes, a catalog entry that
points nowhere, a count that does not add up). Counting is exact; the listed findings are
capped so a badly damaged partition still yields a readable report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Finding types that mean data was lost or altered: they fail the blocking check.
FAILING = {
    "missing_object",
    "changed_object",
    "changed_record",
    "missing_in_catalog",
    "catalog_checksum_mismatch",
    "catalog_pointer_mismatch",
    "orphaned_in_catalog",
    "missing_in_lake",
    "count_mismatch",
}
# Worth knowing, but not loss: e.g. a page stored by an earlier attempt that the retry no longer received.
WARNING = {"orphaned_object", "revision_conflict"}

MAX_LISTED = 1000


@dataclass(slots=True)
class IntegrityReport:
    partition: str
    counts: dict[str, int] = field(default_factory=dict)  # what was compared
    findings: list[dict[str, Any]] = field(default_factory=list)
    finding_counts: Counter = field(default_factory=Counter)
    # The Merkle digest of the partition's catalog checksums in log order, as this diff read
    # and compared them (``core.ledger.digest_document``): the ledger entry of the same run
    # commits to exactly what was verified, without reading the catalog a second time. None
    # when a checksum was not even a digest (the diff fails then anyway).
    catalog_digest: dict[str, Any] | None = None

    def add(self, kind: str, **detail: Any) -> None:
        self.finding_counts[kind] += 1
        if len(self.findings) < MAX_LISTED:
            self.findings.append({"type": kind, **detail})

    @property
    def failing(self) -> int:
        return sum(n for kind, n in self.finding_counts.items() if kind in FAILING)

    @property
    def clean(self) -> bool:
        return self.failing == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "clean": self.clean,
            "counts": self.counts,
            "finding_counts": dict(sorted(self.finding_counts.items())),
            "findings": self.findings,
            **({"catalog_digest": self.catalog_digest} if self.catalog_digest is not None else {}),
        }

    def markdown(self, limit: int = 15) -> str:
        if not self.finding_counts:
            return "No discrepancies: objects, catalog and lake match the landing snapshot."
        lines = ["| finding | where |", "|---|---|"]
        for finding in self.findings[:limit]:
            where = ", ".join(f"{k}={v}" for k, v in finding.items() if k != "type")
            lines.append(f"| {finding['type']} | {where} |")
        total = sum(self.finding_counts.values())
        if total > limit:
            lines.append(f"| ... | {total - limit} more |")
        return "\n".join(lines)
