"""An auditor opens the HTML form offline: everything is inside the page, and no provider value can run in it."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from vault_pipeline.core.report_model import Chart, ComplianceReport, Section, Table
from vault_pipeline.reports.render_html import render_html
from vault_pipeline_tests.fixtures.reports import (
    HOSTILE_URL,
    UNICODE_NAME,
    sample_report,
)


class Page(HTMLParser):
    """What a browser would act on: tags, attribute values, style text, and the visible text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [value or "" for _, value in attrs]
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)


def render(report: ComplianceReport) -> tuple[str, Page]:
    html = render_html(report, report.digest()).decode("utf-8")
    return html, Page(html)


def test_the_page_loads_nothing_from_anywhere():
    html, page = render(sample_report())
    assert "http://" not in html and "https://" not in html
    assert not {"script", "link", "img", "iframe", "object", "embed", "base"} & set(page.tags)
    assert "url(" not in "".join(page.styles) and "@import" not in "".join(page.styles)
    assert "default-src 'none'" in html  # the CSP meta tag: even an injected tag could fetch nothing


def test_hostile_provider_values_are_text_not_markup():
    html, page = render(sample_report(hostile=True))
    assert "script" not in page.tags
    assert '&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;' in html
    assert '<script>alert("x")</script>' in "".join(page.text)  # shown to the reader, as text
    # the hostile URL appears only as escaped text, never in an attribute or a style a browser would follow
    assert HOSTILE_URL in "".join(page.text)
    assert not any("http" in value or value.startswith("//") for value in page.attributes)
    assert not re.search(r"<[a-z][^>]*https?:", html, flags=re.IGNORECASE)


def test_header_and_footer_name_the_report_and_sections_follow_in_order():
    report = sample_report(version=3)
    html, page = render(report)
    text = " ".join(page.text)
    assert html.count(report.digest()) >= 3  # meta tag, header, footer
    assert html.count(report.report_id) >= 3
    footer = html[html.index('<footer class="report-foot">'):]
    assert "version 3" in footer and "2026-01-01T00:00:00Z to 2026-02-01T00:00:00Z" in footer
    headings = re.findall(r'<h2 id="section-\d+-h">(.*?) <small>(.*?)</small></h2>', html)
    assert [(t.replace("&#39;", "'"), n) for t, n in headings] == [(s.title, s.name) for s in report.sections]
    assert "10,000,000" in text and "0.9934" in text  # key figures, displayed
    assert UNICODE_NAME in text


def test_tables_show_every_row_an_empty_table_says_so_and_gaps_are_a_dash():
    report = sample_report(access_rows=50)
    html, _ = render(report)
    access = html[html.index("<caption>every request</caption>"):]
    access = access[: access.index("</table>")]
    assert access.count("<tr>") == 51
    findings = html[html.index("<caption>vault verify findings</caption>"):]
    assert '<td class="empty" colspan="4">no rows</td>' in findings[: findings.index("</table>")]
    models = html[html.index("<caption>requests by model and technique</caption>"):]
    assert "<td>—</td>" in models[: models.index("</table>")]


def test_every_chart_is_inline_svg_with_a_text_alternative_and_its_data():
    report = sample_report()
    html, _ = render(report)
    charts = [c for s in report.sections for c in s.charts]
    svgs = re.findall(r'<svg class="chart".*?</svg>', html, flags=re.DOTALL)
    assert len(svgs) == len(charts) == 5
    for svg, chart in zip(svgs, charts):
        assert 'role="img"' in svg and "<title id=" in svg and "<desc id=" in svg
        assert ("<rect" if chart.kind == "bar" else "<polyline" if chart.kind == "line" else "<path") in svg
    assert "Line chart of requests, errors over 31 labels" in html
    assert html.count("<summary>Chart data</summary>") == 5


def test_a_pie_with_one_slice_and_charts_without_data_still_render():
    report = ComplianceReport(report_id="r", version=1, period_start="a", period_end="b", generated_at="c", sections=[
        Section(name="custom", title="Custom", charts=[
            Chart("pie", "one", ["all"], {"n": [5.0]}), Chart("pie", "none", ["x"], {"n": [None]}),
            Chart("bar", "empty", [], {}), Chart("line", "negative", ["a", "b"], {"d": [-3.0, 2.0]})],
            tables=[Table("wide", [f"c{i}" for i in range(30)], [[None] * 30])])])
    html, page = render(report)
    assert html.count("<svg") == 4 and "no data" in html and "<circle" in html
    assert "<th" in html and page.tags.count("td") >= 30
