"""The figures' shared style: palette, rc settings, the SVG writer and small formatters."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import polars as pl
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

# A calm palette that prints well in greyscale too.
__all__ = ["INK", "MUTED", "GRID", "BLUE", "TEAL", "RED", "AMBER", "GREY", "figure_to_svg"]

INK = "#1f2933"
MUTED = "#52606d"
GRID = "#d9e2ec"
BLUE = "#2f6f9f"
TEAL = "#3c8d8a"
RED = "#b83232"
AMBER = "#c08a1e"
GREY = "#9aa5b1"

_RC = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial", "Liberation Sans"],
    "font.size": 9,
    "axes.edgecolor": GREY,
    "axes.labelcolor": INK,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "grid.linewidth": 0.6,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "legend.fontsize": 8,
}


def _new_figure(width: float = 6.4, height: float = 3.2) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg backend, without touching matplotlib's global state
    return fig


def _risk_axis(ax, lo: float, hi: float, *, rule: float | None, target: float | None) -> None:
    """The individual-risk x-axis (log scale, ``lo`` to ``hi``), with the high-risk ``rule``
    (dashed red) and the risk ``target`` (amber) marked where given."""
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_formatter(FuncFormatter(_risk_tick))
    ax.set_xlabel("individual re-identification risk (log scale)")
    if rule is not None:
        ax.axvline(rule, color=RED, linestyle="--", linewidth=1.2, label=f"{rule:g} rule")
    if target and target > 0:
        ax.axvline(target, color=AMBER, linewidth=1.4, label=f"target {target:g}")


def _finish(
    fig: Figure,
    ax,
    title: str,
    name: str,
    description: str,
    *,
    xlabel: str | None = None,
    ylabel: str | None = None,
    quiet_grid: str = "x",
    **legend,
) -> str:
    """The figures' common ending, as SVG: axis labels, the title at the left, the legend
    beside the axes (never over the data; ``legend``: extra ``ax.legend`` arguments) and no
    grid lines along ``quiet_grid``."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **legend)
    ax.grid(axis=quiet_grid, visible=False)
    return figure_to_svg(fig, name, description)


_SVG_OPEN = re.compile(r"<svg\b[^>]*>", re.S)


def figure_to_svg(fig: Figure, name: str, description: str | None = None) -> str:
    """Serialise *fig* as an inline ``<svg>`` element (no XML prolog, no DOCTYPE).

    The fixed width/height of the root element are dropped (the viewBox stays) so the
    figure scales with the page; *name* salts the element ids so that several figures
    inlined in one page never share an id.
    """
    buf = io.StringIO()
    with rc_context({"svg.hashsalt": f"safemicro-{name}", **_RC}):
        fig.savefig(
            buf,
            format="svg",
            metadata={"Date": None, "Creator": None, "Title": description or name},
        )
    svg = buf.getvalue()
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    match = _SVG_OPEN.search(svg)
    if match:
        tag = match.group(0)
        new_tag = re.sub(r'\s(width|height)="[^"]*"', "", tag)
        extra = f' class="plot" role="img" data-plot="{name}"'
        if description:
            extra += ' aria-label="' + _attr(description) + '"'
        new_tag = new_tag[:-1] + extra + ">"
        svg = svg[: match.start()] + new_tag + svg[match.end() :]
    return _prefix_ids(svg, name).strip()


_ID = re.compile(r'(\sid=")([^"]+)(")')
_REF = re.compile(r'(url\(#|href="#)([^)"]+)')


def _prefix_ids(svg: str, prefix: str) -> str:
    """Prefix every element id (and every in-SVG reference to one) with *prefix*.

    matplotlib numbers its element ids per figure (``figure_1``, ``axes_1`` …), so two
    figures inlined in one HTML page would otherwise share ids.
    """
    ids = set(m.group(2) for m in _ID.finditer(svg))
    svg = _ID.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}{m.group(3)}", svg)
    return _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(0), svg)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: object) -> str:
    """Text for a matplotlib label: no mathtext interpretation of ``$``."""
    return str(text).replace("$", r"\$")


def _column(records: pl.DataFrame | None, name: str) -> np.ndarray | None:
    if records is None or not isinstance(records, pl.DataFrame) or name not in records.columns:
        return None
    try:
        values = records.get_column(name).cast(pl.Float64, strict=False).drop_nulls().to_numpy()
    except Exception:  # noqa: BLE001 - an odd column must not break the report
        return None
    values = values[np.isfinite(values)]
    return values if values.size else None


def _label_bars(ax, xs, heights, texts) -> None:
    """Write each text just above its bar (centred at ``xs``, at ``heights``)."""
    for xi, h, text in zip(xs, heights, texts):
        ax.annotate(
            text,
            (xi, h),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=7.5,
            color=INK,
        )


def _count_fmt(x: float, _pos: object = None) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.1f}"


def _risk_tick(x: float, _pos: object = None) -> str:
    if x <= 0:
        return "0"
    exp = math.log10(x)
    if abs(exp - round(exp)) < 1e-9:
        e = int(round(exp))
        return f"{x:.{max(0, -e)}f}" if e >= -6 else f"1e{e}"
    return ""
