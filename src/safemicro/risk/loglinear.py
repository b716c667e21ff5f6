"""Log-linear (Poisson) model of the key table's sample frequencies, for model-based risk.

The model is fitted on every cell of the full cross-classification of the keys' observed
levels (observed keys plus empty cells), as sdcMicro's ``modRisk`` does. Main effects have
the closed-form maximum-likelihood fit (the independence model: product of the one-way
margins); the two-way model is fitted by iterative proportional fitting on all two-way
margins, which converges to the same maximum-likelihood fit as a Poisson GLM with those
terms. Cells in an empty fitted margin are structural zeros: fitted 0, as in the GLM limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

MAX_CELLS = 20_000_000


@dataclass(frozen=True)
class LogLinearFit:
    """Fitted expected sample counts ``mu`` of the observed keys, and the fit's size."""

    mu: np.ndarray
    n_cells: int
    n_structural_zeros: int
    iterations: int


def fit_loglinear(codes: np.ndarray, counts: np.ndarray, levels: list[int], *, interactions: int = 1) -> LogLinearFit:
    """Fit main effects (``interactions=1``) or all two-way interactions (``=2``).

    ``codes``: (K, m) level codes 1..L_j of the observed keys (no missing); ``counts``: the
    sample frequency of each key; ``levels``: L_j. Returns μ for the K observed keys.
    """
    if interactions not in (1, 2):
        raise ValueError("interactions must be 1 (main effects) or 2 (two-way)")
    shape = tuple(int(x) for x in levels)
    n_cells = int(np.prod(shape, dtype=np.float64))
    if n_cells > MAX_CELLS:
        raise ValueError(f"the keys' cross-classification has {n_cells:,} cells (limit {MAX_CELLS:,}); use fewer keys")
    flat = np.ravel_multi_index(tuple((np.asarray(codes) - 1).T), shape)
    table = np.bincount(flat, weights=counts, minlength=n_cells).reshape(shape)
    n = table.sum()
    m = len(shape)
    if interactions == 1 or m < 2:
        fitted = np.full(shape, n, dtype=np.float64)
        for j in range(m):
            margin = table.sum(axis=tuple(i for i in range(m) if i != j)) / n
            fitted = fitted * margin.reshape([-1 if i == j else 1 for i in range(m)])
        return LogLinearFit(fitted.ravel()[flat], n_cells, int((fitted == 0).sum()), 0)
    pairs = list(combinations(range(m), 2))
    targets = {p: table.sum(axis=tuple(i for i in range(m) if i not in p), keepdims=True) for p in pairs}
    fitted = np.ones(shape)
    for target in targets.values():
        fitted = fitted * (target > 0)  # structural zeros: an empty fitted margin
    it = 0
    for it in range(1, 501):  # noqa: B007 - the count is reported
        worst = 0.0
        for p, target in targets.items():
            current = fitted.sum(axis=tuple(i for i in range(m) if i not in p), keepdims=True)
            worst = max(worst, float(np.max(np.abs(current - target))))
            with np.errstate(divide="ignore", invalid="ignore"):
                fitted = fitted * np.where(current > 0, target / current, 0.0)
        if worst < 1e-8 * max(n, 1.0):
            break
    return LogLinearFit(fitted.ravel()[flat], n_cells, int((fitted == 0).sum()), it)
