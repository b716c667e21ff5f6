"""Matplotlib figures for the HTML reports, returned as inline SVG strings.

Every function takes plain data (a Polars frame or small dicts) and returns the SVG
markup of one figure, or ``None`` when there is nothing to draw. Figures are drawn with
the object-oriented API on an Agg canvas (no pyplot, no global backend switch), text is
kept as SVG ``<text>`` (so numbers stay selectable and fonts come from the page), and
the output is deterministic: no date in the metadata, element ids salted per figure.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping

import numpy as np
import polars as pl
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

__all__ = [
    "figure_to_svg",
    "risk_distribution_svg",
    "violations_by_k_svg",
    "suda_contribution_svg",
    "household_size_svg",
    "violations_by_k",
]

# A calm palette that prints well in greyscale too.
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
    return _REF.sub(
        lambda m: f"{m.group(1)}{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(0), svg
    )


def _attr(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


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


# ---------------------------------------------------------------------------------------
# Individual risk distribution
# ---------------------------------------------------------------------------------------


def risk_distribution_svg(
    records: pl.DataFrame | None,
    *,
    target: float | None = None,
    rule: float = 0.1,
    risky_threshold: float | None = None,
) -> str | None:
    """Histogram of the records' individual risk on a log x-scale.

    Draws the household risk as an outline when the frame has ``hh_risk``; marks the
    0.1 rule, the individual-risk target and (when given) the "risky" threshold
    median + 2·MAD.
    """
    risk = _column(records, "risk")
    if risk is None:
        return None
    hh = _column(records, "hh_risk")
    positive = risk[risk > 0]
    n_zero = int((risk <= 0).sum())
    if positive.size == 0:
        return None
    all_pos = positive if hh is None else np.concatenate([positive, hh[hh > 0]])
    lo = 10 ** math.floor(math.log10(max(all_pos.min(), 1e-8)))
    hi = 1.0 if all_pos.max() <= 1 else 10 ** math.ceil(math.log10(all_pos.max()))
    marks = [m for m in (rule, target, risky_threshold) if m and m > 0]
    if marks:
        lo = min(lo, 10 ** math.floor(math.log10(min(marks))))
        hi = max(hi, 10 ** math.ceil(math.log10(max(marks))))
    bins = np.geomspace(lo, hi, 8 * max(1, round(math.log10(hi / lo))) + 1)

    with rc_context(_RC):
        fig = _new_figure(6.8, 3.3)
        ax = fig.add_subplot()
        ax.hist(positive, bins=bins, color=BLUE, alpha=0.85, label="individual risk",
                edgecolor="white", linewidth=0.4)
        if hh is not None and (hh > 0).any():
            ax.hist(hh[hh > 0], bins=bins, histtype="step", color=TEAL, linewidth=1.4,
                    label="household risk")
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_formatter(FuncFormatter(_risk_tick))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(FuncFormatter(_count_fmt))
        ax.axvline(rule, color=RED, linestyle="--", linewidth=1.2, label=f"{rule:g} rule")
        if target and target > 0:
            ax.axvline(target, color=AMBER, linestyle="-", linewidth=1.4,
                       label=f"target {target:g}")
        if risky_threshold and risky_threshold > 0:
            ax.axvline(risky_threshold, color=MUTED, linestyle=":", linewidth=1.2,
                       label=f"median + 2·MAD = {risky_threshold:.3g}")
        ax.set_xlabel("individual re-identification risk (log scale)")
        ax.set_ylabel("records")
        title = "Distribution of individual risk"
        if n_zero:
            title += f"  ({n_zero:,} records with risk 0 not shown)"
        ax.set_title(title, loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        ax.grid(axis="x", visible=False)
        return figure_to_svg(fig, "risk-distribution", "Histogram of individual risk")


# ---------------------------------------------------------------------------------------
# Violations by k
# ---------------------------------------------------------------------------------------


def violations_by_k(records: pl.DataFrame | None, max_k: int = 10) -> list[tuple[int, int]] | None:
    """``[(k, number of records with fk < k) for k in 1..max_k]`` from the records' fk."""
    fk = _column(records, "fk")
    if fk is None:
        return None
    return [(k, int((fk < k).sum())) for k in range(1, max_k + 1)]


def violations_by_k_svg(
    records: pl.DataFrame | None, *, target_k: int | None = None, max_k: int = 10
) -> str | None:
    """Bar chart: records violating k-anonymity (fk < k) for k = 1..max_k."""
    rows = violations_by_k(records, max_k)
    if rows is None:
        return None
    n = records.height if records is not None else 0
    ks = [k for k, _ in rows]
    counts = [c for _, c in rows]
    colours = [RED if target_k is not None and k == target_k else BLUE for k in ks]
    with rc_context(_RC):
        fig = _new_figure(6.8, 3.1)
        ax = fig.add_subplot()
        bars = ax.bar(ks, counts, color=colours, width=0.7)
        top = max(counts) if counts else 0
        for bar, c in zip(bars, counts):
            ax.annotate(f"{c:,}", (bar.get_x() + bar.get_width() / 2, c),
                        xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7.5, color=INK)
        ax.set_ylim(0, top * 1.15 + 1)
        ax.set_xticks(ks)
        ax.yaxis.set_major_formatter(FuncFormatter(_count_fmt))
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("k")
        ax.set_ylabel("records with fk < k")
        title = "Records violating k-anonymity, by k"
        if target_k is not None and 1 <= target_k <= max_k:
            title += f"  (target k = {target_k} in red)"
        ax.set_title(title, loc="left")
        if n:
            sec = ax.secondary_yaxis("right", functions=(lambda y: 100 * y / n, lambda p: p * n / 100))
            sec.set_ylabel("% of records", color=MUTED)
            sec.tick_params(colors=MUTED)
        return figure_to_svg(fig, "violations-by-k", "Records violating k-anonymity for k = 1 to 10")


# ---------------------------------------------------------------------------------------
# SUDA per-variable contribution
# ---------------------------------------------------------------------------------------


def suda_contribution_svg(contributions: Mapping[str, float] | None) -> str | None:
    """Horizontal bars: each key variable's contribution (%) to the SUDA scores."""
    if not contributions or not isinstance(contributions, Mapping):
        return None
    items: list[tuple[str, float]] = []
    for name, value in contributions.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            items.append((str(name), v))
    if not items:
        return None
    items.sort(key=lambda kv: kv[1])
    names = [_plain(k) for k, _ in items]
    values = [v for _, v in items]
    height = max(2.0, 0.9 + 0.28 * len(items))
    with rc_context(_RC):
        fig = _new_figure(6.8, height)
        ax = fig.add_subplot()
        bars = ax.barh(range(len(items)), values, color=TEAL, height=0.65)
        ax.set_yticks(range(len(items)), names)
        for bar, v in zip(bars, values):
            ax.annotate(f"{v:.1f} %", (v, bar.get_y() + bar.get_height() / 2),
                        xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7.5, color=INK)
        ax.set_xlim(0, max(max(values), 1e-9) * 1.15)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("share of the total SUDA score involving the variable (%)")
        ax.set_title("Contribution of each key variable to SUDA scores", loc="left")
        return figure_to_svg(fig, "suda-contribution", "Per-variable contribution to SUDA")


# ---------------------------------------------------------------------------------------
# Household sizes
# ---------------------------------------------------------------------------------------


def _size_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def household_size_svg(sizes: Mapping[str, int] | None, *, large: int | None = 13) -> str | None:
    """Bar chart of the number of households by household size."""
    if not sizes or not isinstance(sizes, Mapping):
        return None
    items: list[tuple[str, int]] = []
    for k, v in sizes.items():
        try:
            items.append((str(k), int(v)))
        except (TypeError, ValueError):
            continue
    if not items:
        return None
    items.sort(key=lambda kv: _size_key(kv[0]))
    labels = [_plain(k) for k, _ in items]
    counts = [v for _, v in items]
    numeric = all(_size_key(k)[0] == 0 for k, _ in items)
    colours = []
    for k, _ in items:
        kind, num, _lab = _size_key(k)
        colours.append(AMBER if large is not None and kind == 0 and num > large else BLUE)
    with rc_context(_RC):
        fig = _new_figure(6.8, 3.0)
        ax = fig.add_subplot()
        if numeric:
            # real sizes on the x axis, so gaps (no household of size 11) stay visible
            x = np.array([_size_key(k)[1] for k, _ in items])
            ax.bar(x, counts, color=colours, width=0.7)
            lo, hi = min(1.0, float(x.min())), float(x.max())
            if hi - lo <= 25:
                ax.set_xticks(np.arange(lo, hi + 1))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=20))
            ax.set_xlim(lo - 0.6, hi + 0.6)
        else:
            x = np.arange(len(items))
            ax.bar(x, counts, color=colours, width=0.7)
            step = max(1, math.ceil(len(items) / 25))
            ax.set_xticks(x[::step], labels[::step])
        if len(items) <= 30:
            for xi, c in zip(x, counts):
                ax.annotate(f"{c:,}", (xi, c), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7.5, color=INK)
            ax.set_ylim(0, max(counts) * 1.15 + 1)
        ax.yaxis.set_major_formatter(FuncFormatter(_count_fmt))
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("household size (members in the file)")
        ax.set_ylabel("households")
        title = "Households by size"
        if any(c == AMBER for c in colours):
            title += f"  (sizes above {large} in amber)"
        ax.set_title(title, loc="left")
        return figure_to_svg(fig, "household-sizes", "Number of households by size")


# ---------------------------------------------------------------------------------------
# Before / after figures for the release reports
# ---------------------------------------------------------------------------------------

__all__ += [
    "risk_overlay_svg",
    "risk_range_svg",
    "violations_before_after_svg",
    "changes_per_variable_svg",
    "marginals_before_after_svg",
    "quantiles_before_after_svg",
]

BEFORE = GREY
AFTER = BLUE


def _histogram(hist: Mapping | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``{"edges": [...], "counts": [...]}`` as arrays, or None when malformed."""
    if not isinstance(hist, Mapping):
        return None
    try:
        edges = np.asarray(hist.get("edges"), dtype=float)
        counts = np.asarray(hist.get("counts"), dtype=float)
    except (TypeError, ValueError):
        return None
    if edges.ndim != 1 or counts.ndim != 1 or len(edges) != len(counts) + 1 or not counts.size:
        return None
    if not (np.isfinite(edges).all() and np.isfinite(counts).all()) or (edges <= 0).any():
        return None
    return edges, counts


def risk_overlay_svg(
    before: Mapping | None, after: Mapping | None, *, target: float | None = None, rule: float = 0.1
) -> str | None:
    """Individual-risk histograms before (grey, filled) and after (blue outline), log x-axis.

    Each histogram is ``{"edges": [...], "counts": [...]}`` with positive edges.
    """
    hists = [(h, label, colour) for h, label, colour in
             ((_histogram(before), "before", BEFORE), (_histogram(after), "after", AFTER))
             if h is not None]
    if not hists:
        return None
    used = [e[np.r_[c > 0, False] | np.r_[False, c > 0]] for (e, c), _, _ in hists]
    used = np.concatenate(used) if any(u.size for u in used) else hists[0][0][0]
    lo = 10 ** math.floor(math.log10(used.min()))
    hi = max(1.0, 10 ** math.ceil(math.log10(used.max())))
    marks = [m for m in (rule, target) if m and m > 0]
    with rc_context(_RC):
        fig = _new_figure(6.8, 3.3)
        ax = fig.add_subplot()
        for (edges, counts), label, colour in hists:
            if label == "before":
                ax.stairs(counts, edges, fill=True, color=colour, alpha=0.55, label=label)
            else:
                ax.stairs(counts, edges, color=colour, linewidth=1.6, label=label)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_formatter(FuncFormatter(_risk_tick))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(FuncFormatter(_count_fmt))
        if rule in marks:
            ax.axvline(rule, color=RED, linestyle="--", linewidth=1.2, label=f"{rule:g} rule")
        if target and target > 0:
            ax.axvline(target, color=AMBER, linewidth=1.4, label=f"target {target:g}")
        ax.set_xlabel("individual re-identification risk (log scale)")
        ax.set_ylabel("records")
        ax.set_title("Individual risk before and after anonymization", loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        ax.grid(axis="x", visible=False)
        return figure_to_svg(fig, "risk-overlay", "Histogram of individual risk before and after")


def risk_range_svg(
    before: Mapping | None, after: Mapping | None, *, target: float | None = None, rule: float = 0.1
) -> str | None:
    """Median, median + 2·MAD and maximum individual risk before and after (log x-axis).

    The fallback for :func:`risk_overlay_svg` when only the summary statistics are known.
    """
    rows = []
    for stats, label in ((before, "before"), (after, "after")):
        if not isinstance(stats, Mapping):
            continue
        med, mad, mx = (_finite(stats.get(k)) for k in ("median", "mad", "max"))
        if med is None or mx is None or med <= 0 or mx <= 0:
            continue
        rows.append((label, med, med + 2 * mad if mad else None, mx))
    if not rows:
        return None
    values = [v for r in rows for v in r[1:] if v] + [m for m in (rule, target) if m and m > 0]
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = max(1.0, 10 ** math.ceil(math.log10(max(values))))
    with rc_context(_RC):
        fig = _new_figure(6.8, 1.2 + 0.45 * len(rows))
        ax = fig.add_subplot()
        for y, (label, med, spread, mx) in enumerate(reversed(rows)):
            colour = BEFORE if label == "before" else AFTER
            ax.plot([med, mx], [y, y], color=colour, linewidth=2.5, solid_capstyle="round")
            ax.plot([med], [y], "o", color=colour, markersize=7, label="median" if y == 0 else None)
            if spread:
                ax.plot([spread], [y], "|", color=INK, markersize=12, markeredgewidth=1.5,
                        label="median + 2·MAD" if y == 0 else None)
            ax.plot([mx], [y], "D", color=colour, markersize=6, label="maximum" if y == 0 else None)
        ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_formatter(FuncFormatter(_risk_tick))
        ax.axvline(rule, color=RED, linestyle="--", linewidth=1.2, label=f"{rule:g} rule")
        if target and target > 0:
            ax.axvline(target, color=AMBER, linewidth=1.4, label=f"target {target:g}")
        ax.set_xlabel("individual re-identification risk (log scale)")
        ax.set_title("Individual risk before and after: median to maximum", loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        ax.grid(axis="y", visible=False)
        return figure_to_svg(fig, "risk-range", "Median and maximum individual risk before and after")


def _finite(value: object) -> float | None:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _count_items(counts: Mapping | None) -> dict[str, float]:
    """``{label: count}`` with finite numeric counts only, labels as text."""
    out: dict[str, float] = {}
    if isinstance(counts, Mapping):
        for k, v in counts.items():
            x = _finite(v)
            if x is not None:
                out[str(k)] = x
    return out


def violations_before_after_svg(
    before: Mapping | None, after: Mapping | None, *, target_k: int | None = None
) -> str | None:
    """Grouped bars: records violating k-anonymity (fk < k) for each k, before and after."""
    b, a = _count_items(before), _count_items(after)
    ks = sorted(set(b) | set(a), key=lambda k: _size_key(k)[:2])
    if not ks:
        return None
    x = np.arange(len(ks))
    with rc_context(_RC):
        fig = _new_figure(6.8, 3.0)
        ax = fig.add_subplot()
        top = 0.0
        for shift, counts, label, colour in ((-0.19, b, "before", BEFORE), (0.19, a, "after", AFTER)):
            if not counts:
                continue
            heights = [counts.get(k, 0.0) for k in ks]
            top = max(top, *heights)
            bars = ax.bar(x + shift, heights, width=0.38, color=colour, label=label)
            for bar, h in zip(bars, heights):
                ax.annotate(_count_fmt(h), (bar.get_x() + bar.get_width() / 2, h), xytext=(0, 2),
                            textcoords="offset points", ha="center", va="bottom", fontsize=7.5,
                            color=INK)
        ax.set_ylim(0, top * 1.18 + 1)
        ax.set_xticks(x, [f"k = {_plain(k)}" + (" (target)" if str(target_k) == k else "") for k in ks])
        ax.yaxis.set_major_formatter(FuncFormatter(_count_fmt))
        ax.grid(axis="x", visible=False)
        ax.set_ylabel("records with fk < k")
        ax.set_title("Records violating k-anonymity, before and after", loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        return figure_to_svg(fig, "violations-before-after", "Records violating k-anonymity before and after")


def changes_per_variable_svg(suppressed: Mapping | None, changed: Mapping | None = None) -> str | None:
    """Horizontal stacked bars per variable: cells suppressed and cells otherwise changed.

    ``changed`` counts every changed cell including the suppressed ones (as in a Change).
    """
    sup, chg = _count_items(suppressed), _count_items(changed)
    names = [n for n in dict.fromkeys([*sup, *chg]) if sup.get(n, 0) or chg.get(n, 0)]
    if not names:
        return None
    s = np.array([sup.get(n, 0.0) for n in names])
    other = np.maximum(np.array([chg.get(n, 0.0) for n in names]) - s, 0.0)
    order = np.lexsort((np.arange(len(names))[::-1], s + other))  # largest at the top
    names = [names[i] for i in order]
    s, other = s[order], other[order]
    y = np.arange(len(names))
    with rc_context(_RC):
        fig = _new_figure(6.8, max(1.8, 0.9 + 0.28 * len(names)))
        ax = fig.add_subplot()
        ax.barh(y, s, color=RED, height=0.65, label="suppressed (set to missing)")
        if other.any():
            ax.barh(y, other, left=s, color=AFTER, height=0.65, label="otherwise changed")
        for yi, total in zip(y, s + other):
            ax.annotate(_count_fmt(total), (total, yi), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7.5, color=INK)
        ax.set_yticks(y, [_plain(n) for n in names])
        ax.set_xlim(0, max(float((s + other).max()), 1.0) * 1.15)
        ax.xaxis.set_major_formatter(FuncFormatter(_count_fmt))
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("cells")
        ax.set_title("Cells suppressed and changed, per variable", loc="left")
        ax.legend(loc="lower right")
        return figure_to_svg(fig, "changes-per-variable", "Cells suppressed and changed per variable")


def _grid(n: int) -> tuple[int, int]:
    """Rows and columns of a small-multiples grid: up to three columns, 2 × 2 for four."""
    cols = 2 if n == 4 else min(n, 3)
    return math.ceil(n / cols), cols


def _small_multiples(n: int) -> tuple[Figure, np.ndarray]:
    rows, cols = _grid(n)
    fig = _new_figure(6.8 if cols > 1 else 4.2, 0.7 + (2.1 if cols < 3 else 1.8) * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def marginals_before_after_svg(marginals: Mapping | None, *, top: int = 12) -> str | None:
    """Small multiples: each variable's category shares before (grey) and after (blue).

    ``marginals`` maps a variable to ``{"categories": [...], "before": [...], "after": [...]}``
    (counts or shares, shown as per cent of each side's total) in the order to draw; the
    ``top`` largest categories are kept.
    """
    panels = []
    for name, body in (marginals or {}).items() if isinstance(marginals, Mapping) else ():
        if not isinstance(body, Mapping):
            continue
        cats = [str(c) for c in body.get("categories") or []]
        sides = []
        for side in ("before", "after"):
            values = [_finite(v) or 0.0 for v in body.get(side) or []]
            sides.append(np.array(values) if len(values) == len(cats) else None)
        if not cats or all(v is None for v in sides):
            continue
        shares = [None if v is None else 100 * v / (v.sum() or 1.0) for v in sides]
        size = np.max([v for v in shares if v is not None], axis=0)
        keep = np.sort(np.argsort(-size, kind="stable")[:top])
        panels.append((str(name), [cats[i] for i in keep], [None if v is None else v[keep] for v in shares]))
    if not panels:
        return None
    with rc_context(_RC):
        fig, axes = _small_multiples(len(panels))
        for ax, (name, cats, shares) in zip(axes.flat, panels):
            x = np.arange(len(cats))
            for shift, values, label, colour in zip((-0.2, 0.2), shares, ("before", "after"), (BEFORE, AFTER)):
                if values is not None:
                    ax.bar(x + shift, values, width=0.4, color=colour, label=label)
            tilt = len(cats) > 5 or max(len(c) for c in cats) > 8
            ax.set_xticks(x, [_plain(_short(c)) for c in cats], fontsize=7,
                          rotation=40 if tilt else 0, ha="right" if tilt else "center")
            ax.set_title(_plain(name), loc="left", fontsize=9)
            ax.set_ylabel("% of records", fontsize=7.5)
            ax.grid(axis="x", visible=False)
        fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside upper right", ncols=2)
        return figure_to_svg(fig, "marginals", "Category shares of the key variables before and after")


def _short(label: str, width: int = 14) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def quantiles_before_after_svg(quantiles: Mapping | None) -> str | None:
    """Small multiples: each numeric variable's quantiles before and after.

    ``quantiles`` maps a variable to ``{"probs": [...], "before": [...], "after": [...]}``;
    the x-axis is the quantile level, the y-axis the value.
    """
    panels = []
    for name, body in (quantiles or {}).items() if isinstance(quantiles, Mapping) else ():
        if not isinstance(body, Mapping):
            continue
        try:
            p = np.asarray(body.get("probs"), dtype=float)
            series = [(np.asarray(body.get(side), dtype=float) if body.get(side) is not None else None)
                      for side in ("before", "after")]
        except (TypeError, ValueError):
            continue
        if p.ndim != 1 or not p.size or all(s is None or s.shape != p.shape for s in series):
            continue
        panels.append((str(name), p, series))
    if not panels:
        return None
    with rc_context(_RC):
        fig, axes = _small_multiples(len(panels))
        for ax, (name, p, (b, a)) in zip(axes.flat, panels):
            if b is not None and b.shape == p.shape:
                ax.plot(100 * p, b, "o-", color=BEFORE, linewidth=2.2, markersize=4, label="before")
            if a is not None and a.shape == p.shape:
                ax.plot(100 * p, a, "s--", color=AFTER, linewidth=1.3, markersize=3, label="after")
            ax.set_title(_plain(name), loc="left", fontsize=9)
            ax.set_xlabel("percentile", fontsize=7.5)
            ax.yaxis.set_major_formatter(FuncFormatter(_value_fmt))
        fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside upper right", ncols=2)
        return figure_to_svg(fig, "quantiles", "Percentiles of the numeric variables before and after")


def _value_fmt(x: float, _pos: object = None) -> str:
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:g}M"
    if ax >= 1e4:
        return f"{x / 1e3:g}k"
    return f"{x:g}"
