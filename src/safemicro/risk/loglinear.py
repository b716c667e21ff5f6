"""Log-linear (Poisson) model of the key table's sample frequencies, for model-based risk.

The model is fitted on every cell of the full cross-classification of the keys' observed
levels (observed keys plus empty cells), as sdcMicro's ``modRisk`` does. Main effects have
the closed-form maximum-likelihood fit (the independence model: product of the one-way
margins), evaluated at the observed keys only, so any number of keys fits; the two-way model is fitted by iterative proportional fitting on all two-way
margins, which converges to the same maximum-likelihood fit as a Poisson GLM with those
terms. Cells in an empty fitted margin are structural zeros: fitted 0, as in the GLM limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

MAX_CELLS = 5_000_000  # two-way model only: IPF holds every cell


@dataclass(frozen=True)
class LogLinearFit:
    """Fitted expected sample counts ``mu`` of the observed keys, and the fit's size."""

    mu: np.ndarray
    n_cells: int
    n_structural_zeros: int
    iterations: int


def fit_loglinear(
    codes: np.ndarray, counts: np.ndarray, levels: list[int], *, interactions: int = 1, start: np.ndarray | None = None
) -> LogLinearFit:
    """Fit main effects (``interactions=1``) or all two-way interactions (``=2``).

    ``codes``: (K, m) level codes 1..L_j of the observed keys (no missing); ``counts``: the
    sample frequency of each key; ``levels``: L_j. Returns μ for the K observed keys.
    ``start`` (two-way only): the full table IPF starts from, exp(offset) for a model with an
    offset (:mod:`safemicro.risk.loglinear_offset`); ones by default.
    """
    if interactions not in (1, 2):
        raise ValueError("interactions must be 1 (main effects) or 2 (two-way)")
    shape = tuple(int(x) for x in levels)
    codes = np.asarray(codes)
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    m = len(shape)
    n_cells = int(np.prod(shape, dtype=np.float64))
    if interactions == 1 or m < 2:
        # μ = n·Π_j (margin_j / n), read at the observed keys: no table of all cells needed
        log_mu = np.full(len(counts), np.log(n))
        for j in range(m):
            margin = np.bincount(codes[:, j] - 1, weights=counts, minlength=shape[j]) / n
            log_mu += np.log(margin[codes[:, j] - 1])
        return LogLinearFit(np.exp(log_mu), n_cells, 0, 0)
    if n_cells > MAX_CELLS:
        raise ValueError(
            f"the keys' cross-classification has {n_cells:,} cells (limit {MAX_CELLS:,} for the two-way model); "
            "use main effects or fewer keys"
        )
    flat = np.ravel_multi_index(tuple((codes - 1).T), shape)
    table = np.bincount(flat, weights=counts, minlength=n_cells).reshape(shape)
    pairs = list(combinations(range(m), 2))
    targets = {p: table.sum(axis=tuple(i for i in range(m) if i not in p), keepdims=True) for p in pairs}
    fitted = np.ones(shape) if start is None else np.array(start, dtype=np.float64)
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
