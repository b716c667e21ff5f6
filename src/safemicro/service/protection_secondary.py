"""Secondary suppression over a table's margin relations, audited by linear programming.

For each suppressed cell the smallest and largest value consistent with every released cell
and margin is computed (``scipy.optimize.linprog``, HiGHS); more cells are suppressed until
every interval is wide enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from safemicro.service.protection_rules import ProtectionPolicy, _prior_bounds

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
            joined = kids.join(
                par.select(others + [pl.col("_i").alias("_p")]), on=others, how="inner", nulls_equal=True
            )
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
            rows = np.abs(a[:, cols]).sum(axis=1) > 0  # noqa: B023 (called within the iteration)
            if not rows.any():
                return None, None
            sub = a[rows]
            return sub[:, cols], -(sub[:, released] @ values[released])  # noqa: B023

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


# -- secondary suppression ------------------------------------------------------------------


def _rounded_intervals(
    eqs: Equations, values: np.ndarray, rules, suppressed: np.ndarray, policy: ProtectionPolicy, statistic: str
):
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


def _knowledge(values, name, eqs: Equations, rules, policy: ProtectionPolicy, n_cells: int):
    """The table's relations, what the analyst knows a priori about each cell (bounds) and
    the interval width each suppressed cell must keep."""
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
    return a_eq, a_ub, lb, ub, required, count


def _secondary(
    values,
    name,
    eqs,
    rules,
    suppressed,
    policy: ProtectionPolicy,
    n_cells: int,
    depth: np.ndarray,
    cache: dict | None = None,
):
    """Grow the suppression pattern until every suppressed cell's interval is wide enough."""
    a_eq, a_ub, lb, ub, required, count = _knowledge(values, name, eqs, rules, policy, n_cells)
    members = [np.concatenate([[p], k]) for p, k in zip(eqs.parents, eqs.children)]
    suppressed = suppressed.copy()
    rel_of = (
        np.concatenate([np.full(len(m), r) for r, m in enumerate(members)]) if members else np.zeros(0, dtype=np.int64)
    )
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
            rel = np.unique(
                np.concatenate([m for m in members if suppressed[m].any()] or [np.zeros(0, dtype=np.int64)])
            )
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


def _cheapest(
    candidates: np.ndarray, values: np.ndarray, depth: np.ndarray, need: float, opens: np.ndarray | None = None
) -> int | None:
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
