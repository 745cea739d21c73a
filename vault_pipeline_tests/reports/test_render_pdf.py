"""An auditor files the PDF form: real pages that each name the report, tables that fit, charts, and the same bytes every time."""

from __future__ import annotations

import io
import time

import pypdf
import pytest
from reportlab.pdfbase import pdfmetrics

from vault_pipeline.core.report_model import ComplianceReport, Section, Table
from vault_pipeline.reports import render_pdf as pdf_module
from vault_pipeline.reports.render_pdf import render_pdf
from vault_pipeline_tests.fixtures.reports import sample_report


def pages_text(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def test_a_month_report_is_paginated_and_every_page_names_its_report_and_number():
    report = sample_report()
    data = render_pdf(report, report.digest())
    assert data.startswith(b"%PDF-")
    texts = pages_text(data)
    assert len(texts) >= 5
    for number, text in enumerate(texts, 1):
        assert f"page {number} of {len(texts)}" in text
        assert report.digest() in text
    first = texts[0]
    for value in (report.report_id, "Version", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-02-01T00:05:12Z"):
        assert value in first
    meta = pypdf.PdfReader(io.BytesIO(data)).metadata
    assert meta.title == f"Compliance report {report.report_id}" and meta["/Keywords"] == report.digest()


def test_section_headings_appear_in_order_and_as_bookmarks():
    report = sample_report()
    data = render_pdf(report, report.digest())
    body = "\n".join(pages_text(data)[1:])
    positions = [body.index(s.title.split(":")[0]) for s in report.sections]
    assert positions == sorted(positions)
    outline = [item.title for item in pypdf.PdfReader(io.BytesIO(data)).outline]
    assert outline[:7] == [s.title for s in report.sections[:7]]
    assert outline[7].startswith("Cost centre: Zoë Łódź Ελλάδα Москва")


def test_the_same_report_renders_to_the_same_bytes_and_a_new_version_does_not():
    report = sample_report(hostile=True)
    first = render_pdf(report, report.digest())
    assert render_pdf(report, report.digest()) == first
    second = sample_report(hostile=True, version=2)
    assert render_pdf(second, second.digest()) != first


def _text_runs(data: bytes) -> list[tuple[str, float, float, str]]:
    """(font, x, font size, text) of every text run drawn, from the page content streams."""
    f = pdf_module.fonts()
    runs = []
    for page in pypdf.PdfReader(io.BytesIO(data)).pages:
        def visit(text, cm, tm, font_dict, size):
            if text.strip() and font_dict:
                base = str(font_dict.get("/BaseFont", ""))
                font = f.mono if "Mono" in base else f.bold if ("Bold" in base or "Bd" in base) else f.regular
                runs.append((font, cm[4] + tm[4] * cm[0], size * tm[0] * cm[0] or size, text))
        page.extract_text(visitor_text=visit)
    return runs


def test_long_hashes_keys_and_values_wrap_inside_the_page():
    report = sample_report(access_rows=60)
    data = render_pdf(report, report.digest())
    right_edge = pdf_module.PAGE_W - pdf_module.MARGIN_X + 1
    runs = _text_runs(data)
    assert len(runs) > 500
    for font, x, size, text in runs:
        width = pdfmetrics.stringWidth(text.strip("\n"), font, size)
        assert x >= pdf_module.MARGIN_X - 1 and x + width <= right_edge, (x, size, text)
    request_id = report.section("access_logs").tables[0].rows[0][5]
    joined = "".join("".join(pages_text(data)).split())
    assert request_id in joined  # every character is there, across its wrapped lines


def test_empty_tables_gaps_and_a_value_longer_than_a_page_are_handled():
    report = ComplianceReport(report_id="r", version=1, period_start="a", period_end="b", generated_at="c", sections=[
        Section(name="integrity", title="Integrity", tables=[Table("findings", ["kind", "detail"], [])]),
        Section(name="custom", title="Custom", summary={"nothing": None},
                tables=[Table("big", ["key", "blob"], [["k", "x" * 40_000], ["gap", None]]),
                        Table("no columns", [], [])])])
    text = "\n".join(pages_text(render_pdf(report, report.digest())))
    assert "no rows" in text
    assert "—" in text
    assert "cut: the CSV and HTML forms hold the full value" in text


def test_five_thousand_rows_render_in_seconds_with_the_header_on_every_page():
    report = sample_report(access_rows=5000)
    started = time.perf_counter()
    data = render_pdf(report, report.digest())
    elapsed = time.perf_counter() - started
    assert elapsed < 10, f"5,000 rows took {elapsed:.1f} s"
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) > 100
    sampled = [reader.pages[i].extract_text() for i in range(3, len(reader.pages) - 3, 9)]  # reading all is slow
    table_pages = [t for t in sampled if "/v1/logs/log_" in t]
    assert len(table_pages) >= 10
    assert all("request id" in t and "user agent" in t for t in table_pages)


def test_non_latin_text_is_set_or_visibly_replaced_and_the_reader_is_told():
    report = sample_report()
    texts = pages_text(render_pdf(report, report.digest()))
    assert "Москва" in texts[-1] and "Ελλάδα" in texts[-1]  # DejaVu has the glyphs
    assert "\ufffd" in texts[-1]  # the unicorn and CJK are not in DejaVu: replaced, not dropped
    assert "are shown as \ufffd" in texts[0]


@pytest.fixture
def without_system_fonts(monkeypatch, tmp_path):
    monkeypatch.setattr(pdf_module, "_SYSTEM_FONTS", tmp_path / "none")
    pdf_module.fonts.cache_clear()
    yield
    pdf_module.fonts.cache_clear()  # the next render registers the system fonts again


def test_without_dejavu_the_bundled_font_is_used_and_nothing_crashes(without_system_fonts):
    report = sample_report()
    data = render_pdf(report, report.digest())
    texts = pages_text(data)
    assert pdf_module.fonts().charmaps and f"page 1 of {len(texts)}" in texts[0]
    assert "Zo" in texts[-1] and "Москва" not in texts[-1]  # Vera is Latin only: Cyrillic is replaced
    assert "are shown as" in texts[0]


def test_charts_are_vector_drawings_not_images():
    report = sample_report()
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(report, report.digest())))
    for page in reader.pages:
        xobjects = page.get("/Resources", {}).get("/XObject", {})
        assert all(xobjects[name].get("/Subtype") != "/Image" for name in xobjects)
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert "Bar chart of this period, previous period over 3 labels" in text
    assert "Pie chart of requests over 4 categories" in text
    assert "this period" in text and "previous period" in text  # the legend is drawn as text
