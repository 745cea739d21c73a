"""The compliance report's shape: what every section builder returns and every renderer reads.

A report (seed 002's ComplianceReport) covers a period and holds named sections. Every section
has the same generic parts, so the HTML, PDF and CSV renderers need not know what a section
means: key figures (``summary``, in order), tables (``Table``: a title, column names and rows
of plain values) and charts (``Chart``: bar, line or pie over labels, one or more named series).
``data_lineage`` and ``audit_trail`` are also kept as lists of plain dicts at the top level, as
the seed's model has them. ``canonical_bytes`` is the report's content in one byte form; its
SHA-256 is the report's digest, the one the PDF footer and the ledger entry name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

SECTION_NAMES = ("usage", "retention", "access_logs", "data_lineage", "audit_trail", "data_quality", "integrity")
FORMATS = ("html", "pdf", "csv")
CHART_KINDS = ("bar", "line", "pie")
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf", "csv": "text/csv; charset=utf-8"}


@dataclass(frozen=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]  # plain JSON values: str, int, float, bool, None

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.title!r}: a row has {len(row)} values for {len(self.columns)} columns")


@dataclass(frozen=True)
class Chart:
    kind: str  # bar | line | pie
    title: str
    labels: list[str]
    series: dict[str, list[float | None]]  # series name -> one value per label (a pie takes the first series)

    def __post_init__(self) -> None:
        if self.kind not in CHART_KINDS:
            raise ValueError(f"chart {self.title!r}: kind must be one of {CHART_KINDS}, got {self.kind!r}")
        for name, values in self.series.items():
            if len(values) != len(self.labels):
                raise ValueError(f"chart {self.title!r}: series {name!r} has {len(values)} values for "
                                 f"{len(self.labels)} labels")


@dataclass(frozen=True)
class Section:
    name: str  # one of SECTION_NAMES, or a custom section's name from vault.yaml
    title: str
    summary: dict[str, Any] = field(default_factory=dict)  # key figure -> plain value, in display order
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # sentences: what a reader must know (sampling, gaps)


@dataclass(frozen=True)
class ComplianceReport:
    report_id: str
    version: int  # 1 for a period's first report; generating the same period again adds a version
    period_start: str  # ISO-8601 UTC with Z
    period_end: str
    generated_at: str
    sections: list[Section]
    data_lineage: list[dict[str, Any]] = field(default_factory=list)
    audit_trail: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[str, Any] = field(default_factory=dict)  # what was read: table versions, catalog, ledger heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def canonical_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False, default=str).encode("utf-8")

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical_bytes()).hexdigest()

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComplianceReport:
        sections = [
            Section(name=s["name"], title=s["title"], summary=dict(s.get("summary") or {}),
                    tables=[Table(**t) for t in s.get("tables") or []],
                    charts=[Chart(**c) for c in s.get("charts") or []], notes=list(s.get("notes") or []))
            for s in data["sections"]
        ]
        return cls(report_id=data["report_id"], version=int(data["version"]), period_start=data["period_start"],
                   period_end=data["period_end"], generated_at=data["generated_at"], sections=sections,
                   data_lineage=list(data.get("data_lineage") or []), audit_trail=list(data.get("audit_trail") or []),
                   sources=dict(data.get("sources") or {}))
