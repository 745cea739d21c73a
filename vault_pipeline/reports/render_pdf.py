"""The PDF form of a compliance report: the paginated document an auditor files, prints and signs off.

Built with reportlab's platypus: a title page (report id, version, period, generation time,
digest, the sources read, the contents), then every section in the report's order with its
heading (also a PDF bookmark), key figures, tables, charts drawn as vector graphics from the
chart data (bar, line, pie; each followed by a sentence describing it, which is also the text
a search or a screen reader finds) and notes. Every page's footer carries the report's digest
and "page N of M", so a single printed page still names the report it belongs to. Tables repeat
their header row on each page, split across pages and fit the page width: a cell too wide for
its column wraps, long hashes and object keys included. The output is deterministic
(``invariant=1``): the same report gives the same bytes, so a stored PDF can be re-derived and
compared. Text is set in DejaVu Sans when the system has it and in reportlab's bundled Vera
otherwise; a character the font lacks is shown as U+FFFD (or "?") and the title page says so,
pointing to the HTML and CSV forms, which keep every character.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.charts.piecharts import Pie
from reportlab.graphics.shapes import Drawing, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Frame,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from vault_pipeline.core.report_model import Chart, ComplianceReport, Section
from vault_pipeline.core.report_model import Table as ReportTable
from vault_pipeline.reports.render_html import (
    MAX_AXIS_LABELS,
    OTHER_COLOUR,
    PALETTE,
    chart_description,
    compact_number,
    display_value,
    nice_range,
    numeric_columns,
    pie_slices,
    sections_to_render,
)

PAGE_W, PAGE_H = A4
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 16 * mm, 18 * mm, 20 * mm
FRAME_W = PAGE_W - 2 * MARGIN_X
CELL_PAD = 3
CELL_PAD_V = 4  # top plus bottom padding of a table cell
WORD_LIMIT = 100  # points: a longer word (a hash, an object key) wraps inside itself instead of widening its column
MAX_CELL_LINES = 40
INK, MUTED, RULE, BAND, ACCENT = (colors.HexColor(c) for c in ("#1b1f24", "#57606a", "#d0d7de", "#f1f4f7", "#0b4f8a"))

# DejaVu covers Latin, Greek, Cyrillic, Hebrew, Arabic and more; Vera (shipped inside reportlab)
# covers Latin only but is always there, so the renderer never depends on a system font.
_SYSTEM_FONTS = Path("/usr/share/fonts/truetype/dejavu")
_BUNDLED_FONTS = Path(pdfmetrics.__file__).resolve().parent.parent / "fonts"


@dataclass(frozen=True)
class Fonts:
    regular: str
    bold: str
    mono: str
    charmaps: dict[str, frozenset[int]] = field(repr=False)


@lru_cache(maxsize=1)
def fonts() -> Fonts:
    """Register the report fonts once per process: DejaVu when present, reportlab's Vera otherwise."""
    choices = [(_SYSTEM_FONTS, {"VaultSans": "DejaVuSans.ttf", "VaultSans-Bold": "DejaVuSans-Bold.ttf",
                                "VaultMono": "DejaVuSansMono.ttf"}),
               (_BUNDLED_FONTS, {"VaultSans": "Vera.ttf", "VaultSans-Bold": "VeraBd.ttf", "VaultMono": "Vera.ttf"})]
    for folder, files in choices:
        if all((folder / f).is_file() for f in files.values()):
            charmaps = {}
            for name, file in files.items():
                font = TTFont(name, str(folder / file))
                pdfmetrics.registerFont(font)
                charmaps[name] = frozenset(font.face.charToGlyph)
            pdfmetrics.registerFontFamily("VaultSans", normal="VaultSans", bold="VaultSans-Bold",
                                          italic="VaultSans", boldItalic="VaultSans-Bold")
            return Fonts("VaultSans", "VaultSans-Bold", "VaultMono", charmaps)
    raise RuntimeError(f"no report font found in {_SYSTEM_FONTS} nor in reportlab's {_BUNDLED_FONTS}")


class _Text:
    """Makes text safe for one font, and remembers whether anything had to be replaced."""

    def __init__(self, f: Fonts) -> None:
        self.fonts = f
        self.replaced = False
        self.marker = "\ufffd" if 0xFFFD in f.charmaps[f.regular] else "?"

    def clean(self, text: str, font: str | None = None) -> str:
        if text.isascii() and text.isprintable():
            return text
        charmap = self.fonts.charmaps[font or self.fonts.regular]
        out = []
        for ch in text:
            if ch in "\n\t" or (ch.isprintable() and ord(ch) in charmap):
                out.append(ch)
            elif ch.isspace():
                out.append(" ")
            else:
                out.append(self.marker)
                self.replaced = True
        return "".join(out)

    def markup(self, value: Any, font: str | None = None) -> str:
        """A value as Paragraph markup: displayed, cleaned for the font, XML-escaped, line breaks kept."""
        return escape(self.clean(display_value(value), font)).replace("\n", "<br/>")


def _styles(f: Fonts) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=f.regular, fontSize=9, leading=12, textColor=INK)
    return {
        "body": base,
        "title": ParagraphStyle("title", base, fontName=f.bold, fontSize=22, leading=28, textColor=ACCENT, spaceAfter=12),
        "h1": ParagraphStyle("h1", base, fontName=f.bold, fontSize=15, leading=19, textColor=ACCENT,
                             spaceBefore=6, spaceAfter=8, keepWithNext=1),
        "h2": ParagraphStyle("h2", base, fontName=f.bold, fontSize=10.5, leading=14, spaceBefore=8, spaceAfter=4,
                             keepWithNext=1),
        "note": ParagraphStyle("note", base, textColor=MUTED, fontSize=8.5, leading=11, leftIndent=8, spaceAfter=2),
        "caption": ParagraphStyle("caption", base, textColor=MUTED, fontSize=8, leading=10, spaceAfter=10),
        "mono": ParagraphStyle("mono", base, fontName=f.mono, fontSize=8.5, leading=11),
        "figure_label": ParagraphStyle("figure_label", base, textColor=MUTED, fontSize=7.5, leading=9),
        "figure_value": ParagraphStyle("figure_value", base, fontName=f.bold, fontSize=12, leading=15),
    }


def _column_widths(natural: list[float], minimum: list[float], available: float) -> list[float]:
    """Share the page width as a browser would: every column its minimum, the rest by how much more each wants."""
    if sum(natural) <= available:
        return [w * available / sum(natural) for w in natural]
    if sum(minimum) >= available:
        return [m * available / sum(minimum) for m in minimum]
    wants = [n - m for n, m in zip(natural, minimum)]
    spare = available - sum(minimum)
    return [m + spare * w / sum(wants) for m, w in zip(minimum, wants)]


class _Measure:
    """Widths and line wrapping for one font and size, from cached per-character widths.

    Table cells are wrapped here into plain multi-line strings with known row heights: reportlab
    then neither builds a Paragraph per cell nor re-measures rows at every page split, which is
    what keeps a 5,000-row table to a fraction of a second per page instead of seconds.
    """

    def __init__(self, font: str, size: float) -> None:
        self.font, self.size = font, size
        self._widths: dict[str, float] = {}

    def width(self, text: str) -> float:
        widths = self._widths
        for ch in text:
            if ch not in widths:
                widths[ch] = pdfmetrics.stringWidth(ch, self.font, self.size)
        return sum(map(widths.__getitem__, text))

    def wrap(self, text: str, limit: float) -> list[str]:
        """Greedy word wrap; a word wider than the limit (a hash, an object key) breaks between characters."""
        lines: list[str] = []
        space = self.width(" ")
        for paragraph in text.split("\n"):
            line, used = "", 0.0
            for word in paragraph.split(" "):
                w = self.width(word)
                if line and used + space + w <= limit:
                    line, used = f"{line} {word}", used + space + w
                    continue
                if line:
                    lines.append(line)
                if w <= limit:
                    line, used = word, w
                    continue
                line, used = "", 0.0
                for ch in word:
                    cw = self._widths[ch]
                    if line and used + cw > limit:
                        lines.append(line)
                        line, used = "", 0.0
                    line, used = line + ch, used + cw
            lines.append(line)
        if len(lines) > MAX_CELL_LINES:  # a row taller than a page cannot be laid out: cut, and say so
            lines = lines[: MAX_CELL_LINES - 1] + ["… (cut: the CSV and HTML forms hold the full value)"]
        return lines


def _table(table: ReportTable, text: _Text) -> Table:
    f = text.fonts
    n = max(len(table.columns), 1)
    size = 8 if n <= 6 else 7 if n <= 10 else 6  # many columns: smaller type before anything wraps
    leading = size + 2
    regular, bold = _Measure(f.regular, size), _Measure(f.bold, size)
    nums = numeric_columns(table)
    header_texts = [text.clean(str(c), f.bold) for c in table.columns]
    body_texts = [[text.clean(display_value(v)) for v in row] for row in table.rows]
    # A column's natural width is its widest line among most rows (the 95th percentile, so one outlier
    # wraps instead of widening the column for every row); its minimum is its widest word, so dates
    # and names do not break, except words beyond WORD_LIMIT (hashes, keys), which may break anywhere.
    # Measured on up to 400 rows: enough to see the shape.
    natural, minimum = [], []
    for i in range(len(table.columns)):
        seen = sorted(max(map(regular.width, row[i].split("\n"))) for row in body_texts[:400])
        words = [regular.width(w) for row in body_texts[:400] for w in row[i].split()]
        words += [bold.width(w) for w in header_texts[i].split()]
        widest_word = max((w for w in words if w <= WORD_LIMIT), default=0.0)
        typical = seen[int(0.95 * (len(seen) - 1))] if seen else 0.0
        minimum.append(max(widest_word, 24.0) + 2 * CELL_PAD + 1)
        natural.append(max(bold.width(header_texts[i]), typical) + 2 * CELL_PAD + 1)
    natural = [max(nat, low) for nat, low in zip(natural, minimum)]
    widths = _column_widths(natural, minimum, FRAME_W) if table.columns else [FRAME_W]
    limits = [w - 2 * CELL_PAD for w in widths]

    data, heights = [], []
    for measure, texts in [(bold, header_texts or [""])] + [(regular, row) for row in body_texts]:
        cells = [measure.wrap(t, limits[i]) for i, t in enumerate(texts)]
        data.append(["\n".join(c) for c in cells])
        heights.append(max(map(len, cells)) * leading + CELL_PAD_V)
    commands: list[tuple] = [
        ("FONT", (0, 0), (-1, 0), f.bold, size, leading), ("FONT", (0, 1), (-1, -1), f.regular, size, leading),
        ("TEXTCOLOR", (0, 0), (-1, -1), INK), ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PAD), ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), CELL_PAD_V - 1),
        ("BACKGROUND", (0, 0), (-1, 0), BAND), ("LINEBELOW", (0, 0), (-1, 0), 0.8, MUTED),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, RULE),
    ]
    commands += [("ALIGN", (i, 0), (i, -1), "RIGHT") for i in nums]
    if not table.rows:  # the header stays, so what was looked for is still visible
        data.append(["no rows"] + [""] * (len(data[0]) - 1))
        heights.append(leading + CELL_PAD_V)
        commands += [("SPAN", (0, 1), (-1, 1)), ("TEXTCOLOR", (0, 1), (-1, 1), MUTED)]
    return Table(data, colWidths=widths, rowHeights=heights, repeatRows=1, style=TableStyle(commands), hAlign="LEFT")


def _key_figures(summary: dict[str, Any], text: _Text, styles: dict[str, ParagraphStyle]) -> Table:
    per_row = 3
    cells = [[Paragraph(escape(text.clean(str(k))), styles["figure_label"]),
              Paragraph(text.markup(v, text.fonts.bold), styles["figure_value"])] for k, v in summary.items()]
    cells += [""] * (-len(cells) % per_row)
    rows = [cells[i:i + per_row] for i in range(0, len(cells), per_row)]
    width = FRAME_W / per_row
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 6),
             ("TOPPADDING", (0, 0), (-1, -1), 4), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]
    for r, row in enumerate(rows):
        for c, content in enumerate(row):
            if content:
                style += [("BOX", (c, r), (c, r), 0.5, RULE), ("BACKGROUND", (c, r), (c, r), BAND)]
    # Each figure is one cell holding its label over its value.
    return Table([[Table([[c[0]], [c[1]]], colWidths=[width - 14], style=[("LEFTPADDING", (0, 0), (-1, -1), 0)])
                   if c else "" for c in row] for row in rows],
                 colWidths=[width] * per_row, style=TableStyle(style), hAlign="LEFT", spaceAfter=8)


def _axis_labels(labels: list[str], text: _Text) -> list[str]:
    # Fewer labels than the HTML form: a printed chart is narrower than a screen.
    every = math.ceil(max(len(labels), 1) / (MAX_AXIS_LABELS * 2 // 3))
    return [text.clean(label if len(label) <= 18 else label[:17] + "…") if i % every == 0 else ""
            for i, label in enumerate(labels)]


def _legend(pairs: list[tuple[colors.Color, str]], x: float, y: float, font: str) -> Legend:
    legend = Legend()
    legend.x, legend.y = x, y
    legend.alignment = "right"
    legend.fontName, legend.fontSize = font, 7.5
    legend.boxAnchor = "nw"
    legend.columnMaximum = 12
    legend.dx = legend.dy = 7
    legend.deltay = 11
    legend.strokeWidth = 0
    legend.colorNamePairs = pairs
    return legend


def _chart(chart: Chart, text: _Text) -> Drawing:
    f = text.fonts
    height = 190
    drawing = Drawing(FRAME_W, height)
    names = [text.clean(n) for n in chart.series]
    colours = [colors.HexColor(PALETTE[i % len(PALETTE)]) for i in range(max(len(names), 1))]
    if chart.kind == "pie":
        slices = pie_slices(chart)
        total = sum(v for _, v in slices)
        if not total:
            drawing.add(String(FRAME_W / 2, height / 2, "no data", fontName=f.regular, fontSize=9, textAnchor="middle"))
            return drawing
        pie = Pie()
        pie.x, pie.y, pie.width, pie.height = 10, 10, height - 20, height - 20
        pie.data = [v for _, v in slices]
        pie.labels = None
        pie.slices.strokeColor, pie.slices.strokeWidth = colors.white, 0.8
        pairs = []
        for i, (label, v) in enumerate(slices):
            colour = colors.HexColor(OTHER_COLOUR if label == "other" else PALETTE[i % len(PALETTE)])
            pie.slices[i].fillColor = colour
            short = label if len(label) <= 40 else label[:39] + "…"
            pairs.append((colour, f"{text.clean(short)} ({v / total:.1%})"))
        drawing.add(pie)
        drawing.add(_legend(pairs, height + 10, height - 10, f.regular))
        return drawing
    values = [v for vs in chart.series.values() for v in vs if v is not None]
    low, high, step = nice_range(values or [0.0])
    plot = VerticalBarChart() if chart.kind == "bar" else HorizontalLineChart()
    legend_w = 130 if len(names) > 1 else 0
    plot.x, plot.y = 46, 52
    plot.width, plot.height = FRAME_W - plot.x - legend_w - 10, height - plot.y - 8
    plot.data = [list(vs) for vs in chart.series.values()] or [[]]
    plot.categoryAxis.categoryNames = _axis_labels(chart.labels, text)
    labels = plot.categoryAxis.labels
    labels.fontName, labels.fontSize, labels.angle, labels.boxAnchor, labels.dy = f.regular, 7, 30, "ne", -2
    plot.valueAxis.valueMin, plot.valueAxis.valueMax, plot.valueAxis.valueStep = low, high, step
    plot.valueAxis.labelTextFormat = compact_number
    plot.valueAxis.labels.fontName = f.regular
    plot.valueAxis.labels.fontSize = 7
    plot.valueAxis.visibleGrid, plot.valueAxis.gridStrokeColor = 1, colors.HexColor("#e6e9ec")
    for i in range(len(names)):
        if chart.kind == "bar":
            plot.bars[i].fillColor, plot.bars[i].strokeColor = colours[i], None
        else:
            plot.lines[i].strokeColor, plot.lines[i].strokeWidth = colours[i], 1.6
            if len(chart.labels) <= 60:
                plot.lines[i].symbol = makeMarker("FilledCircle", size=3, fillColor=colours[i], strokeColor=colours[i])
    if chart.kind == "bar":
        plot.groupSpacing, plot.barSpacing = 6, 1
    drawing.add(plot)
    if len(names) > 1:
        drawing.add(_legend(list(zip(colours, names)), FRAME_W - legend_w + 4, height - 6, f.regular))
    return drawing


def _section(section: Section, text: _Text, styles: dict[str, ParagraphStyle]) -> list[Any]:
    heading = Paragraph(escape(text.clean(section.title, text.fonts.bold)) +
                        f' <font name="{text.fonts.mono}" size="8" color="#57606a">{escape(text.clean(section.name))}</font>',
                        styles["h1"])
    heading._bookmark = text.clean(section.title)  # picked up by afterFlowable for the PDF outline
    story: list[Any] = [CondPageBreak(120), heading]
    if section.summary:
        story.append(_key_figures(section.summary, text, styles))
    for table in section.tables:
        story += [Paragraph(escape(text.clean(table.title, text.fonts.bold)), styles["h2"]),
                  _table(table, text), Spacer(0, 6)]
    for chart in section.charts:
        story.append(KeepTogether([Paragraph(escape(text.clean(chart.title, text.fonts.bold)), styles["h2"]),
                                   _chart(chart, text),
                                   Paragraph(escape(text.clean(chart_description(chart))), styles["caption"])]))
    story += [Paragraph("• " + escape(text.clean(note)), styles["note"]) for note in section.notes]
    return story


def _title_page(report: ComplianceReport, digest: str, sections: list[Section], text: _Text,
                styles: dict[str, ParagraphStyle]) -> list[Any]:
    body, mono = styles["body"], styles["mono"]
    rows = [("Report", Paragraph(escape(text.clean(report.report_id)), mono)),
            ("Version", Paragraph(str(report.version), body)),
            ("Period start", Paragraph(escape(text.clean(report.period_start)), body)),
            ("Period end", Paragraph(escape(text.clean(report.period_end)), body)),
            ("Generated at", Paragraph(escape(text.clean(report.generated_at)), body)),
            ("Digest", Paragraph(escape(text.clean(digest)), mono))]
    rows += [(f"Source: {text.clean(str(k))}", Paragraph(text.markup(v), body)) for k, v in report.sources.items()]
    meta = Table([[Paragraph(escape(k), styles["figure_label"]), v] for k, v in rows], colWidths=[42 * mm, FRAME_W - 42 * mm],
                 style=[("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
                        ("LEFTPADDING", (0, 0), (-1, -1), 0)], hAlign="LEFT")
    contents = [Paragraph(f"{i}. {escape(text.clean(s.title))}", body) for i, s in enumerate(sections, 1)]
    return [Spacer(0, 30 * mm), Paragraph("Compliance report", styles["title"]), meta, Spacer(0, 10 * mm),
            Paragraph("Contents", styles["h2"]), *contents]


def _canvas_class(report: ComplianceReport, digest: str, text: _Text) -> type[Canvas]:
    f = text.fonts
    header = text.clean(f"Compliance report {report.report_id} v{report.version} · "
                        f"{report.period_start} to {report.period_end}")

    class NumberedCanvas(Canvas):
        """Holds every page back until the end, so each footer can say "page N of M"."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, 1):
                self.__dict__.update(state)
                self._decorate(number, total)
                super().showPage()
            super().save()

        def _decorate(self, number: int, total: int) -> None:
            self.saveState()
            self.setStrokeColor(RULE)
            self.setLineWidth(0.5)
            self.line(MARGIN_X, MARGIN_BOTTOM - 6 * mm, PAGE_W - MARGIN_X, MARGIN_BOTTOM - 6 * mm)
            self.setFillColor(MUTED)
            self.setFont(f.mono, 6.5)
            self.drawString(MARGIN_X, MARGIN_BOTTOM - 10 * mm, f"digest {digest}")
            self.setFont(f.regular, 7.5)
            self.drawRightString(PAGE_W - MARGIN_X, MARGIN_BOTTOM - 10 * mm, f"page {number} of {total}")
            if number > 1:
                self.drawString(MARGIN_X, PAGE_H - MARGIN_TOP + 5 * mm, header)
            self.restoreState()

    return NumberedCanvas


class _Document(BaseDocTemplate):
    def afterFlowable(self, flowable: Any) -> None:
        title = getattr(flowable, "_bookmark", None)
        if title:
            key = f"s{id(flowable)}"
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(title, key, level=0)


def render_pdf(report: ComplianceReport, digest: str) -> bytes:
    """The report as a paginated, deterministic PDF (A4)."""
    f = fonts()
    text = _Text(f)
    digest = text.clean(digest)
    styles = _styles(f)
    sections = sections_to_render(report)
    story = _title_page(report, digest, sections, text, styles)
    title_end = len(story)
    story.append(PageBreak())
    for section in sections:
        story += _section(section, text, styles)
    if text.replaced:  # known only once every value went through the font check
        story.insert(title_end, Paragraph(
            f"Some characters are not in this document's font and are shown as {text.marker}. The HTML and CSV "
            "forms of this report carry every character exactly.", ParagraphStyle("warn", styles["note"], spaceBefore=10)))
    buffer = io.BytesIO()
    doc = _Document(buffer, pagesize=A4, leftMargin=MARGIN_X, rightMargin=MARGIN_X, topMargin=MARGIN_TOP,
                    bottomMargin=MARGIN_BOTTOM, invariant=1, title=f"Compliance report {report.report_id}",
                    author="vault_pipeline", subject=f"period {report.period_start} to {report.period_end}",
                    keywords=digest, creator="vault_pipeline")
    doc.addPageTemplates([PageTemplate("page", [Frame(MARGIN_X, MARGIN_BOTTOM, FRAME_W, PAGE_H - MARGIN_TOP - MARGIN_BOTTOM,
                                                      id="body", leftPadding=0, rightPadding=0)])])
    doc.build(story, canvasmaker=_canvas_class(report, digest, text))
    return buffer.getvalue()
