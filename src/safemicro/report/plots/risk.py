"""Figures of the risk report: individual risk, k-violations, SUDA contributions, household sizes."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import polars as pl
from matplotlib import rc_context
from matplotlib.ticker import FuncFormatter, MaxNLocator

from . import style
from .style import AMBER, BLUE, INK, MUTED, RED, TEAL, figure_to_svg

__all__ = [
    "risk_distribution_svg",
    "violations_by_k_svg",
    "suda_contribution_svg",
    "household_size_svg",
    "violations_by_k",
]

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
    risk = style._column(records, "risk")
    if risk is None:
        return None
    hh = style._column(records, "hh_risk")
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

    with rc_context(style._RC):
        fig = style._new_figure(6.8, 3.3)
        ax = fig.add_subplot()
        ax.hist(positive, bins=bins, color=BLUE, alpha=0.85, label="individual risk", edgecolor="white", linewidth=0.4)
        if hh is not None and (hh > 0).any():
            ax.hist(hh[hh > 0], bins=bins, histtype="step", color=TEAL, linewidth=1.4, label="household risk")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(FuncFormatter(style._count_fmt))
        style._risk_axis(ax, lo, hi, rule=rule, target=target)
        if risky_threshold and risky_threshold > 0:
            ax.axvline(
                risky_threshold,
                color=MUTED,
                linestyle=":",
                linewidth=1.2,
                label=f"median + 2·MAD = {risky_threshold:.3g}",
            )
        ax.set_ylabel("records")
        title = "Distribution of individual risk"
        if n_zero:
            title += f"  ({n_zero:,} records with risk 0 not shown)"
        return style._finish(fig, ax, title, "risk-distribution", "Histogram of individual risk")


# ---------------------------------------------------------------------------------------
# Violations by k
# ---------------------------------------------------------------------------------------


def violations_by_k(records: pl.DataFrame | None, max_k: int = 10) -> list[tuple[int, int]] | None:
    """``[(k, number of records with fk < k) for k in 1..max_k]`` from the records' fk."""
    fk = style._column(records, "fk")
    if fk is None:
        return None
    return [(k, int((fk < k).sum())) for k in range(1, max_k + 1)]


def violations_by_k_svg(records: pl.DataFrame | None, *, target_k: int | None = None, max_k: int = 10) -> str | None:
    """Bar chart: records violating k-anonymity (fk < k) for k = 1..max_k."""
    rows = violations_by_k(records, max_k)
    if rows is None:
        return None
    n = records.height if records is not None else 0
    ks = [k for k, _ in rows]
    counts = [c for _, c in rows]
    colours = [RED if target_k is not None and k == target_k else BLUE for k in ks]
    with rc_context(style._RC):
        fig = style._new_figure(6.8, 3.1)
        ax = fig.add_subplot()
        bars = ax.bar(ks, counts, color=colours, width=0.7)
        top = max(counts) if counts else 0
        style._label_bars(ax, [bar.get_x() + bar.get_width() / 2 for bar in bars], counts, [f"{c:,}" for c in counts])
        ax.set_ylim(0, top * 1.15 + 1)
        ax.set_xticks(ks)
        ax.yaxis.set_major_formatter(FuncFormatter(style._count_fmt))
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
    names = [style._plain(k) for k, _ in items]
    values = [v for _, v in items]
    height = max(2.0, 0.9 + 0.28 * len(items))
    with rc_context(style._RC):
        fig = style._new_figure(6.8, height)
        ax = fig.add_subplot()
        bars = ax.barh(range(len(items)), values, color=TEAL, height=0.65)
        ax.set_yticks(range(len(items)), names)
        for bar, v in zip(bars, values):
            ax.annotate(
                f"{v:.1f} %",
                (v, bar.get_y() + bar.get_height() / 2),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7.5,
                color=INK,
            )
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
    labels = [style._plain(k) for k, _ in items]
    counts = [v for _, v in items]
    numeric = all(_size_key(k)[0] == 0 for k, _ in items)
    colours = []
    for k, _ in items:
        kind, num, _lab = _size_key(k)
        colours.append(AMBER if large is not None and kind == 0 and num > large else BLUE)
    with rc_context(style._RC):
        fig = style._new_figure(6.8, 3.0)
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
            style._label_bars(ax, x, counts, [f"{c:,}" for c in counts])
            ax.set_ylim(0, max(counts) * 1.15 + 1)
        ax.yaxis.set_major_formatter(FuncFormatter(style._count_fmt))
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("household size (members in the file)")
        ax.set_ylabel("households")
        title = "Households by size"
        if any(c == AMBER for c in colours):
            title += f"  (sizes above {large} in amber)"
        ax.set_title(title, loc="left")
        return figure_to_svg(fig, "household-sizes", "Number of households by size")
