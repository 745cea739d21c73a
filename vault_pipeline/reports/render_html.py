"""The HTML form of a compliance report: one self-contained page an auditor can open offline, archive and print.

Everything the page needs is inside it: the CSS is inline and the charts are SVG drawn here
from each chart's data, so the document loads nothing from anywhere (a report handed to an
auditor must look the same in ten years and must not call home when opened). A
Content-Security-Policy meta tag forbids scripts and remote loads as a second line of defence.
Values come from provider records, so the Jinja2 template autoescapes everything and the SVG
builder escapes every label itself. Sections are rendered generically, in the report's order:
heading, key figures, tables, charts (each with a text alternative: a description and its data
as a table), notes; report id, version, period and digest are in the header and the footer.
``display_value`` and ``sections_to_render`` are shared with the PDF renderer.
"""

from __future__ import annotations

import json
import math
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from vault_pipeline.core.report_model import Chart, ComplianceReport, Section, Table

# Okabe-Ito: distinguishable with the common colour-vision deficiencies and in greyscale print.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
OTHER_COLOUR = "#999999"
MAX_PIE_SLICES = len(PALETTE)  # more slices are unreadable: the rest are summed into "other" (the data table has them all)
MAX_AXIS_LABELS = 12  # a month of days or hours: every n-th label is shown, all points are drawn
NONE_TEXT = "—"


def display_value(value: Any) -> str:
    """A plain value as a reader sees it: thousands separators, no float noise, a dash for nothing."""
    if value is None:
        return NONE_TEXT
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def is_numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_long_token(value: Any) -> bool:
    """Text with a run too long to wrap at spaces (hashes, object keys, log ids): it may break anywhere."""
    return isinstance(value, str) and len(value) > 24 and max(map(len, value.split())) > 24


def numeric_columns(table: Table) -> set[int]:
    """Columns whose every value is a number (gaps allowed): right-aligned, header included."""
    return {i for i in range(len(table.columns))
            if any(row[i] is not None for row in table.rows)
            and all(row[i] is None or is_numeric(row[i]) for row in table.rows)}


def sections_to_render(report: ComplianceReport) -> list[Section]:
    """The report's sections, plus the top-level lineage and audit records when no section shows them."""
    sections = list(report.sections)
    present = {s.name for s in sections}
    for name, title, records in (("data_lineage", "Data lineage", report.data_lineage),
                                 ("audit_trail", "Audit trail", report.audit_trail)):
        if records and name not in present:
            columns: list[str] = []
            for record in records:
                columns.extend(k for k in record if k not in columns)
            sections.append(Section(name=name, title=title,
                                    tables=[Table("records", columns, [[r.get(c) for c in columns] for r in records])]))
    return sections


def compact_number(value: float) -> str:
    """An axis tick: 1.2M, 300k, 0.97."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def nice_range(values: list[float]) -> tuple[float, float, float]:
    """Axis bounds and tick step covering the values, starting at zero unless values go below it."""
    low, high = min([0.0, *values]), max([0.0, *values])
    if high == low:
        high = low + 1.0
    raw = (high - low) / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def _short(label: str, limit: int = 18) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _legend(names: list[str], x: float, y: float) -> list[str]:
    parts = []
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x:.1f}" y="{y + i * 16:.1f}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14:.1f}" y="{y + i * 16 + 9:.1f}">{escape(_short(name, 28))}</text>')
    return parts


def _axes_chart(chart: Chart, width: int, height: int) -> list[str]:
    """Bar and line charts share axes: value ticks on the left, category labels underneath."""
    names = list(chart.series)
    values = [v for vs in chart.series.values() for v in vs if v is not None]
    left, right, top, bottom = 64, (150 if len(names) > 1 else 24), 12, 84
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high, step = nice_range(values or [0.0])

    def y_of(v: float) -> float:
        return top + plot_h - (v - low) / (high - low) * plot_h

    parts = []
    tick = low
    while tick <= high + step / 2:
        y = y_of(tick)
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{compact_number(tick)}</text>')
        tick += step
    n = max(len(chart.labels), 1)
    slot = plot_w / n
    every = math.ceil(n / MAX_AXIS_LABELS)
    for i, label in enumerate(chart.labels):
        if i % every == 0:
            x = left + slot * (i + 0.5)
            parts.append(f'<text class="tick" transform="translate({x:.1f},{top + plot_h + 10}) rotate(30)">'
                         f'{escape(_short(label))}</text>')
    if chart.kind == "bar":
        bar_w = slot * 0.8 / max(len(names), 1)
        for s, name in enumerate(names):
            colour = PALETTE[s % len(PALETTE)]
            for i, v in enumerate(chart.series[name]):
                if v is None:
                    continue
                x = left + slot * (i + 0.1) + bar_w * s
                y0, y1 = sorted((y_of(0.0), y_of(v)))
                parts.append(f'<rect x="{x:.1f}" y="{y0:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
                             f'height="{max(y1 - y0, 0.5):.1f}" fill="{colour}"><title>'
                             f'{escape(chart.labels[i])}, {escape(name)}: {escape(display_value(v))}</title></rect>')
    else:
        for s, name in enumerate(names):
            colour = PALETTE[s % len(PALETTE)]
            run: list[str] = []  # a None value breaks the line: a gap in the data stays visible
            for i, v in enumerate([*chart.series[name], None]):
                if v is None:
                    if run:
                        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(run)}"/>')
                    run = []
                    continue
                x, y = left + slot * (i + 0.5), y_of(v)
                run.append(f"{x:.1f},{y:.1f}")
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"><title>'
                             f'{escape(chart.labels[i])}, {escape(name)}: {escape(display_value(v))}</title></circle>')
    parts.append(f'<line class="axis" x1="{left}" y1="{y_of(0.0):.1f}" x2="{left + plot_w}" y2="{y_of(0.0):.1f}"/>')
    if len(names) > 1:
        parts.extend(_legend(names, width - right + 12, top))
    return parts


def pie_slices(chart: Chart) -> list[tuple[str, float]]:
    """The pie's slices from its first series: negatives and gaps count as nothing, the tail becomes "other"."""
    values = next(iter(chart.series.values()), [])
    slices = sorted(((label, max(v or 0.0, 0.0)) for label, v in zip(chart.labels, values)), key=lambda s: -s[1])
    slices = [s for s in slices if s[1] > 0]
    if len(slices) > MAX_PIE_SLICES:
        slices = slices[: MAX_PIE_SLICES - 1] + [("other", sum(v for _, v in slices[MAX_PIE_SLICES - 1:]))]
    return slices


def _pie_chart(chart: Chart, width: int, height: int) -> list[str]:
    slices = pie_slices(chart)
    total = sum(v for _, v in slices)
    if not total:
        return [f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text>']
    cx, cy, r = height / 2, height / 2, height / 2 - 16
    parts, angle = [], -math.pi / 2
    for i, (label, v) in enumerate(slices):
        colour = OTHER_COLOUR if label == "other" else PALETTE[i % len(PALETTE)]
        share = v / total
        tip = f"<title>{escape(label)}: {escape(display_value(v))} ({share:.1%})</title>"
        if share >= 0.9999:
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="{colour}">{tip}</circle>')
        else:
            end = angle + share * 2 * math.pi
            x0, y0 = cx + r * math.cos(angle), cy + r * math.sin(angle)
            x1, y1 = cx + r * math.cos(end), cy + r * math.sin(end)
            large = 1 if share > 0.5 else 0
            parts.append(f'<path d="M{cx},{cy} L{x0:.2f},{y0:.2f} A{r},{r} 0 {large} 1 {x1:.2f},{y1:.2f} Z" '
                         f'fill="{colour}" stroke="#fff" stroke-width="1">{tip}</path>')
            angle = end
        parts.append(f'<rect x="{height + 10}" y="{16 + i * 20}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{height + 28}" y="{26 + i * 20}">{escape(_short(label, 40))} ({share:.1%})</text>')
    return parts


def chart_description(chart: Chart) -> str:
    """A sentence saying what the chart shows, for readers who cannot see it."""
    names = list(chart.series)
    if chart.kind == "pie":
        slices = pie_slices(chart)
        total = sum(v for _, v in slices) or 1.0
        top = ", ".join(f"{label} {v / total:.1%}" for label, v in slices[:3])
        return f"Pie chart of {names[0] if names else 'no series'} over {len(chart.labels)} categories; largest: {top or 'none'}."
    kind = "Bar chart" if chart.kind == "bar" else "Line chart"
    text = f"{kind} of {', '.join(names) or 'no series'} over {len(chart.labels)} labels"
    for name in names[:3]:
        points = [(label, v) for label, v in zip(chart.labels, chart.series[name]) if v is not None]
        if points:
            label, v = max(points, key=lambda p: p[1])
            text += f"; {name} highest at {label} ({display_value(v)})"
    return text + "."


def chart_svg(chart: Chart, chart_id: str) -> Markup:
    width, height = 680, 300
    body = _pie_chart(chart, width, height) if chart.kind == "pie" else _axes_chart(chart, width, height)
    # No xmlns attribute: inline SVG in HTML5 does not need one, and the document stays free of any URL.
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
                  f'aria-labelledby="{chart_id}-t {chart_id}-d"><title id="{chart_id}-t">{escape(chart.title)}</title>'
                  f'<desc id="{chart_id}-d">{escape(chart_description(chart))}</desc>{"".join(body)}</svg>')


_ENV = Environment(loader=PackageLoader("vault_pipeline.reports", "templates"), autoescape=True,
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["value"] = display_value
_ENV.tests.update(numeric=is_numeric, long_token=is_long_token)
_ENV.globals.update(chart_svg=chart_svg, numeric_columns=numeric_columns)


def render_html(report: ComplianceReport, digest: str) -> bytes:
    """The report as one self-contained UTF-8 HTML document."""
    template = _ENV.get_template("report.html")
    return template.render(report=report, digest=digest, sections=sections_to_render(report)).encode("utf-8")
