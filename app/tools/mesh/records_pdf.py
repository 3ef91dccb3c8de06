"""PDF and PNG pages for the print record, verification reports and printer QA trends.

Plain matplotlib (PDF and Agg backends, no GUI): a title, a few lines of facts, a table, a
footer (hashes and signatures). The caller decides what goes in; nothing identifying is added.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import FigureCanvasPdf
from matplotlib.figure import Figure

A4 = (8.27, 11.69)


def table_pdf(
    title: str,
    lines: Sequence[str],
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    footer: Sequence[str] = (),
    *,
    keywords: str = "",
) -> bytes:
    """One A4 page: ``title``, fact ``lines``, a table of ``rows`` under ``header``, ``footer``."""
    figure = Figure(figsize=A4)
    FigureCanvasPdf(figure)
    figure.text(0.06, 0.96, title, fontsize=15, weight="bold", va="top")
    for i, line in enumerate(lines):
        figure.text(0.06, 0.925 - 0.018 * i, line, fontsize=8.5, va="top")
    top = 0.9 - 0.018 * len(lines)
    axes = figure.add_axes((0.04, 0.12, 0.92, max(top - 0.14, 0.1)))
    axes.axis("off")
    if rows:
        table = axes.table(
            cellText=[[_cut(c) for c in row] for row in rows],
            colLabels=list(header),
            loc="upper center",
            cellLoc="left",
        )
        table.auto_set_font_size(False)
        table.set_fontsize(6.5)
        table.scale(1.0, 1.25)
    for i, line in enumerate(footer):
        figure.text(0.06, 0.09 - 0.014 * i, line, fontsize=6, family="monospace", va="top")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="pdf", metadata={"Title": title, "Keywords": keywords})
    return buffer.getvalue()


def _cut(text: str, limit: int = 70) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trend_png(
    title: str, times: Sequence[str], means: Sequence[float], p95s: Sequence[float], limit: float
) -> bytes:
    """Mean and p95 deviation per print over time, with the printer's limit."""
    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    x = list(range(len(times)))
    axes.plot(x, p95s, "o-", label="p95 |deviation| (mm)")
    axes.plot(x, means, "s--", label="mean deviation (mm)")
    axes.axhline(limit, color="red", linewidth=1, label=f"limit {limit:g} mm")
    axes.set_xticks(x, [t[:10] for t in times], rotation=45, ha="right", fontsize=7)
    axes.set_title(title)
    axes.set_ylabel("mm")
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
