"""Before/after figures of the release reports: risk, violations, changes, marginals, quantiles."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from . import style
from .risk import _size_key
from .style import BLUE, GREY, INK, RED, figure_to_svg

# ---------------------------------------------------------------------------------------
# Before / after figures for the release reports
# ---------------------------------------------------------------------------------------

__all__ = [
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
    hists = [
        (h, label, colour)
        for h, label, colour in ((_histogram(before), "before", BEFORE), (_histogram(after), "after", AFTER))
        if h is not None
    ]
    if not hists:
        return None
    used = [e[np.r_[c > 0, False] | np.r_[False, c > 0]] for (e, c), _, _ in hists]
    used = np.concatenate(used) if any(u.size for u in used) else hists[0][0][0]
    lo = 10 ** math.floor(math.log10(used.min()))
    hi = max(1.0, 10 ** math.ceil(math.log10(used.max())))
    marks = [m for m in (rule, target) if m and m > 0]
    with rc_context(style._RC):
        fig = style._new_figure(6.8, 3.3)
        ax = fig.add_subplot()
        for (edges, counts), label, colour in hists:
            if label == "before":
                ax.stairs(counts, edges, fill=True, color=colour, alpha=0.55, label=label)
            else:
                ax.stairs(counts, edges, color=colour, linewidth=1.6, label=label)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(FuncFormatter(style._count_fmt))
        style._risk_axis(ax, lo, hi, rule=rule if rule in marks else None, target=target)
        return style._finish(
            fig,
            ax,
            "Individual risk before and after anonymization",
            "risk-overlay",
            "Histogram of individual risk before and after",
            ylabel="records",
        )


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
    with rc_context(style._RC):
        fig = style._new_figure(6.8, 1.2 + 0.45 * len(rows))
        ax = fig.add_subplot()
        for y, (label, med, spread, mx) in enumerate(reversed(rows)):
            colour = BEFORE if label == "before" else AFTER
            ax.plot([med, mx], [y, y], color=colour, linewidth=2.5, solid_capstyle="round")
            ax.plot([med], [y], "o", color=colour, markersize=7, label="median" if y == 0 else None)
            if spread:
                ax.plot(
                    [spread],
                    [y],
                    "|",
                    color=INK,
                    markersize=12,
                    markeredgewidth=1.5,
                    label="median + 2·MAD" if y == 0 else None,
                )
            ax.plot([mx], [y], "D", color=colour, markersize=6, label="maximum" if y == 0 else None)
        ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        style._risk_axis(ax, lo, hi, rule=rule, target=target)
        return style._finish(
            fig,
            ax,
            "Individual risk before and after: median to maximum",
            "risk-range",
            "Median and maximum individual risk before and after",
            quiet_grid="y",
        )


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
    with rc_context(style._RC):
        fig = style._new_figure(6.8, 3.0)
        ax = fig.add_subplot()
        top = 0.0
        for shift, counts, label, colour in ((-0.19, b, "before", BEFORE), (0.19, a, "after", AFTER)):
            if not counts:
                continue
            heights = [counts.get(k, 0.0) for k in ks]
            top = max(top, *heights)
            bars = ax.bar(x + shift, heights, width=0.38, color=colour, label=label)
            xs = [bar.get_x() + bar.get_width() / 2 for bar in bars]
            style._label_bars(ax, xs, heights, [style._count_fmt(h) for h in heights])
        ax.set_ylim(0, top * 1.18 + 1)
        ax.set_xticks(x, [f"k = {style._plain(k)}" + (" (target)" if str(target_k) == k else "") for k in ks])
        ax.yaxis.set_major_formatter(FuncFormatter(style._count_fmt))
        return style._finish(
            fig,
            ax,
            "Records violating k-anonymity, before and after",
            "violations-before-after",
            "Records violating k-anonymity before and after",
            ylabel="records with fk < k",
        )


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
    with rc_context(style._RC):
        fig = style._new_figure(6.8, max(1.8, 0.9 + 0.28 * len(names)))
        ax = fig.add_subplot()
        ax.barh(y, s, color=RED, height=0.65, label="suppressed (set to missing)")
        if other.any():
            ax.barh(y, other, left=s, color=AFTER, height=0.65, label="otherwise changed")
        for yi, total in zip(y, s + other):
            ax.annotate(
                style._count_fmt(total),
                (total, yi),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7.5,
                color=INK,
            )
        ax.set_yticks(y, [style._plain(n) for n in names])
        ax.set_xlim(0, max(float((s + other).max()), 1.0) * 1.15)
        ax.xaxis.set_major_formatter(FuncFormatter(style._count_fmt))
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
    fig = style._new_figure(6.8 if cols > 1 else 4.2, 0.7 + (2.1 if cols < 3 else 1.8) * rows)
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
    with rc_context(style._RC):
        fig, axes = _small_multiples(len(panels))
        for ax, (name, cats, shares) in zip(axes.flat, panels):
            x = np.arange(len(cats))
            for shift, values, label, colour in zip((-0.2, 0.2), shares, ("before", "after"), (BEFORE, AFTER)):
                if values is not None:
                    ax.bar(x + shift, values, width=0.4, color=colour, label=label)
            tilt = len(cats) > 5 or max(len(c) for c in cats) > 8
            ax.set_xticks(
                x,
                [style._plain(_short(c)) for c in cats],
                fontsize=7,
                rotation=40 if tilt else 0,
                ha="right" if tilt else "center",
            )
            ax.set_title(style._plain(name), loc="left", fontsize=9)
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
            series = [
                (np.asarray(body.get(side), dtype=float) if body.get(side) is not None else None)
                for side in ("before", "after")
            ]
        except (TypeError, ValueError):
            continue
        if p.ndim != 1 or not p.size or all(s is None or s.shape != p.shape for s in series):
            continue
        panels.append((str(name), p, series))
    if not panels:
        return None
    with rc_context(style._RC):
        fig, axes = _small_multiples(len(panels))
        for ax, (name, p, (b, a)) in zip(axes.flat, panels):
            if b is not None and b.shape == p.shape:
                ax.plot(100 * p, b, "o-", color=BEFORE, linewidth=2.2, markersize=4, label="before")
            if a is not None and a.shape == p.shape:
                ax.plot(100 * p, a, "s--", color=AFTER, linewidth=1.3, markersize=3, label="after")
            ax.set_title(style._plain(name), loc="left", fontsize=9)
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
