"""An auditor opens the CSV form in a spreadsheet: one block per section table, nothing a spreadsheet would execute."""

from __future__ import annotations

import csv
import io

from vault_pipeline.core.report_model import ComplianceReport, Section, Table
from vault_pipeline.reports.render_csv import render_csv
from vault_pipeline_tests.fixtures.reports import (
    HOSTILE_FORMULA,
    UNICODE_NAME,
    sample_report,
)


def blocks(data: bytes) -> tuple[list[str], list[tuple[str, list[list[str]]]]]:
    """The file's report line, then (header, rows) per block; blocks are separated by one empty row."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    preamble, rest = rows[0], rows[2:]
    assert rows[1] == []
    found, current = [], None
    for row in rest:
        if current is None:
            assert len(row) == 1 and row[0].startswith("# section: "), row
            current = (row[0], [])
        elif row == []:
            found.append(current)
            current = None
        else:
            current[1].append(row)
    assert current is None, "the file ends with a blank line after its last block"
    return preamble, found


def test_every_section_table_chart_and_key_figures_is_one_block_in_report_order():
    report = sample_report()
    preamble, found = blocks(render_csv(report))
    assert preamble == [(f"# report: {report.report_id} / version: 1 / period: 2026-01-01T00:00:00Z .. "
                         f"2026-02-01T00:00:00Z / generated_at: 2026-02-01T00:05:12Z / digest: {report.digest()}")]
    expected = []
    for s in report.sections:
        if s.summary:
            expected.append(f"# section: {s.name} / table: key figures")
        expected += [f"# section: {s.name} / table: {t.title}" for t in s.tables]
        expected += [f"# section: {s.name} / chart: {c.title}" for c in s.charts]
        if s.notes:
            expected.append(f"# section: {s.name} / table: notes")
    assert [header for header, _ in found] == expected
    by_header = dict(found)
    usage = report.section("usage")
    providers = by_header["# section: usage / table: requests by provider"]
    assert providers[0] == usage.tables[0].columns
    assert providers[1:] == [[str(v) for v in row] for row in usage.tables[0].rows]
    assert by_header["# section: usage / table: key figures"][:3] == [
        ["key figure", "value"], ["requests", "10000000"], ["providers", "3"]]
    access = by_header["# section: access_logs / table: every request"]
    assert len(access) == 1 + len(report.section("access_logs").tables[0].rows)
    day_chart = by_header["# section: usage / chart: requests per day"]
    assert day_chart[0] == ["label", "requests", "errors"] and len(day_chart) == 32
    assert day_chart[13] == ["2026-01-13", "360000.0", ""]  # a gap in the series stays an empty cell


def test_an_empty_table_keeps_its_header_so_its_emptiness_is_visible():
    _, found = blocks(render_csv(sample_report()))
    assert dict(found)["# section: integrity / table: vault verify findings"] == [["time", "kind", "object key", "detail"]]


def test_formulas_from_provider_records_are_defused_and_numbers_are_left_alone():
    hostile = sample_report(hostile=True)
    report = ComplianceReport(
        report_id="r", version=1, period_start="a", period_end="b", generated_at="c",
        sections=[*hostile.sections, Section(name="edge", title="edge cases", tables=[Table(
            "starts", ["=col", "value", "number"],
            [["+1+1", -5, -5.5], ["-2", 0, None], ["@SUM(A1:A9)", True, 3], ["\tTAB", False, 1], ["\rCR", "plain", 2],
             ["a=b", "x-y", 4]])])])
    data = render_csv(report).decode("utf-8")
    _, found = blocks(data.encode("utf-8"))
    by_header = dict(found)
    assert by_header["# section: edge / table: starts"] == [
        ["'=col", "value", "number"], ["'+1+1", "-5", "-5.5"], ["'-2", "0", ""], ["'@SUM(A1:A9)", "true", "3"],
        ["'\tTAB", "false", "1"], ["'\rCR", "plain", "2"], ["a=b", "x-y", "4"]]
    key_names = [row[1] for row in by_header["# section: access_logs / table: every request"][1:]]
    assert "'" + HOSTILE_FORMULA in key_names and HOSTILE_FORMULA not in key_names
    assert all(not cell.startswith(("=", "+", "-", "@")) for _, rows in found for row in rows for cell in row
               if not cell.lstrip("-").replace(".", "", 1).isdigit())


def test_non_latin_text_survives_exactly_in_utf8():
    data = render_csv(sample_report())
    _, found = blocks(data)
    assert dict(found)["# section: cost_center / table: key figures"][1] == ["owner", UNICODE_NAME]
    assert not data.startswith(b"\xef\xbb\xbf")  # no byte-order mark: the first cell is the report line


def test_top_level_lineage_gets_a_block_only_when_no_section_shows_it():
    full = sample_report()
    assert [h for h, _ in blocks(render_csv(full))[1]].count("# section: data_lineage / table: records") == 0
    bare = ComplianceReport(report_id="r", version=2, period_start="a", period_end="b", generated_at="c", sections=[],
                            data_lineage=[{"log_id": "l1", "checksum": "sha256:" + "0" * 64},
                                          {"log_id": "l2", "golden": "quarantined"}])
    _, found = blocks(render_csv(bare, digest="sha256:given"))
    assert found == [("# section: data_lineage / table: records",
                      [["log_id", "checksum", "golden"], ["l1", "sha256:" + "0" * 64, ""], ["l2", "", "quarantined"]])]
    assert b"digest: sha256:given" in render_csv(bare, digest="sha256:given")
