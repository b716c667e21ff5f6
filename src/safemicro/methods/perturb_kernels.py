"""The numerical kernels of rank swapping and data shuffling.

* :func:`_shuffle_keys`: draws y* from a normal model on normal scores of the variables
  given the non-confidential ones (Muralidhar & Sarathy 2006);
* :func:`_swap_ranks`: each rank's partner within the window (Moore 1996), with a Fenwick
  tree over the free ranks; compiled by numba on first use (:func:`_jit`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


def _complete(a: np.ndarray) -> np.ndarray:
    return ~np.isnan(a).any(axis=1)


def _normal_scores(a: np.ndarray) -> np.ndarray:
    """Φ⁻¹((rank − ½)/n) per column over its observed values (average ranks on ties)."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    out = np.full(a.shape, np.nan)
    for j in range(a.shape[1]):
        ok = ~np.isnan(a[:, j])
        if ok.any():
            out[ok, j] = ndtri((rankdata(a[ok, j]) - 0.5) / ok.sum())
    return out


def _shuffle_keys(x: np.ndarray, s: np.ndarray, rng) -> np.ndarray:
    """y*: draws from the normal-score model of x given s (see :func:`shuffle`)."""
    n, p = x.shape
    if s.shape[1] == 0:
        return rng.standard_normal((n, p))
    zx, zs = _normal_scores(x), _normal_scores(s)
    both = np.hstack([zx, zs])
    full = _complete(both)
    if full.sum() < 3:
        return rng.standard_normal((n, p))
    corr = np.atleast_2d(np.corrcoef(both[full], rowvar=False))
    corr = np.nan_to_num(corr)  # a constant column correlates with nothing
    np.fill_diagonal(corr, 1.0)
    sxx, sxs, sss = corr[:p, :p], corr[:p, p:], corr[p:, p:]
    beta = np.linalg.lstsq(sss, sxs.T, rcond=None)[0].T  # Σ_XS Σ_SS⁻¹
    resid = sxx - beta @ sxs.T

    def draw(cov: np.ndarray, m: int) -> np.ndarray:
        vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
        return rng.standard_normal((m, p)) @ (vecs * np.sqrt(np.clip(vals, 0.0, None))).T

    y = draw(sxx, n)  # records with a by value missing: the unconditional draw
    known = _complete(zs)
    y[known] = zs[known] @ beta.T + draw(resid, int(known.sum()))
    return y


def _swap_ranks(width, u):
    """Partner rank of every rank (itself when unswapped), walking up the ranks.

    A Fenwick tree counts the ranks not yet swapped, so the ⌊u·c⌋-th free rank among the
    c free ones in the window is found in O(log n).
    """
    m = u.shape[0]
    partner = np.arange(m)
    tree = np.zeros(m + 1, np.int64)
    for i in range(1, m + 1):  # every rank starts free
        tree[i] += 1
        j = i + (i & -i)
        if j <= m:
            tree[j] += tree[i]
    top = 1
    while top * 2 <= m:
        top *= 2
    free = np.ones(m, np.bool_)
    for i in range(m):
        if not free[i] or width == 0:
            continue
        free[i] = False
        j = i + 1
        while j <= m:
            tree[j] -= 1
            j += j & -j
        hi = min(i + width, m - 1)
        below = 0  # free ranks <= i (i itself just left)
        j = i + 1
        while j > 0:
            below += tree[j]
            j -= j & -j
        upto = 0
        j = hi + 1
        while j > 0:
            upto += tree[j]
            j -= j & -j
        c = upto - below
        if c == 0:
            continue
        want = below + min(int(u[i] * c), c - 1) + 1  # the want-th free rank overall
        pos = 0
        step = top
        while step > 0:
            if pos + step <= m and tree[pos + step] < want:
                pos += step
                want -= tree[pos]
            step //= 2
        r = pos  # 0-based rank
        free[r] = False
        j = r + 1
        while j <= m:
            tree[j] -= 1
            j += j & -j
        partner[i] = r
        partner[r] = i
    return partner


@functools.cache
def _jit() -> dict[str, Any]:
    import numba

    return {"_swap_ranks": numba.njit(cache=True)(_swap_ranks)}
