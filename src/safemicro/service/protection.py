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
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError

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
_TOPS = ("top1", "top2", "top3")
_COMPLETE_LIMIT = 200_000  # largest cross product of dimension values filled with zero cells


@dataclass(frozen=True)
class ProtectionPolicy:
    """The data provider's protection rules (ACRO-compatible defaults where ACRO has them).

    threshold: cells with 1..threshold-1 contributors are suppressed (ACRO ``safe_threshold``).
    dominance_n, dominance_k: a magnitude cell fails when its ``dominance_n`` largest
        contributions make up at least ``dominance_k`` percent of its total (n <= 3).
    p_percent: a magnitude cell fails when the total less its two largest contributions is
        below ``p_percent`` percent of the largest (the second-largest contributor could
        then estimate the largest within p %).
    secondary: run secondary suppression (off only for tables without relations).
    rounding_base: round released counts and sums to this base (None = exact).
    protection_width: the smallest feasible-interval width a threshold-suppressed count cell
        must keep (None = threshold // 3, at least 1, and never more than the width the rule
        flag itself leaves, threshold - 2).
    protection_percent: for magnitude cells, the interval must be at least this percent of
        the cell total wide (None = p_percent).
    zeros_disclosive: suppress zero cells too (rule "zero"); default releases them.
    hide_presence: treat an empty cell as a small one (rule "threshold", interval
        [0, threshold - 1]), so that "nobody" and "a few" look the same (the service's choice).
    nonnegative: magnitudes are sums of non-negative contributions (lower bound 0 in the LP).
    """

    threshold: int = 10
    dominance_n: int = 2
    dominance_k: float = 85.0
    p_percent: float = 10.0
    secondary: bool = True
    rounding_base: int | None = None
    protection_width: float | None = None
    protection_percent: float | None = None
    zeros_disclosive: bool = False
    hide_presence: bool = False
    nonnegative: bool = True

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise SafemicroError(f"threshold must be at least 1, got {self.threshold}")
        if not 1 <= self.dominance_n <= 3:
            raise SafemicroError(f"dominance_n must be 1, 2 or 3, got {self.dominance_n}")
        if not 0 < self.dominance_k <= 100:
            raise SafemicroError(f"dominance_k is a percentage in (0, 100], got {self.dominance_k}")
        if not 0 <= self.p_percent <= 100:
            raise SafemicroError(f"p_percent is a percentage in [0, 100], got {self.p_percent}")
        if self.rounding_base is not None and self.rounding_base < 1:
            raise SafemicroError(f"rounding_base must be a positive integer, got {self.rounding_base}")


# -- cell statistics --------------------------------------------------------------------------


def _check_columns(frame: pl.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SafemicroError(f"{what}: no column {missing[0]!r} (columns: {', '.join(frame.columns)})", column=missing[0])


def cell_statistics(
    records: pl.DataFrame,
    dims: list[str],
    measure: str | None = None,
    unit: str | None = None,
    *,
    margins: bool = False,
) -> pl.DataFrame:
    """One row per non-empty cell of ``dims``: ``n``, ``total``, ``top1``..``top3``.

    ``n`` counts distinct ``unit`` values (rows when ``unit`` is None); ``total`` is the sum of
    ``measure`` (None for a count table); ``top1``..``top3`` are the largest contributions of
    single units to the total (0 when there are fewer). With ``margins`` the rows of every
    aggregation level are added, dimension value None meaning "all"; they are computed from
    the records, so a unit present in several cells is counted once in a margin.
    """
    _check_columns(records, list(dims) + [c for c in (measure, unit) if c], "cell statistics")
    for d in dims:
        nulls = records.get_column(d).is_null()
        if nulls.any():
            row = int(nulls.arg_max())
            raise SafemicroError(
                "dimension has missing values; recode them to a category before tabulating",
                column=d,
                row=row,
            )
    if measure is not None and not records.schema[measure].is_numeric():
        raise SafemicroError(f"measure must be numeric, is {records.schema[measure]}", column=measure)
    levels = [list(c) for r in range(len(dims), -1, -1) for c in itertools.combinations(dims, r)] if margins else [list(dims)]
    frames = []
    for level in levels:
        frame = _level_statistics(records, level, measure, unit)
        frame = frame.with_columns(
            [pl.lit(None, dtype=records.schema[d]).alias(d) for d in dims if d not in level]
        ).select(list(dims) + ["n", "total", *_TOPS])
        frames.append(frame)
    out = pl.concat(frames, how="vertical")
    return out.sort(list(dims), nulls_last=True) if dims else out


def _level_statistics(records: pl.DataFrame, keys: list[str], measure: str | None, unit: str | None) -> pl.DataFrame:
    lf = records.lazy()
    if measure is None:  # a column of ones, not pl.lit(1.0): a literal sums to 1.0 per group under polars 2
        lf = lf.with_columns(pl.lit(1.0).alias("_one"))
    value = pl.col(measure).cast(pl.Float64) if measure is not None else pl.col("_one")
    if unit is not None:
        contrib = lf.group_by(keys + [unit]).agg(value.sum().alias("_c"))
    else:
        contrib = lf.with_columns(value.alias("_c")).select(keys + ["_c"])
    agg = [pl.len().alias("n"), pl.col("_c").sum().alias("total"), pl.col("_c").top_k(3).sort(descending=True).alias("_top")]
    out = contrib.with_columns(pl.lit(0).alias("_g")).group_by(keys + ["_g"]).agg(agg).drop("_g")
    out = out.with_columns(
        [pl.col("_top").list.get(i, null_on_oob=True).fill_null(0.0).alias(name) for i, name in enumerate(_TOPS)]
    ).drop("_top")
    if measure is None:
        out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias("total"), *[pl.lit(0.0).alias(t) for t in _TOPS])
    return out.with_columns(pl.col("n").cast(pl.Int64)).collect()


def add_margins(cells: pl.DataFrame, dims: list[str]) -> pl.DataFrame:
    """Inner cells plus margin rows of every level, summed from the cells.

    ``n`` and ``total`` are added; the top contributions of a margin are the largest of its
    cells' tops, which is exact when every unit contributes to one cell only (always so
    when ``n`` counts rows). Use ``cell_statistics(..., margins=True)`` otherwise.
    """
    inner = cells.filter(pl.all_horizontal([pl.col(d).is_not_null() for d in dims])) if dims else cells
    frames = [inner]
    for r in range(len(dims) - 1, -1, -1):
        for level in itertools.combinations(dims, r):
            keys = list(level)
            aggs = [pl.col("n").sum(), pl.col("total").sum()]
            if all(t in inner.columns for t in _TOPS):
                aggs.append(pl.concat_list(list(_TOPS)).list.explode(keep_nulls=False, empty_as_null=False).top_k(3).sort(descending=True).alias("_top"))
            g = inner.with_columns(pl.lit(0).alias("_g")).group_by(keys + ["_g"]).agg(aggs).drop("_g")
            if "_top" in g.columns:
                g = g.with_columns(
                    [pl.col("_top").list.get(i, null_on_oob=True).fill_null(0.0).alias(t) for i, t in enumerate(_TOPS)]
                ).drop("_top")
            g = g.with_columns([pl.lit(None, dtype=cells.schema[d]).alias(d) for d in dims if d not in keys])
            frames.append(g.select(inner.columns) if set(inner.columns) <= set(g.columns) else g)
    common = [c for c in inner.columns if all(c in f.columns for f in frames)]
    return pl.concat([f.select(common) for f in frames], how="vertical_relaxed")


def _complete(cells: pl.DataFrame, dims: list[str]) -> pl.DataFrame:
    """Add zero cells for every combination of observed dimension values (not silently absent)."""
    if len(dims) < 2:
        return cells
    inner = cells.filter(pl.all_horizontal([pl.col(d).is_not_null() for d in dims]))
    values = [inner.get_column(d).unique() for d in dims]
    if math.prod(len(v) for v in values) > _COMPLETE_LIMIT or inner.height == 0:
        return cells
    grid = values[0].to_frame()
    for v in values[1:]:
        grid = grid.join(v.to_frame(), how="cross")
    missing = grid.join(inner.select(dims), on=dims, how="anti")
    if missing.height == 0:
        return cells
    fill = {"n": pl.lit(0, dtype=pl.Int64)}
    for c in cells.columns:
        if c in dims or c == "n":
            continue
        fill[c] = pl.lit(0.0, dtype=cells.schema[c]) if cells.schema[c].is_numeric() else pl.lit(None, dtype=cells.schema[c])
    if "total" in cells.columns and cells.get_column("total").is_null().all():
        fill["total"] = pl.lit(None, dtype=cells.schema["total"])
    zeros = missing.with_columns(**fill).select(cells.columns)
    return pl.concat([cells, zeros], how="vertical_relaxed")


# -- linear relations of a table --------------------------------------------------------------


@dataclass
class Equations:
    """Margin relations of a table: ``value[parent] = sum(value[children])`` for each row."""

    parents: np.ndarray  # (m,) row index of the margin cell
    children: list[np.ndarray]  # m arrays of row indices


def table_equations(table: pl.DataFrame, dims: list[str]) -> Equations:
    """Every relation "margin = sum of the cells one level below it" present in ``table``.

    Rows whose dimension value is None are margins over that dimension. Each row index is the
    row's position in ``table``.
    """
    t = table.select(dims).with_row_index("_i")
    parents: list[int] = []
    children: list[np.ndarray] = []
    for j in dims:
        others = [d for d in dims if d != j]
        kids = t.filter(pl.col(j).is_not_null())
        par = t.filter(pl.col(j).is_null())
        if kids.height == 0 or par.height == 0:
            continue
        if others:
            joined = kids.join(par.select(others + [pl.col("_i").alias("_p")]), on=others, how="inner", nulls_equal=True)
        else:
            joined = kids.with_columns(pl.lit(par.get_column("_i")[0], dtype=pl.UInt32).alias("_p"))
        grouped = joined.group_by("_p").agg(pl.col("_i")).sort("_p")
        for p, kid in zip(grouped.get_column("_p").to_list(), grouped.get_column("_i").to_list()):
            parents.append(int(p))
            children.append(np.asarray(kid, dtype=np.int64))
    return Equations(np.asarray(parents, dtype=np.int64), children)


def _system(eqs: Equations, n_cells: int, values: np.ndarray, exact_tol: float):
    """Dense (rows × cells) coefficient matrices of exact equations and of the inequalities
    used when a margin is not the sum of its cells (distinct units in several cells)."""
    eq_rows, ub_rows = [], []
    for p, kids in zip(eqs.parents, eqs.children):
        resid = values[p] - values[kids].sum()
        row = np.zeros(n_cells)
        row[p] = 1.0
        row[kids] -= 1.0
        if abs(resid) <= exact_tol:
            eq_rows.append(row)
        else:  # parent <= sum(children), each child <= parent
            ub_rows.append(row)
            for k in kids:
                r = np.zeros(n_cells)
                r[k] = 1.0
                r[p] = -1.0
                ub_rows.append(r)
    a_eq = np.array(eq_rows) if eq_rows else np.zeros((0, n_cells))
    a_ub = np.array(ub_rows) if ub_rows else np.zeros((0, n_cells))
    return a_eq, a_ub


def _determined(a_eq: np.ndarray, suppressed: np.ndarray) -> np.ndarray:
    """Which suppressed cells a linear combination of the exact relations pins down
    (the unit vector lies in the row space of the suppressed columns)."""
    out = np.zeros(len(suppressed), dtype=bool)
    if len(suppressed) == 0:
        return out
    a = a_eq[:, suppressed]
    a = a[np.abs(a).sum(axis=1) > 0]
    if a.shape[0] == 0:
        return out
    # leverage 1: the unit vector lies in the row space
    _, sv, vt = np.linalg.svd(a, full_matrices=False)
    rank = int((sv > 1e-9 * max(1.0, sv[0])).sum())
    return (vt[:rank] ** 2).sum(axis=0) > 1.0 - 1e-8


def suppressed_intervals(
    a_eq: np.ndarray,
    a_ub: np.ndarray,
    values: np.ndarray,
    suppressed: np.ndarray,
    lower_bounds: np.ndarray,
    upper_bounds: np.ndarray,
    cache: dict | None = None,
    targets: np.ndarray | None = None,
    need: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest value of each suppressed cell consistent with the released cells.

    Variables are the suppressed cells (bounded by what the analyst knows a priori); released
    cells enter the right-hand side. Solved per connected group of suppressed cells; ``cache``
    (for one system and one set of values) keeps the answers of groups already solved.
    ``targets`` (cell indices, a subset of ``suppressed``) limits which intervals are computed;
    the others are NaN. Every suppressed cell is a variable either way. With ``need`` (required
    width per cell index) an interval is only computed until feasible points already seen
    span that width: then the returned interval is the (narrower) span of those points,
    enough to show the requirement is met.
    """
    from scipy.optimize import linprog

    s = len(suppressed)
    lo = np.full(s, np.nan)
    hi = np.full(s, np.nan)
    if s == 0:
        return lo, hi
    released = np.setdiff1d(np.arange(len(values)), suppressed)
    target_set = set(np.asarray(targets).tolist()) if targets is not None else set()
    # components of suppressed cells linked by a relation
    parent = list(range(s))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in (a_eq, a_ub):
        for row in a:
            idx = np.flatnonzero(row[suppressed])
            for k in idx[1:]:
                ri, rk = find(int(idx[0])), find(int(k))
                if ri != rk:
                    parent[rk] = ri
    roots = np.array([find(i) for i in range(s)])
    for root in np.unique(roots):
        members = np.flatnonzero(roots == root)
        cols = suppressed[members]
        ckey = tuple(cols.tolist())
        wanted = [(pos, m) for pos, m in enumerate(members) if targets is None or suppressed[m] in target_set]
        todo = []
        for pos, m in wanted:
            if cache is not None and (ckey, int(suppressed[m])) in cache:
                lo[m], hi[m] = cache[(ckey, int(suppressed[m]))]
            else:
                todo.append((pos, m))
        if not todo:
            continue
        bounds = list(zip(lower_bounds[cols], [None if not np.isfinite(u) else u for u in upper_bounds[cols]]))

        def part(a: np.ndarray):
            if a.shape[0] == 0:
                return None, None
            rows = np.abs(a[:, cols]).sum(axis=1) > 0
            if not rows.any():
                return None, None
            sub = a[rows]
            return sub[:, cols], -(sub[:, released] @ values[released])

        aeq, beq = part(a_eq)
        aub, bub = part(a_ub)
        seen_lo = np.full(len(cols), np.inf)  # span of the feasible points met so far
        seen_hi = np.full(len(cols), -np.inf)
        for pos, m in todo:
            if need is not None and seen_hi[pos] - seen_lo[pos] >= need[suppressed[m]]:
                lo[m], hi[m] = seen_lo[pos], seen_hi[pos]
                continue
            c = np.zeros(len(cols))
            c[pos] = 1.0
            floor, ceiling = lower_bounds[cols[pos]], upper_bounds[cols[pos]]
            # a bound already attained by a feasible point is the optimum: no LP needed
            if seen_lo[pos] <= floor + 1e-9:
                lo[m] = floor
            else:
                res = linprog(c, A_ub=aub, b_ub=bub, A_eq=aeq, b_eq=beq, bounds=bounds, method="highs")
                lo[m] = res.fun if res.status == 0 else floor
                if res.status == 0:
                    seen_lo, seen_hi = np.minimum(seen_lo, res.x), np.maximum(seen_hi, res.x)
            if np.isfinite(ceiling) and seen_hi[pos] >= ceiling - 1e-9:
                hi[m] = ceiling
            else:
                res = linprog(-c, A_ub=aub, b_ub=bub, A_eq=aeq, b_eq=beq, bounds=bounds, method="highs")
                hi[m] = -res.fun if res.status == 0 else np.inf  # not solved: unbounded above
                if res.status == 0:
                    seen_lo, seen_hi = np.minimum(seen_lo, res.x), np.maximum(seen_hi, res.x)
            if cache is not None:
                cache[(ckey, int(suppressed[m]))] = (lo[m], hi[m])
    return lo, hi


# -- protect ----------------------------------------------------------------------------------


def _primary(t: pl.DataFrame, statistic: str, policy: ProtectionPolicy) -> list[str | None]:
    n = t.get_column("n").to_numpy().astype(float)
    rules: list[str | None] = [None] * t.height
    small = ((n > 0) | policy.hide_presence) & (n < policy.threshold)
    zero = (n == 0) & policy.zeros_disclosive
    magnitude = statistic in ("sum", "mean") and "total" in t.columns and not t.get_column("total").is_null().all()
    dom = np.zeros(t.height, dtype=bool)
    ppc = np.zeros(t.height, dtype=bool)
    if magnitude:
        total = t.get_column("total").fill_null(0.0).to_numpy().astype(float)
        tops = np.column_stack([t.get_column(c).fill_null(0.0).to_numpy().astype(float) for c in _TOPS])
        positive = total > 0
        dom = positive & (tops[:, : policy.dominance_n].sum(axis=1) >= policy.dominance_k / 100.0 * total)
        ppc = positive & (total - tops[:, 0] - tops[:, 1] < policy.p_percent / 100.0 * tops[:, 0])
    for i in range(t.height):
        if small[i]:
            rules[i] = "threshold"
        elif zero[i]:
            rules[i] = "zero"
        elif dom[i]:
            rules[i] = "dominance"
        elif ppc[i]:
            rules[i] = "p_percent"
    return rules


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
    from safemicro.service.differencing import _one_blas_thread

    with _one_blas_thread():
        return _protect(cells, dims, statistic, policy, margins, complete)


def _protect(cells, dims, statistic, policy, margins, complete) -> pl.DataFrame:
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
                    suppressed, lo, hi = _secondary(vals, name, eqs, rules, suppressed, policy, t.height, depth, caches[name])
                    if suppressed.sum() != before:
                        changed = True
                    if (statistic == "count" and name == "n") or (statistic == "sum" and name == "total"):
                        lower, upper = lo, hi
                for i in np.flatnonzero(suppressed):
                    if rules[i] is None:
                        rules[i] = "secondary"
            if policy.rounding_base and statistic in ("count", "sum"):
                lower, upper = _rounded_intervals(eqs, n if statistic == "count" else total, rules, suppressed, policy, statistic)
    return _assemble(t, dims, statistic, policy, rules, suppressed, lower, upper)


def _rounded_intervals(eqs: Equations, values: np.ndarray, rules, suppressed: np.ndarray, policy: ProtectionPolicy, statistic: str):
    """Intervals of the suppressed cells as an analyst sees them when released values are
    rounded: every released cell is only known to lie within half a base of its value."""
    base = float(policy.rounding_base)
    n_cells = len(values)
    scale = max(1.0, float(np.abs(values).max())) if n_cells else 1.0
    a_eq, a_ub = _system(eqs, n_cells, values, 1e-9 * scale)
    floor = 0.0 if (statistic == "count" or policy.nonnegative) else -np.inf
    prior_lo, prior_hi = _prior_bounds(rules, suppressed, policy, statistic)
    rounded = np.floor(values / base + 0.5) * base
    lb = np.where(suppressed, prior_lo, np.maximum(floor, rounded - base / 2.0))
    ub = np.where(suppressed, prior_hi, rounded + base / 2.0)
    lb = np.where(np.isnan(lb), floor, lb)
    ub = np.where(np.isnan(ub), np.inf, ub)
    everything = np.arange(n_cells)
    lo, hi = suppressed_intervals(a_eq, a_ub, np.zeros(n_cells), everything, lb, ub, targets=np.flatnonzero(suppressed))
    return np.where(suppressed, lo, np.nan), np.where(suppressed, hi, np.nan)


def _prior_bounds(rules, suppressed, policy: ProtectionPolicy, statistic: str):
    """Interval of a suppressed cell known from its rule alone (no relations)."""
    lo = np.full(len(rules), np.nan)
    hi = np.full(len(rules), np.nan)
    for i, r in enumerate(rules):
        if not suppressed[i]:
            continue
        if statistic == "count" and r in ("threshold", "zero"):
            lo[i] = 0.0 if policy.zeros_disclosive or policy.hide_presence else 1.0
            hi[i] = policy.threshold - 1.0 if r == "threshold" else 0.0
        elif statistic in ("count", "sum"):
            lo[i] = 0.0 if (statistic == "count" or policy.nonnegative) else -np.inf
            hi[i] = np.inf
    return lo, hi


def _secondary(values, name, eqs, rules, suppressed, policy: ProtectionPolicy, n_cells: int, depth: np.ndarray, cache: dict | None = None):
    """Grow the suppression pattern until every suppressed cell's interval is wide enough."""
    scale = max(1.0, float(np.abs(values).max())) if len(values) else 1.0
    a_eq, a_ub = _system(eqs, n_cells, values, 1e-9 * scale)
    count = name == "n"
    # what the analyst knows a priori about each cell
    lb = np.zeros(n_cells) if (count or policy.nonnegative) else np.full(n_cells, -np.inf)
    ub = np.full(n_cells, np.inf)
    if count:
        for i, r in enumerate(rules):
            if r == "threshold":
                lb[i] = 0.0 if policy.zeros_disclosive or policy.hide_presence else 1.0
                ub[i] = policy.threshold - 1.0
            elif r == "zero":
                ub[i] = 0.0
    width_default = policy.protection_width if policy.protection_width is not None else max(1, policy.threshold // 3)
    pct = (policy.protection_percent if policy.protection_percent is not None else policy.p_percent) / 100.0
    min_width = 1.0 if count else 1e-6 * scale
    required = np.zeros(n_cells)
    for i, r in enumerate(rules):
        if r is None or r == "secondary":
            required[i] = min_width
        elif count:
            required[i] = max(min_width, width_default)
        else:
            required[i] = max(min_width, pct * abs(values[i]))
        required[i] = min(required[i], ub[i] - lb[i])  # never more than the prior allows
    members = [np.concatenate([[p], k]) for p, k in zip(eqs.parents, eqs.children)]
    suppressed = suppressed.copy()
    rel_of = np.concatenate([np.full(len(m), r) for r, m in enumerate(members)]) if members else np.zeros(0, dtype=np.int64)
    cell_of = np.concatenate(members) if members else np.zeros(0, dtype=np.int64)

    def opens() -> np.ndarray:
        """Per cell: relations it is in that hold no suppressed cell yet."""
        hidden = np.bincount(rel_of, weights=suppressed[cell_of].astype(float), minlength=len(members))
        return np.bincount(cell_of, weights=(hidden[rel_of] == 0).astype(float), minlength=n_cells)

    # with hidden presence, the cells a released margin hides must together hold at least
    # `threshold` contributors: fewer (or none) would be a small or empty group determined
    # as the margin less the released cells
    mass = count and policy.hide_presence

    # structural pass: no relation may hold exactly one suppressed cell
    def close() -> None:
        changed = True
        while changed:
            changed = False
            for mem in members:
                sup = suppressed[mem]
                if sup.sum() == 1:
                    pick = _cheapest(mem[~sup], values, depth, required[mem[sup][0]], opens())
                    if pick is not None:
                        suppressed[pick] = True
                        changed = True
                elif mass and sup.any() and not sup[0]:  # mem[0] is the margin
                    short = policy.threshold - values[mem[1:][sup[1:]]].sum()
                    if short > 0:
                        kids = mem[1:][~sup[1:]]
                        pick = _cheapest(kids, values, depth, short, opens()) if len(kids) else int(mem[0])
                        suppressed[pick] = True
                        changed = True

    close()
    # audit pass: exact intervals by LP, add suppressions next to any cell still too exposed
    cache = {} if cache is None else cache
    primary = np.array([r is not None and r != "secondary" for r in rules])
    for _ in range(n_cells):
        idx = np.flatnonzero(suppressed)
        det = _determined(a_eq, idx)
        if det.any():  # cheap rank test first: no LP needed to know these must be hidden better
            bad = list(np.flatnonzero(det))
        else:
            # LPs for the primary cells first; all cells once those are fine
            focus = idx[primary[idx]]
            lo_f, hi_f = suppressed_intervals(a_eq, a_ub, values, idx, lb, ub, cache, targets=focus, need=required)
            bad = [k for k in np.flatnonzero(primary[idx]) if hi_f[k] - lo_f[k] + 1e-9 < required[idx[k]]]
            if not bad:
                lo, hi = suppressed_intervals(a_eq, a_ub, values, idx, lb, ub, cache, need=required)
                bad = [k for k in range(len(idx)) if hi[k] - lo[k] + 1e-9 < required[idx[k]]]
                if not bad:  # exact intervals for the output
                    lo, hi = suppressed_intervals(a_eq, a_ub, values, idx, lb, ub, cache)
                    if policy.hide_presence:  # a lower bound above 0 would tell that someone is there
                        bad = [k for k in range(len(idx)) if rules[idx[k]] == "threshold" and lo[k] > 1e-9]
                if not bad:
                    lower = np.full(n_cells, np.nan)
                    upper = np.full(n_cells, np.nan)
                    lower[idx], upper[idx] = lo, hi
                    return suppressed, lower, upper
        picks = set()
        open_rel = opens()
        for k in bad:  # one more suppression next to each exposed cell
            cell = idx[k]
            cand = np.unique(np.concatenate([m for m in members if cell in m] or [np.zeros(0, dtype=np.int64)]))
            cand = cand[~suppressed[cand]]
            cand = cand[~np.isin(cand, list(picks))] if picks else cand
            pick = _cheapest(cand, values, depth, required[cell], open_rel)
            if pick is not None:
                picks.add(pick)
        if not picks:  # widen the neighbourhood: any released cell related to a suppressed one
            rel = np.unique(np.concatenate([m for m in members if suppressed[m].any()] or [np.zeros(0, dtype=np.int64)]))
            rel = rel[~suppressed[rel]]
            pick = _cheapest(rel, values, depth, 0.0, open_rel)
            if pick is None:  # everything related is hidden already: report what is left
                lo, hi = suppressed_intervals(a_eq, a_ub, values, idx, lb, ub, cache)
                lower = np.full(n_cells, np.nan)
                upper = np.full(n_cells, np.nan)
                lower[idx], upper[idx] = lo, hi
                return suppressed, lower, upper
            picks.add(pick)
        suppressed[list(picks)] = True
        close()
    raise AssertionError("secondary suppression did not converge")  # pragma: no cover


def _cheapest(candidates: np.ndarray, values: np.ndarray, depth: np.ndarray, need: float, opens: np.ndarray | None = None) -> int | None:
    """The released cell whose suppression costs least: one that can hide at least ``need``
    (its value is that large), then one that opens the fewest relations without any hidden
    cell yet (each would need a further suppression), then inner cells before margins, then
    the smallest value."""
    if len(candidates) == 0:
        return None
    v = np.abs(values[candidates])
    short = (v < need).astype(int)
    new = opens[candidates] if opens is not None else np.zeros(len(candidates), dtype=int)
    order = np.lexsort((candidates, v, depth[candidates], new, short))
    return int(candidates[order[0]])


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
        lo = np.where(suppressed, lo, np.maximum(0.0, rounded - base / 2.0) if policy.nonnegative or statistic == "count" else rounded - base / 2.0)
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
