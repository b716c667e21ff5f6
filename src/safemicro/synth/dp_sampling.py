"""Estimation and sampling helpers of the DP synthesizer: non-negative consistent tables
(simplex projection, IPF) and low-variance vectorised draws from conditional tables."""

from __future__ import annotations

import numpy as np


def _project_rows(y: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of y onto {x ≥ 0, Σx = total of that row}.

    Subtracting one level per row and clipping at 0 removes the noise on empty cells
    instead of keeping its positive half, as clipping alone would.
    """
    y = np.asarray(y, dtype=float)
    totals = np.asarray(totals, dtype=float)
    u = -np.sort(-y, axis=1)
    css = np.cumsum(u, axis=1) - totals[:, None]
    k = np.arange(1, y.shape[1] + 1)
    last = y.shape[1] - 1 - np.argmax((u - css / k > 0)[:, ::-1], axis=1)
    tau = css[np.arange(len(y)), last] / (last + 1)
    out = np.maximum(y - tau[:, None], 0.0)
    out[totals <= 0] = 0.0
    return out


def _ipf(t: np.ndarray, rows: np.ndarray, cols: np.ndarray, iters: int = 50) -> np.ndarray:
    """Scale non-negative tables (s, a, b) until their margins match rows (s, a) and cols (s, b)."""
    tot = np.maximum(rows.sum(axis=1), 1e-12)[:, None, None]
    t = t + 1e-6 * rows[:, :, None] * cols[:, None, :] / tot + 1e-12
    for _ in range(iters):
        for axis, target in ((2, rows), (1, cols)):
            have = t.sum(axis=axis)
            f = np.divide(target, have, out=np.zeros_like(have), where=have > 0)
            t *= np.expand_dims(f, axis)
    return t


def _systematic_u(parent: np.ndarray, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """One uniform per record, stratified within each parent group (low-variance sampling).

    The m records of a group get (j + U)/m, j = 0..m-1, in random order: draws from a
    group's conditional distribution then match it up to rounding instead of up to
    multinomial noise.
    """
    n = len(parent)
    order = np.lexsort((rng.random(n), parent))
    counts = np.bincount(parent, minlength=n_groups)
    start = np.cumsum(counts) - counts
    p = parent[order]
    u = np.empty(n)
    u[order] = (np.arange(n) - start[p] + rng.random(n_groups)[p]) / counts[p]
    return u


def _draw(parent: np.ndarray, group: np.ndarray, weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each record, an option (index into group/weight) from its parent's group, ∝ weight.

    ``group`` is sorted (options grouped by parent value); a group without weight is drawn
    uniformly. Vectorised: one search in the concatenated per-group CDFs.
    """
    n_groups = max(int(group.max()) + 1 if len(group) else 1, int(parent.max()) + 1 if len(parent) else 1)
    w = np.maximum(np.asarray(weight, dtype=float), 0.0)
    empty = np.bincount(group, weights=w, minlength=n_groups) <= 0
    w = np.where(empty[group], 1.0, w)
    totals = np.bincount(group, weights=w, minlength=n_groups)
    size = np.bincount(group, minlength=n_groups)
    first = np.cumsum(size) - size
    cw = np.cumsum(w)
    before = cw[first] - w[first] if len(w) else np.zeros(n_groups)
    flat = group + (cw - before[group]) / totals[group]
    idx = np.searchsorted(flat, parent + _systematic_u(parent, n_groups, rng), side="right")
    return np.clip(idx, first[parent], first[parent] + size[parent] - 1)


def _draw_table(parent: np.ndarray, table: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each record a column index of table (rows = parent values), ∝ the row."""
    rows, k = table.shape
    return _draw(parent, np.repeat(np.arange(rows), k), table.ravel(), rng) - parent * k
