"""How many records a batch of conjunctive predicates matches, compiled with numba.

A predicate is a row of (column, operator, value) conditions, all of which must hold.
Missing values (NaN) fail every comparison, like SQL and Polars, except "is missing".
Each condition is turned into an interval lo ≤ x ≤ hi first, so a condition costs two
comparisons whatever its operator. With ``cap`` the scan of a predicate stops once it has
matched ``cap`` records: the singling-out search asks only "exactly one?", and most
predicates it tries match many records, so it reads a few rows of each instead of all.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

EQ, NE, GT, LT, GE, LE, NULL, NOT_NULL = range(8)


def count_matches(
    x: np.ndarray, cols: np.ndarray, ops: np.ndarray, vals: np.ndarray, cap: int | None = None
) -> np.ndarray:
    """Records of ``x`` (n, d) matched by each predicate (rows (Q, c) of column/op/value),
    at most ``cap`` each when given."""
    q = len(cols)
    if q == 0:
        return np.zeros(0, dtype=np.int64)
    v = vals.astype(np.float64)
    lo = np.select(
        [(ops == EQ) | (ops == GE), ops == GT, ops == NULL], [v, np.nextafter(v, np.inf), np.inf], default=-np.inf
    )
    hi = np.select(
        [(ops == EQ) | (ops == LE), ops == LT, ops == NULL], [v, np.nextafter(v, -np.inf), -np.inf], default=np.inf
    )
    limit = x.shape[0] + 1 if cap is None else int(cap)
    return _jit()(
        np.ascontiguousarray(x, dtype=np.float64),
        np.ascontiguousarray(cols, dtype=np.int64),
        np.ascontiguousarray(ops, dtype=np.int64),
        np.ascontiguousarray(v),
        lo,
        hi,
        limit,
    )


def _count(x, cols, ops, v, lo, hi, cap):
    n = x.shape[0]
    q, c = cols.shape
    out = np.zeros(q, dtype=np.int64)
    for p in range(q):
        hits = 0
        for i in range(n):
            ok = True
            for j in range(c):
                xv = x[i, cols[p, j]]
                o = ops[p, j]
                if o == NULL:
                    ok = np.isnan(xv)
                else:
                    ok = xv >= lo[p, j] and xv <= hi[p, j] and not (o == NE and xv == v[p, j])
                if not ok:
                    break
            if ok:
                hits += 1
                if hits >= cap:
                    break
        out[p] = hits
    return out


@functools.cache
def _jit() -> Any:
    """The kernel compiled on first use (cached on disk by numba; importing numba costs
    ~0.3 s, so commands that never single out do not pay for it)."""
    import numba

    return numba.njit(cache=True)(_count)
