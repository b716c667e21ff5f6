"""Output protection of one aggregate table: cell statistics, primary and secondary suppression.

The order is fixed: per-cell statistics (:func:`cell_statistics`), then primary suppression
(threshold on the number of contributors; (n, k) dominance and p % for magnitudes), then
secondary suppression over every released linear relation (the table's margins at every
level), checked by linear programming: for each suppressed cell the smallest and largest
value consistent with all released cells and margins is computed (``scipy.optimize.linprog``,
HiGHS), and more cells are suppressed until every interval is wide enough. Suppressed cells
are flagged, never dropped; their feasible intervals are part of the output (``lower``,
``upper``) so tables from several providers can be added (:mod:`safemicro.service.combine`).

What the analyst is assumed to know when the intervals are computed: every released value,
every margin relation, that counts and (by default) magnitudes are non-negative, and, as the
``rule`` column is released, that a cell suppressed by the threshold rule holds between 1 and
``threshold - 1`` contributors (0 to ``threshold - 1`` when zeros are suppressed too).
Rounding (``rounding_base``) is applied after secondary suppression was decided on exact
values, which is conservative: rounded releases tell the analyst less than exact ones.

This module assembles the table; the cell statistics are in :mod:`.protection_cells`, the
policy and the primary rules in :mod:`.protection_rules`, and secondary suppression with its
LP audit in :mod:`.protection_secondary` (their public names are re-exported here).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.service.protection_cells import _TOPS, _check_columns, _complete, add_margins, cell_statistics
from safemicro.service.protection_optimal import optimal_secondary
from safemicro.service.protection_rules import ProtectionPolicy, _primary, _prior_bounds
from safemicro.service.protection_secondary import Equations as Equations
from safemicro.service.protection_secondary import _rounded_intervals, _secondary, suppressed_intervals, table_equations

__all__ = [
    "ProtectionPolicy",
    "cell_statistics",
    "add_margins",
    "protect",
    "table_equations",
    "suppressed_intervals",
]

Statistic = Literal["count", "sum", "mean", "quantile"]
STATUS_RELEASED = "released"
STATUS_SUPPRESSED = "suppressed"


# -- protect ----------------------------------------------------------------------------------


def protect(
    cells: pl.DataFrame,
    dims: list[str],
    statistic: Statistic,
    policy: ProtectionPolicy | None = None,
    margins: bool = True,
    *,
    complete: bool = True,
) -> pl.DataFrame:
    """The protected table: one row per cell (and margin), nothing dropped.

    ``cells`` has the columns of :func:`cell_statistics` (``n``, ``total``, ``top1..top3``; for
    ``statistic="quantile"`` also the quantile in ``value``). Margin rows (dimension None)
    already in ``cells`` are used as given; otherwise, with ``margins``, they are summed from
    the cells. With ``complete``, combinations of observed dimension values without records
    are added as zero cells (tables up to 200 000 cells).

    Returns dims..., ``value`` (None when suppressed), ``status`` ("released" | "suppressed"),
    ``rule`` ("threshold" | "zero" | "dominance" | "p_percent" | "secondary" | None), ``lower``,
    ``upper`` (what an analyst can infer about the cell: the LP interval for suppressed count
    and sum cells, the rounding interval or the value itself for released ones; None for
    suppressed means and quantiles), ``rounded_to``, ``noise_scale`` and ``noise_variance``
    (None: no noise in this mode).
    """
    policy = policy or ProtectionPolicy()
    if statistic not in ("count", "sum", "mean", "quantile"):
        raise SafemicroError(f"unknown statistic {statistic!r}; use count, sum, mean or quantile")
    needed = list(dims) + ["n"]
    if statistic in ("sum", "mean"):
        needed += ["total", *_TOPS]
    if statistic == "quantile":
        needed.append("value")
    _check_columns(cells, needed, "protect")
    if dims and cells.select(dims).is_duplicated().any():
        row = int(cells.select(dims).is_duplicated().arg_max())
        raise SafemicroError("the same cell appears twice in the table", row=row)
    t = cells.select([c for c in cells.columns if c in set(needed) | {"total", *_TOPS}])
    if "total" not in t.columns:
        t = t.with_columns(pl.lit(None, dtype=pl.Float64).alias("total"))
    has_margins = bool(dims) and t.select(pl.any_horizontal([pl.col(d).is_null() for d in dims]).any()).item()
    if complete:
        t = _complete(t, dims)
    if margins and dims and not has_margins:
        if statistic == "quantile":
            raise SafemicroError("quantile margins cannot be summed from cells; pass margin rows (dimension None)")
        t = add_margins(t, dims)
    t = t.sort(list(dims), nulls_last=True) if dims else t
    rules = _primary(t, statistic, policy)
    n = t.get_column("n").to_numpy().astype(float)
    total = t.get_column("total").fill_null(0.0).to_numpy().astype(float)
    suppressed = np.array([r is not None for r in rules])
    lower, upper = _prior_bounds(rules, suppressed, policy, statistic)
    if dims and policy.secondary and suppressed.any():
        eqs = table_equations(t, dims)
        depth = t.select(pl.sum_horizontal([pl.col(d).is_null().cast(pl.Int64) for d in dims])).to_series().to_numpy()
        if len(eqs.parents):
            bases = [("n", n)]
            if statistic in ("sum", "mean"):
                bases.append(("total", total))
            caches: dict[str, dict] = {name: {} for name, _ in bases}
            changed = True
            while changed:  # each pass only adds suppressions, so this ends
                changed = False
                for name, vals in bases:
                    before = suppressed.sum()
                    if policy.secondary_method == "optimal":
                        suppressed, lo, hi = optimal_secondary(vals, name, eqs, rules, suppressed, policy, t.height)
                    else:
                        suppressed, lo, hi = _secondary(
                            vals, name, eqs, rules, suppressed, policy, t.height, depth, caches[name]
                        )
                    if suppressed.sum() != before:
                        changed = True
                    if (statistic == "count" and name == "n") or (statistic == "sum" and name == "total"):
                        lower, upper = lo, hi
                for i in np.flatnonzero(suppressed):
                    if rules[i] is None:
                        rules[i] = "secondary"
            if policy.rounding_base and statistic in ("count", "sum"):
                lower, upper = _rounded_intervals(
                    eqs, n if statistic == "count" else total, rules, suppressed, policy, statistic
                )
    return _assemble(t, dims, statistic, policy, rules, suppressed, lower, upper)


def _assemble(t, dims, statistic, policy, rules, suppressed, lower, upper) -> pl.DataFrame:
    n = t.get_column("n").to_numpy().astype(float)
    if statistic == "count":
        raw = n
    elif statistic == "sum":
        raw = t.get_column("total").fill_null(0.0).to_numpy().astype(float)
    elif statistic == "mean":
        tot = t.get_column("total").fill_null(0.0).to_numpy().astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = np.where(n > 0, tot / np.where(n > 0, n, 1), np.nan)
    else:
        raw = t.get_column("value").cast(pl.Float64).to_numpy()
    value = raw.astype(float).copy()
    lo = np.where(suppressed, lower, value)
    hi = np.where(suppressed, upper, value)
    base = policy.rounding_base if statistic in ("count", "sum") else None
    if base:
        rounded = np.floor(value / base + 0.5) * base
        lo = np.where(
            suppressed,
            lo,
            np.maximum(0.0, rounded - base / 2.0)
            if policy.nonnegative or statistic == "count"
            else rounded - base / 2.0,
        )
        hi = np.where(suppressed, hi, rounded + base / 2.0)
        value = rounded
    if statistic in ("mean", "quantile"):
        lo = np.where(suppressed, np.nan, lo)
        hi = np.where(suppressed, np.nan, hi)
    value = np.where(suppressed, np.nan, value)
    hi = np.where(np.isinf(hi), np.nan, hi) + 0.0  # None = unbounded; no -0.0
    lo = np.where(np.isinf(lo), np.nan, lo) + 0.0
    out = t.select(dims).with_columns(
        pl.Series("value", value, dtype=pl.Float64).fill_nan(None),
        pl.Series("status", np.where(suppressed, STATUS_SUPPRESSED, STATUS_RELEASED)),
        pl.Series("rule", rules, dtype=pl.String),
        pl.Series("lower", lo, dtype=pl.Float64).fill_nan(None),
        pl.Series("upper", hi, dtype=pl.Float64).fill_nan(None),
        pl.lit(base, dtype=pl.Int64).alias("rounded_to"),
        pl.lit(None, dtype=pl.Float64).alias("noise_scale"),
        pl.lit(None, dtype=pl.Float64).alias("noise_variance"),
    )
    if statistic == "count" and not base:
        out = out.with_columns(pl.col("value").round(0))
    return out
