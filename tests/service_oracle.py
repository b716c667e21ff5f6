"""Independent oracles for the service's protection properties (used by the P and S tests).

Nothing here calls safemicro.service code: predicates are evaluated row by row in plain
Python, margin relations are rebuilt from the output rows with dictionaries, and
determination is decided by least squares (``numpy.linalg.lstsq``) and mixed-integer
programming (``scipy.optimize.milp``), not by the guard's incremental basis or the
protection module's null-space/LP code.

- ``membership(records, cells)``: cells × records 0/1 matrix.
- ``recoverable(released_cells, records, target) -> bool``: is the target cell's count (or sum)
  a linear combination of the released cells' counts?
- ``small_group_determined(released_cells, records, threshold) -> int | None``: the size of the
  smallest set of 1..threshold-1 records whose count is a linear combination of released
  cells (None when there is none); with ``grid``, unions of regions of the value space,
  0 for empty ones.
- ``empty_regions_proved(released_cells, records, grid) -> bool``: one LP for the same
  question over all regions at once (a non-negative combination of empty regions is 0).
- ``value_space(released_cells, groups)``: the points of the value space the cells tell
  apart (the ``grid`` of the two above), from the possible tuples of each group of columns.
- ``empty_regions_bounded(released_cells, records, grid) -> list[int]``: regions where nobody
  is that the released cells prove empty (LP, counts never negative).
- ``table_recoverable(table, dims) -> list[int]``: rows of a protected table (protect's output)
  whose suppressed value follows linearly from released cells and margins.
- ``table_interval(table, dims, values, row, bounds) -> (lo, hi)``: LP interval of one cell
  given every released value of the table.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import polars as pl


def _matches(value, cond) -> bool:
    ((op, arg),) = cond.items()
    if value is None:
        return False
    if isinstance(value, (_dt.date, _dt.datetime)):
        conv = (
            (lambda v: _dt.date.fromisoformat(v) if isinstance(v, str) else v)
            if not isinstance(value, _dt.datetime)
            else (lambda v: _dt.datetime.fromisoformat(v) if isinstance(v, str) else v)
        )
    else:
        conv = lambda v: v  # noqa: E731
    if op == "in":
        return value in [conv(a) for a in arg]
    if op == "eq":
        return value == conv(arg)
    if op == "between":
        return conv(arg[0]) <= value <= conv(arg[1])
    raise ValueError(op)


def membership(records: pl.DataFrame, cells: list[dict], unit: str | None = None) -> np.ndarray:
    """0/1 matrix: which records each predicate selects (row by row, plain Python); with
    ``unit``, which units (a unit is selected when any of its records is)."""
    rows = records.to_dicts()
    out = np.zeros((len(cells), len(rows)))
    for i, cell in enumerate(cells):
        for r, row in enumerate(rows):
            out[i, r] = all(_matches(row[c], cond) for c, cond in cell.items())
    if unit is None:
        return out
    ids = sorted({row[unit] for row in rows})
    pos = {u: j for j, u in enumerate(ids)}
    per_unit = np.zeros((len(cells), len(ids)))
    for r, row in enumerate(rows):
        per_unit[:, pos[row[unit]]] = np.maximum(per_unit[:, pos[row[unit]]], out[:, r])
    return per_unit


def _atoms(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns grouped by identical membership: (cells × atoms 0/1 matrix, atom sizes)."""
    if mat.shape[1] == 0:
        return np.zeros((mat.shape[0], 0)), np.zeros(0)
    cols, inverse, sizes = np.unique(mat.T, axis=0, return_inverse=True, return_counts=True)
    return cols.T, sizes.astype(float)


def _in_row_space(a: np.ndarray, v: np.ndarray) -> bool:
    if a.shape[0] == 0:
        return not np.any(v)
    y, *_ = np.linalg.lstsq(a.T, v, rcond=None)
    return float(np.abs(a.T @ y - v).max()) < 1e-6


def recoverable(released_cells: list[dict], records: pl.DataFrame, target: dict, unit: str | None = None) -> bool:
    """Is ``target``'s count a linear combination of the released cells' counts (for every
    possible data consistent with the membership structure, i.e. its atom vector is in the
    row space of the released cells' atom vectors)?"""
    mat = membership(records, list(released_cells) + [target], unit)
    atoms, _ = _atoms(mat)
    return _in_row_space(atoms[:-1], atoms[-1])


def _grid_membership(grid: pl.DataFrame, cells: list[dict]) -> np.ndarray:
    """:func:`membership` for the points of a value space, with Polars filters (thousands of
    points: row by row took a minute); the same conditions, still no safemicro code."""
    out = np.zeros((len(cells), grid.height))
    for i, cell in enumerate(cells):
        mask = pl.lit(True)
        for c, cond in cell.items():
            ((op, arg),) = cond.items()
            col = pl.col(c)
            if op == "in":
                part = col.is_in(pl.Series(list(arg), dtype=grid.schema[c]).implode())
            elif op == "eq":
                part = col == arg
            else:
                part = col.is_between(arg[0], arg[1], closed="both")
            mask = mask & part
        out[i] = grid.select(mask.alias("m"))["m"].to_numpy()
    return out


def _records_membership(records: pl.DataFrame, cells: list[dict], unit: str | None, grid) -> np.ndarray:
    """Row by row (:func:`membership`), or with Polars filters alongside a value space (its
    tests have thousands of records and cells: the same conditions)."""
    if grid is None or unit is not None:
        return membership(records, cells, unit)
    return _grid_membership(records, cells)


def _with_grid(mat: np.ndarray, released_cells: list[dict], grid: pl.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Atoms over the records and, with ``grid`` (every possible point of the value space,
    one row each), over the points too: (cells × atoms, records per atom, 0 for a region
    where nobody is)."""
    if grid is None:
        return _atoms(mat)
    pts = _grid_membership(grid, released_cells)
    both = np.hstack([mat, pts])
    weight = np.concatenate([np.ones(mat.shape[1]), np.zeros(pts.shape[1])])
    if both.shape[1] == 0:
        return np.zeros((both.shape[0], 0)), np.zeros(0)
    cols, inverse = np.unique(both.T, axis=0, return_inverse=True)
    sizes = np.bincount(inverse.ravel(), weights=weight, minlength=cols.shape[0])
    return cols.T, sizes


def small_group_determined(
    released_cells: list[dict],
    records: pl.DataFrame,
    threshold: int,
    unit: str | None = None,
    grid: pl.DataFrame | None = None,
    relax_empty: bool = False,
) -> int | None:
    """Smallest size of a determined set of 1..threshold-1 records (units with ``unit``) by
    MILP, or None. With ``grid`` (the value space's possible points over the predicates'
    columns) the sets are unions of regions of the value space, empty ones included, and a
    determined union of empty regions counts as size 0. With ``relax_empty`` empty regions
    may take any value in [0, 1] and only unions of 1..threshold-1 records are sought (a
    relaxation: a stronger check, fast with thousands of empty regions; pair it with
    :func:`empty_regions_proved` for the unions of empty regions)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    if not released_cells or threshold <= 1:
        return None
    mat = _records_membership(records, released_cells, unit, grid)
    atoms, sizes = _with_grid(mat, released_cells, grid)
    from scipy import sparse

    m, k = atoms.shape  # cells × atoms
    low = 0 if grid is not None and not relax_empty else 1
    keep = (sizes > 0) if relax_empty else np.ones(k, dtype=bool)  # atoms with a 0/1 variable
    kb = int(keep.sum())
    # variables: y (m, free), z (kb, binary); atoms^T y - z = 0 on those atoms; relaxed empty
    # regions: 0 <= atoms^T y <= 1 there; low <= sizes.z <= t-1, z not all 0
    ct = sparse.csr_matrix(atoms.T)
    cons = [
        LinearConstraint(sparse.hstack([ct[keep], -sparse.identity(kb)], format="csr"), -1e-9, 1e-9),
        LinearConstraint(np.concatenate([np.zeros(m), sizes[keep]])[None, :], low, threshold - 1),
        LinearConstraint(np.concatenate([np.zeros(m), np.ones(kb)])[None, :], 1, np.inf),
    ]
    if not keep.all():
        cons.append(LinearConstraint(sparse.hstack([ct[~keep], sparse.csr_matrix((k - kb, kb))], format="csr"), 0, 1))
    c = np.concatenate([np.zeros(m), sizes[keep]])
    lb = np.concatenate([np.full(m, -np.inf), np.zeros(kb)])
    ub = np.concatenate([np.full(m, np.inf), (sizes[keep] < threshold).astype(float)])  # large atoms: 0
    res = milp(c, constraints=cons, integrality=np.concatenate([np.zeros(m), np.ones(kb)]), bounds=Bounds(lb, ub))
    if res.status == 0:
        return int(round(res.fun))
    return None


def empty_regions_bounded(
    released_cells: list[dict], records: pl.DataFrame, grid: pl.DataFrame, unit: str | None = None, below=1e-6
) -> list[int]:
    """Regions of the value space (atoms over ``grid``'s points) where nobody is and that
    every count consistent with the released cells (x >= 0, LP) leaves empty: the largest
    count the region can hold is below ``below`` (0 up to rounding: the guard's rule; a
    largest count in (0, 1) would prove it empty too by integrality, which the guard does
    not model). Their indices; [] when none."""
    from scipy.optimize import linprog

    if not released_cells:
        return []
    mat = _records_membership(records, released_cells, unit, grid)
    atoms, sizes = _with_grid(mat, released_cells, grid)
    b = atoms @ sizes
    out = []
    for e in np.flatnonzero((sizes == 0) & atoms.any(axis=0)):
        c = np.zeros(len(sizes))
        c[e] = -1.0
        hi = linprog(c, A_eq=atoms, b_eq=b, bounds=(0, None), method="highs")
        if hi.status == 0 and -hi.fun < below:
            out.append(int(e))
    return out


def empty_regions_proved(released_cells: list[dict], records: pl.DataFrame, grid: pl.DataFrame) -> bool:
    """Is some region where nobody is proved empty by the released counts: a combination of
    released cells that is 0 on every region holding someone and non-negative, not all 0, on
    the empty ones (counts are never negative, so each empty region it weighs holds 0)?
    One LP over the cells' coefficients."""
    from scipy.optimize import linprog

    if not released_cells:
        return False
    mat = _records_membership(records, released_cells, None, grid)
    atoms, sizes = _with_grid(mat, released_cells, grid)
    full, empty = atoms[:, sizes > 0], atoms[:, sizes == 0]
    if empty.shape[1] == 0:
        return False
    m = atoms.shape[0]
    res = linprog(
        np.zeros(m),
        A_ub=-empty.T,
        b_ub=np.zeros(empty.shape[1]),
        A_eq=np.vstack([full.T, empty.sum(axis=1)[None, :]]),
        b_eq=np.concatenate([np.zeros(full.shape[1]), [1.0]]),
        bounds=(None, None),
        method="highs",
    )
    return res.status == 0


def value_space(released_cells: list[dict], groups: list[pl.DataFrame]) -> pl.DataFrame:
    """The possible points of the value space that the cells tell apart, one per combination:
    ``groups`` are frames of the possible tuples of linked columns (a unit and its parents;
    one column alone otherwise), independent of each other. Tuples of a group that every
    cell treats alike are one point (any of them stands for all: they fall in the same
    regions), then the product over groups."""
    import itertools

    used = {c for p in released_cells for c in p}
    reps = []
    for g in groups:
        cols = [c for c in g.columns if c in used]
        if not cols:
            continue
        seen: dict[tuple, dict] = {}
        for row in g.select(cols).unique().to_dicts():
            key = tuple(all(_matches(row[c], cond) for c, cond in p.items() if c in cols) for p in released_cells)
            seen.setdefault(key, row)
        reps.append(list(seen.values()))
    return pl.DataFrame([{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*reps)])


def _relations(table: pl.DataFrame, dims: list[str]) -> list[tuple[int, list[int]]]:
    keys = [tuple(r) for r in table.select(dims).iter_rows()]
    index = {k: i for i, k in enumerate(keys)}
    groups: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(keys):
        for j, v in enumerate(key):
            if v is None:
                continue
            parent = key[:j] + (None,) + key[j + 1 :]
            if parent in index:
                groups.setdefault((index[parent], j), []).append(i)
    return [(p, kids) for (p, _), kids in groups.items()]


def table_recoverable(table: pl.DataFrame, dims: list[str]) -> list[int]:
    """Suppressed rows of a protected table whose value is a linear combination of released
    values through the table's margin relations (assumed exact, as for counts of rows)."""
    rel = _relations(table, dims)
    suppressed = [i for i, s in enumerate(table.get_column("status").to_list()) if s == "suppressed"]
    if not suppressed or not rel:
        return []
    col = {c: j for j, c in enumerate(suppressed)}
    a = np.zeros((len(rel), len(suppressed)))
    for r, (p, kids) in enumerate(rel):
        for i, coef in [(p, 1.0)] + [(k, -1.0) for k in kids]:
            if i in col:
                a[r, col[i]] += coef
    out = []
    for i in suppressed:
        e = np.zeros(len(suppressed))
        e[col[i]] = 1.0
        if _in_row_space(a, e):
            out.append(i)
    return out


def table_interval(
    table: pl.DataFrame, dims: list[str], values: np.ndarray, row: int, bounds: list[tuple]
) -> tuple[float, float]:
    """LP min and max of ``values[row]`` over all values consistent with the released rows
    (equal to ``values`` there), the margin relations and per-row ``bounds``."""
    from scipy.optimize import linprog

    rel = _relations(table, dims)
    n = table.height
    released = np.array([s == "released" for s in table.get_column("status").to_list()])
    a = []
    for p, kids in rel:
        r = np.zeros(n)
        r[p] = 1.0
        r[kids] -= 1.0
        a.append(r)
    b = [(values[i], values[i]) if released[i] else bounds[i] for i in range(n)]
    c = np.zeros(n)
    c[row] = 1.0
    kw = dict(A_eq=np.array(a) if a else None, b_eq=np.zeros(len(a)) if a else None, bounds=b, method="highs")
    lo = linprog(c, **kw)
    hi = linprog(-c, **kw)
    return (lo.fun if lo.status == 0 else -np.inf, -hi.fun if hi.status == 0 else np.inf)


def smoothed_quantile(values, q: float, threshold: int, step: float):
    """The service's quantile rule in plain NumPy (independent of safemicro.service.quantiles):
    None unless at least T values lie at or below rank k = ceil(q n) and T above it; else the
    mean of the sorted values of ranks k-T+1 .. k+T rounded to a multiple of ``step``."""
    import math

    x = np.sort(np.asarray(values, dtype=float))
    n, t = len(x), int(threshold)
    k = math.ceil(q * n)
    if k < t or n - k < t:
        return None
    return math.floor(x[k - t : k + t].mean() / step + 0.5) * step
