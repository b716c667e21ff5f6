"""The compiled kernels of MDAV microaggregation (:mod:`safemicro.methods.aggregation`).

A k-d tree over the records keeps each box's count, sums and lowest/highest row numbers up
to date as records leave; :func:`_farthest` and :func:`_nearest` search it with bounds that
are exact limits of sdcMicro's float32 distance, :func:`_mdav` forms the groups and
:func:`_group_means` replaces values by their group's means. Compiled by numba on first
use (:func:`_jit`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

# -- compiled kernels -----------------------------------------------------------------------
# Plain Python below, compiled with numba on first use (importing numba costs ~0.3 s, so
# the CLI only pays for it when it microaggregates). A k-d tree over the records is a
# tuple ``T = (X, rows, alive, lo, hi, cnt, sums, minrow, maxrow, d0, maxd0, start, end,
# first_leaf)``; node 0 is the root, node i has children 2i+1 and 2i+2, and every leaf
# sits at the same depth. X holds the records in tree order, rows their row numbers.


def _dist(X, i, q, w):
    """Scaled squared distance of record i to q, rounded to float32 as in sdcMicro."""
    acc = 0.0
    for v in range(X.shape[1]):
        t = X[i, v] - q[v]
        acc += (t * t) * w[v]
    return np.float32(acc)


def _far_bound(lo, hi, node, q, w):
    """An upper limit of _dist over the node's box (same operations, so never below)."""
    acc = 0.0
    for v in range(q.shape[0]):
        a = q[v] - lo[node, v]
        b = hi[node, v] - q[v]
        t = a if a > b else b
        acc += (t * t) * w[v]
    return np.float32(acc)


def _near_bound(lo, hi, node, q, w):
    """A lower limit of _dist over the node's box."""
    acc = 0.0
    for v in range(q.shape[0]):
        t = 0.0
        if q[v] < lo[node, v]:
            t = lo[node, v] - q[v]
        elif q[v] > hi[node, v]:
            t = q[v] - hi[node, v]
        acc += (t * t) * w[v]
    return np.float32(acc)


def _refresh(T, node):
    """Recompute a leaf's summary from its remaining records, then its ancestors'."""
    X, rows, alive, lo, hi, cnt, sums, minrow, maxrow, d0, maxd0, start, end, first_leaf = T
    p = X.shape[1]
    c = 0
    rmin = np.int64(1) << 62
    rmax = np.int64(-1)
    dmax = -1.0
    for v in range(p):
        lo[node, v] = np.inf
        hi[node, v] = -np.inf
        sums[node, v] = 0.0
    for i in range(start[node], end[node]):
        if alive[i]:
            c += 1
            for v in range(p):
                x = X[i, v]
                sums[node, v] += x
                if x < lo[node, v]:
                    lo[node, v] = x
                if x > hi[node, v]:
                    hi[node, v] = x
            rmin = min(rmin, rows[i])
            rmax = max(rmax, rows[i])
            dmax = max(dmax, d0[i])
    cnt[node] = c
    minrow[node] = rmin
    maxrow[node] = rmax
    maxd0[node] = dmax
    while node > 0:
        node = (node - 1) // 2
        a = 2 * node + 1
        b = a + 1
        cnt[node] = cnt[a] + cnt[b]
        minrow[node] = min(minrow[a], minrow[b])
        maxrow[node] = max(maxrow[a], maxrow[b])
        maxd0[node] = max(maxd0[a], maxd0[b])
        for v in range(p):
            sums[node, v] = sums[a, v] + sums[b, v]
            lo[node, v] = min(lo[a, v], lo[b, v])
            hi[node, v] = max(hi[a, v], hi[b, v])


def _farthest(T, q, exclude, w, shift):
    """Position of the remaining record farthest from q (lowest row number on ties), and
    how many records the search measured.

    ``shift`` >= 0: q lies that far (scaled, not squared) from the centroid the d0 values
    were measured from, which bounds every subtree by (sqrt(max d0) + shift)².
    """
    X, rows, alive, lo, hi, cnt, sums, minrow, maxrow, d0, maxd0, start, end, first_leaf = T
    best = np.float32(-1.0)
    pos = -1
    brow = np.int64(1) << 62
    measured = 0
    stack = np.empty(256, np.int64)
    bound = np.empty(256, np.float32)
    stack[0] = 0
    bound[0] = np.float32(np.inf)
    sp = 1
    while sp > 0:
        sp -= 1
        node = stack[sp]
        if bound[sp] < best or (bound[sp] == best and minrow[node] > brow):
            continue
        if node >= first_leaf:
            measured += end[node] - start[node]
            for i in range(start[node], end[node]):
                if alive[i] and i != exclude:
                    d = _dist(X, i, q, w)
                    if d > best or (d == best and rows[i] < brow):
                        best = d
                        pos = i
                        brow = rows[i]
            continue
        a = 2 * node + 1
        b = a + 1
        ua = np.float32(-2.0)
        ub = np.float32(-2.0)
        if cnt[a] > 0:
            ua = _far_bound(lo, hi, a, q, w)
            if shift >= 0.0:
                t = np.sqrt(maxd0[a]) + shift
                ua = min(ua, np.float32(t * t * (1.0 + 1e-12)))
        if cnt[b] > 0:
            ub = _far_bound(lo, hi, b, q, w)
            if shift >= 0.0:
                t = np.sqrt(maxd0[b]) + shift
                ub = min(ub, np.float32(t * t * (1.0 + 1e-12)))
        first_a = ua > ub or (ua == ub and minrow[a] < minrow[b])
        for child, u in ((b, ub), (a, ua)) if first_a else ((a, ua), (b, ub)):
            if u >= best:
                stack[sp] = child
                bound[sp] = u
                sp += 1
    return pos, measured


def _nearest(T, q, exclude, kk, bd, bp, br, w):
    """The kk remaining records nearest to q (higher row number first on ties) into
    bd/bp/br (distance, position, row), nearest first."""
    X, rows, alive, lo, hi, cnt, sums, minrow, maxrow, d0, maxd0, start, end, first_leaf = T
    for t in range(kk):
        bd[t] = np.float32(np.inf)
        bp[t] = -1
        br[t] = -1
    last = kk - 1
    stack = np.empty(256, np.int64)
    bound = np.empty(256, np.float32)
    stack[0] = 0
    bound[0] = np.float32(0.0)
    sp = 1
    while sp > 0:
        sp -= 1
        node = stack[sp]
        if bound[sp] > bd[last] or (bound[sp] == bd[last] and maxrow[node] < br[last]):
            continue
        if node >= first_leaf:
            for i in range(start[node], end[node]):
                if alive[i] and i != exclude:
                    d = _dist(X, i, q, w)
                    r = rows[i]
                    if d < bd[last] or (d == bd[last] and r > br[last]):
                        t = last
                        while t > 0 and (bd[t - 1] > d or (bd[t - 1] == d and br[t - 1] < r)):
                            bd[t] = bd[t - 1]
                            bp[t] = bp[t - 1]
                            br[t] = br[t - 1]
                            t -= 1
                        bd[t] = d
                        bp[t] = i
                        br[t] = r
            continue
        a = 2 * node + 1
        b = a + 1
        la = _near_bound(lo, hi, a, q, w) if cnt[a] > 0 else np.float32(np.inf)
        lb = _near_bound(lo, hi, b, q, w) if cnt[b] > 0 else np.float32(np.inf)
        first_a = la < lb or (la == lb and maxrow[a] > maxrow[b])
        for child, u in ((b, lb), (a, la)) if first_a else ((a, la), (b, lb)):
            if u <= bd[last]:
                stack[sp] = child
                bound[sp] = u
                sp += 1


def _build(X0, w, leaf):
    """The k-d tree: median splits on the widest scaled spread, leaves of <= leaf records."""
    n, p = X0.shape
    depth = 0
    while (n + (1 << depth) - 1) >> depth > leaf:
        depth += 1
    n_nodes = (1 << (depth + 1)) - 1
    first_leaf = (1 << depth) - 1
    start = np.empty(n_nodes, np.int64)
    end = np.empty(n_nodes, np.int64)
    perm = np.arange(n)
    start[0] = 0
    end[0] = n
    for node in range(first_leaf):
        s0 = start[node]
        e0 = end[node]
        dim = 0
        widest = -1.0
        for v in range(p):
            mn = np.inf
            mx = -np.inf
            for i in range(s0, e0):
                x = X0[perm[i], v]
                mn = min(mn, x)
                mx = max(mx, x)
            spread = (mx - mn) * (mx - mn) * w[v]
            if spread > widest:
                widest = spread
                dim = v
        seg = perm[s0:e0].copy()
        o = np.argsort(X0[seg, dim], kind="mergesort")  # stable: equal values stay in row order
        perm[s0:e0] = seg[o]
        mid = s0 + (e0 - s0 + 1) // 2
        start[2 * node + 1] = s0
        end[2 * node + 1] = mid
        start[2 * node + 2] = mid
        end[2 * node + 2] = e0
    X = np.empty((n, p))
    for i in range(n):
        X[i] = X0[perm[i]]
    T = (
        X,
        perm,
        np.ones(n, np.bool_),
        np.empty((n_nodes, p)),
        np.empty((n_nodes, p)),
        np.zeros(n_nodes, np.int64),
        np.empty((n_nodes, p)),
        np.empty(n_nodes, np.int64),
        np.empty(n_nodes, np.int64),
        np.zeros(n),
        np.empty(n_nodes),
        start,
        end,
        first_leaf,
    )
    for node in range(first_leaf, n_nodes):
        _refresh(T, node)
    return T


def _mdav(X0, w, k, leaf):
    """MDAV groups of the rows of X0: row numbers in group-formation order, group sizes."""
    return _mdav_core(X0, w, k, leaf, np.empty(0, np.int64))


def _mdav_core(X0, w, k, leaf, far):
    """MDAV; with ``far`` (the rows by decreasing distance to a fixed centre) each round's
    first record is the remaining one first in ``far`` instead of the one farthest from the
    centroid of the remaining records (``microaggregation(method="rmd")``)."""
    n, p = X0.shape
    T = _build(X0, w, leaf)
    X, rows, alive, lo, hi, cnt, sums, minrow, maxrow, d0, maxd0, start, end, first_leaf = T
    n_nodes = cnt.shape[0]
    leaf_of = np.empty(n, np.int64)
    for node in range(first_leaf, n_nodes):
        leaf_of[start[node] : end[node]] = node
    order = np.empty(n, np.int64)
    sizes = np.empty(n // k + 1, np.int64)
    n_groups = 0
    filled = 0
    q = np.empty(p)
    c0 = np.zeros(p)
    bd = np.empty(k - 1, np.float32)
    bp = np.empty(k - 1, np.int64)
    br = np.empty(k - 1, np.int64)
    work = 0  # records the centroid searches measured since d0 was measured
    stale = True
    fixed = far.shape[0] > 0
    pos_of = np.empty(n if fixed else 0, np.int64)  # tree position of each row
    for i in range(pos_of.shape[0]):
        pos_of[rows[i]] = i
    cursor = 0
    while cnt[0] >= 2 * k:
        m = cnt[0]
        if fixed:
            while not alive[pos_of[far[cursor]]]:
                cursor += 1
            r = pos_of[far[cursor]]
        else:
            for v in range(p):
                q[v] = sums[0, v] / m
            shift = 0.0
            for v in range(p):
                t = q[v] - c0[v]
                shift += t * t * w[v]
            shift = np.sqrt(shift)
            if stale or work > m:  # measure d0 from this centroid
                for i in range(n):
                    if alive[i]:
                        d0[i] = 0.0
                        for v in range(p):
                            t = X[i, v] - q[v]
                            d0[i] += (t * t) * w[v]
                for node in range(first_leaf, n_nodes):
                    _refresh(T, node)
                c0[:] = q
                shift = 0.0
                work = 0
                stale = False
            r, measured = _farthest(T, q, -1, w, shift)
            work += measured
        two = m >= 3 * k
        for rep in range(2 if two else 1):
            q[:] = X[r]
            _nearest(T, q, r, k - 1, bd, bp, br, w)
            s = _farthest(T, q, r, w, -1.0)[0] if rep == 0 and two else -1
            order[filled] = rows[r]
            filled += 1
            alive[r] = False
            for t in range(k - 1):
                order[filled] = br[t]
                filled += 1
                alive[bp[t]] = False
            _refresh(T, leaf_of[r])
            for t in range(k - 1):
                _refresh(T, leaf_of[bp[t]])
            sizes[n_groups] = k
            n_groups += 1
            r = s
    rest = np.sort(rows[alive])
    order[filled:] = rest
    if len(rest) > 0:
        sizes[n_groups] = len(rest)
        n_groups += 1
    return order, sizes[:n_groups]


def _group_means(x, members, starts):
    """x with each group's observed cells replaced by the group mean of that variable,
    summed in member order (group formation order, as sdcMicro)."""
    out = x.copy()
    for g in range(starts.shape[0] - 1):
        for v in range(x.shape[1]):
            acc = 0.0
            c = 0
            for t in range(starts[g], starts[g + 1]):
                value = x[members[t], v]
                if not np.isnan(value):
                    acc += value
                    c += 1
            if c > 0:
                mean = acc / c
                for t in range(starts[g], starts[g + 1]):
                    if not np.isnan(x[members[t], v]):
                        out[members[t], v] = mean
    return out


_KERNELS = (
    "_dist",
    "_far_bound",
    "_near_bound",
    "_refresh",
    "_farthest",
    "_nearest",
    "_build",
    "_mdav_core",
    "_mdav",
    "_group_means",
)


@functools.cache
def _jit() -> dict[str, Any]:
    """Compile the kernels (cached on disk by numba), callees first so callers see them."""
    import numba

    namespace = globals()
    for name in _KERNELS:
        if not isinstance(namespace[name], numba.core.dispatcher.Dispatcher):
            namespace[name] = numba.njit(cache=True)(namespace[name])
    return {name: namespace[name] for name in _KERNELS}
