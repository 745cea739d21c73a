"""The CSV form of a compliance report: every section's figures and tables in one file an auditor opens in a spreadsheet.

One UTF-8 file (no byte-order mark, RFC 4180 quoting, CRLF line ends) made of blocks, one
after another in the report's section order, separated by one blank line. Every block starts
with a header line of one cell naming where it comes from, then a row of column names, then
its rows::

    # report: rpt_x / version: 1 / period: 2026-01-01T00:00:00Z .. 2026-02-01T00:00:00Z / generated_at: ... / digest: sha256:...

    # section: usage / table: key figures
    key figure,value
    requests,10000000

    # section: usage / table: requests by provider
    provider,requests
    acme_audit,3000000

    # section: usage / chart: requests per day
    label,requests,errors
    2026-01-01,300000,400

    # section: usage / table: notes
    note
    Counts come from ...

Per section: ``key figures`` (when it has any), then each table, then each chart's data (labels
and one column per series), then ``notes`` (when it has any). A table with no rows still has
its header and column rows, so its absence of data is visible. The top-level ``data_lineage``
and ``audit_trail`` records get a block of their own only when no section of that name exists.
``None`` is an empty cell; booleans are ``true``/``false``; nested values are compact JSON.
Values come from provider records, so a text cell starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return gets a leading apostrophe: a spreadsheet shows it as text instead of
evaluating it as a formula (CSV injection). Numbers are written as numbers and never altered.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from vault_pipeline.core.report_model import ComplianceReport, Section

# What spreadsheet programs treat as the start of a formula (OWASP's CSV injection list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str | int | float:
    """One value as a CSV cell: numbers as they are, text defused against formula evaluation."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def _block(writer: Any, section: str, kind: str, title: str, columns: list[str], rows: list[list[Any]]) -> None:
    writer.writerow([f"# section: {section} / {kind}: {title}"])
    writer.writerow([safe_cell(c) for c in columns])
    writer.writerows([safe_cell(v) for v in row] for row in rows)
    writer.writerow([])


def _section_blocks(writer: Any, section: Section) -> None:
    if section.summary:
        _block(writer, section.name, "table", "key figures", ["key figure", "value"],
               [[k, v] for k, v in section.summary.items()])
    for table in section.tables:
        _block(writer, section.name, "table", table.title, table.columns, table.rows)
    for chart in section.charts:
        names = list(chart.series)
        rows = [[label, *(chart.series[n][i] for n in names)] for i, label in enumerate(chart.labels)]
        _block(writer, section.name, "chart", chart.title, ["label", *names], rows)
    if section.notes:
        _block(writer, section.name, "table", "notes", ["note"], [[n] for n in section.notes])


def _records_block(writer: Any, name: str, records: list[dict[str, Any]]) -> None:
    # Records may differ in keys: the columns are their union, in first-seen order.
    columns: list[str] = []
    for record in records:
        columns.extend(k for k in record if k not in columns)
    _block(writer, name, "table", "records", columns, [[r.get(c) for c in columns] for r in records])


def render_csv(report: ComplianceReport, digest: str | None = None) -> bytes:
    """The report as one CSV file of blocks (layout in the module docstring); ``digest`` defaults to the report's."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    preamble = (f"# report: {report.report_id} / version: {report.version} / period: {report.period_start} .. "
                f"{report.period_end} / generated_at: {report.generated_at} / digest: {digest or report.digest()}")
    writer.writerow([preamble])
    writer.writerow([])
    for section in report.sections:
        _section_blocks(writer, section)
    present = {s.name for s in report.sections}
    for name, records in (("data_lineage", report.data_lineage), ("audit_trail", report.audit_trail)):
        if records and name not in present:
            _records_block(writer, name, records)
    return buffer.getvalue().encode("utf-8")
