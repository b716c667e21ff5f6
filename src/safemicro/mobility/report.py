"""The analyst's displacement report: an HTML page of protected tables and two figures.

Every number on the page comes from released cells (suppressed cells are shown as such,
never estimated). Figures use the report package's style: the flows matrix (origin x
destination, suppressed cells hatched) and the origin's residents seen at home per week.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.patches import Rectangle

from safemicro.atomic import atomic_path
from safemicro.report.plots.style import BLUE, GREY, INK, MUTED, RED, _new_figure, figure_to_svg


def flows_matrix_svg(cells: pl.DataFrame, origin: str, dest: str) -> str | None:
    """Heat map of the released inner cells of an origin x destination crosstab."""
    inner = cells.filter(pl.col(origin).is_not_null() & pl.col(dest).is_not_null())
    if inner.is_empty():
        return None
    rows = sorted(inner[origin].unique().to_list())
    cols = sorted(inner[dest].unique().to_list())
    grid = np.full((len(rows), len(cols)), np.nan)
    hidden = np.zeros_like(grid, dtype=bool)
    for r in inner.iter_rows(named=True):
        i, j = rows.index(r[origin]), cols.index(r[dest])
        if r["status"] == "released":
            grid[i, j] = r["value"]
        else:
            hidden[i, j] = True
    fig = _new_figure(1.2 + 0.55 * len(cols), 1.0 + 0.4 * len(rows))
    ax = fig.add_subplot()
    ax.grid(False)
    shown = np.log10(np.where(np.isnan(grid), np.nan, grid + 1))
    ax.imshow(shown, cmap="Blues", aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            if hidden[i, j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor=GREY, linewidth=0))
            elif not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7, color=INK)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(f"{dest} (follow-up home)")
    ax.set_ylabel(f"{origin} (baseline home)")
    ax.set_title("Home-to-home flows (hatched: suppressed)")
    return figure_to_svg(fig, "mobility-flows", "home-to-home flows")


def weekly_svg(weekly: pl.DataFrame) -> str | None:
    """Residents of the origin seen at home per week (released values; gaps where suppressed)."""
    if weekly.is_empty():
        return None
    fig = _new_figure(6.4, 2.8)
    ax = fig.add_subplot()
    x = np.arange(weekly.height)
    at_home = weekly["at_home"].cast(pl.Float64).to_numpy()
    away = weekly["away"].cast(pl.Float64).to_numpy()
    ax.plot(x, at_home, marker="o", color=BLUE, label="seen in the origin")
    ax.plot(x, away, marker="s", color=RED, label="seen elsewhere (located minus at home)")
    ax.set_xticks(x, weekly["week"].to_list())
    ax.set_ylabel("subscribers", color=MUTED)
    ax.set_title("Origin residents by week")
    ax.legend()
    return figure_to_svg(fig, "mobility-weekly", "origin residents by week")


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.iter_rows():
        tds = []
        for v in row:
            text = (
                "suppressed"
                if v is None
                else (f"{v:,.0f}" if isinstance(v, float) and v > 2 else f"{v:.3g}" if isinstance(v, float) else str(v))
            )
            tds.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_report(
    path: str | Path,
    table: pl.DataFrame,
    flows: pl.DataFrame | None,
    weekly: pl.DataFrame | None,
    *,
    title: str = "Displacement from mobile network data",
    notes: list[str] | None = None,
    flow_dims: tuple[str, str] = ("home0_admin1", "home1_admin1"),
) -> Path:
    """Write the report page atomically; returns its path."""
    css = resources.files("safemicro.report").joinpath("templates/report.css").read_text(encoding="utf-8")
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for n in notes or []:
        parts.append(f"<p>{html.escape(n)}</p>")
    parts += ["<h2>Displaced subscribers by origin</h2>", _table(table)]
    if flows is not None:
        svg = flows_matrix_svg(flows, *flow_dims)
        if svg:
            parts += ["<h2>Home-to-home flows</h2>", svg]
    if weekly is not None:
        svg = weekly_svg(weekly)
        if svg:
            parts += ["<h2>Over time</h2>", svg, _table(weekly)]
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{css}</style></head><body><main>"
        + "\n".join(parts)
        + "</main></body></html>"
    )
    out = Path(path)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return out
