"""Log-linear (Poisson) fits with a per-cell offset, and with the weight as a fitted predictor.

The survey-weighted variants of model-based risk (:mod:`safemicro.risk.model_methods`) fit

    log μ_k = γ·z_k + (main effects or two-way terms of the keys),

over every cell of the keys' cross-classification, where z_k is a known value per cell
(observed keys: ``z_obs``; every empty cell: ``z_empty``). With γ fixed this is a model with
offset γ·z (Clogg & Eliason 1987 take γ = -1 and z = log of the cell's mean weight); with γ
estimated, the weight is one more predictor (sdcMicro ``modRisk(method="weightedLLM")``).

Main effects are fitted by iterative proportional scaling on the one-way margins, with the
sum over all cells factorised (empty cells share one offset), so only the observed keys are
held; two-way interactions by IPF on the full table started from the offset. γ solves the
profile score equation Σ_k (z_k - z_empty)(f_k - μ_k(γ)) = 0, which is monotone in γ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from .loglinear import MAX_CELLS, fit_loglinear

_TOL = 1e-10
_MAX_IT = 2000
_GAMMA_BOUND = 32.0


@dataclass(frozen=True)
class OffsetFit:
    """Fitted expected sample counts ``mu`` of the observed keys; ``gamma`` the weight's
    coefficient (fixed or estimated); ``converged`` False when γ hit its search bound."""

    mu: np.ndarray
    n_cells: int
    n_structural_zeros: int
    iterations: int
    gamma: float
    converged: bool = True


def _main_effects(codes: np.ndarray, counts: np.ndarray, levels: list[int], o_obs: np.ndarray, o_empty: float):
    """μ at the observed keys for log μ = offset + main effects, by scaling one variable's
    factors at a time until every fitted one-way margin equals the observed one."""
    k, m = codes.shape
    idx = codes - 1
    targets = [np.bincount(idx[:, j], weights=counts, minlength=levels[j]) for j in range(m)]
    t = [np.where(tg > 0, 1.0 / levels[j], 0.0) for j, tg in enumerate(targets)]
    t = [tj / tj.sum() for tj in t]  # each variable's factors sum to 1; the scale sits in c
    e_empty = np.exp(o_empty)
    excess = np.exp(o_obs) - e_empty  # observed keys' offset beyond the empty cells' one
    n = counts.sum()
    c = n / e_empty  # the sum over all cells is c·e_empty when every excess is 0
    prod = np.ones(k)
    for j in range(m):
        prod *= t[j][idx[:, j]]
    it = 0
    for it in range(1, _MAX_IT + 1):  # noqa: B007 - the count is reported
        worst = 0.0
        for j in range(m):
            tj = t[j][idx[:, j]]
            rest = np.divide(prod, tj, out=np.zeros(k), where=tj > 0)
            margin = c * (e_empty * t[j] + np.bincount(idx[:, j], weights=excess * prod, minlength=levels[j]))
            worst = max(worst, float(np.max(np.abs(margin - targets[j]))))
            new = np.divide(t[j] * targets[j], margin, out=np.zeros(levels[j]), where=margin > 0)
            s = new.sum()
            t[j], c = new / s, c * s
            prod = rest * t[j][idx[:, j]]
        if worst < _TOL * max(n, 1.0):
            break
    return c * np.exp(o_obs) * prod, it


def _two_way(codes, counts, levels, o_obs, o_empty):
    """μ at the observed keys for log μ = offset + two-way terms, by IPF on the full table."""
    shape = tuple(int(x) for x in levels)
    if np.prod(shape, dtype=np.float64) > MAX_CELLS:
        return fit_loglinear(codes, counts, levels, interactions=2)  # raises the size error
    flat = np.ravel_multi_index(tuple((codes - 1).T), shape)
    start = np.full(int(np.prod(shape, dtype=np.float64)), float(np.exp(o_empty)))
    start[flat] = np.exp(o_obs)
    return fit_loglinear(codes, counts, levels, interactions=2, start=start.reshape(shape))


def fit_offset(codes, counts, levels, z_obs, z_empty: float, gamma: float, *, interactions: int = 1) -> OffsetFit:
    """Fit with the fixed offset γ·z (``z_obs`` per observed key, ``z_empty`` in empty cells)."""
    codes = np.asarray(codes)
    counts = np.asarray(counts, dtype=np.float64)
    o_obs = gamma * (np.asarray(z_obs, dtype=np.float64) - z_empty)  # a constant shift is the intercept's
    n_cells = int(np.prod(levels, dtype=np.float64))
    if interactions == 2 and len(levels) >= 2:
        fit = _two_way(codes, counts, levels, o_obs, 0.0)
        return OffsetFit(fit.mu, fit.n_cells, fit.n_structural_zeros, fit.iterations, gamma)
    mu, it = _main_effects(codes, counts, list(levels), o_obs, 0.0)
    return OffsetFit(mu, n_cells, 0, it, gamma)


def fit_weight_predictor(codes, counts, levels, z_obs, z_empty: float, *, interactions: int = 1) -> OffsetFit:
    """Fit with γ estimated (the weight as a predictor). γ = 0 when z does not vary (the fit is
    then the plain one); γ at its search bound ±32 marks the fit as not converged."""
    z_obs = np.asarray(z_obs, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    dz = z_obs - z_empty
    if np.ptp(np.append(dz, 0.0)) < 1e-12:
        return fit_offset(codes, counts, levels, z_obs, z_empty, 0.0, interactions=interactions)

    def score(g: float) -> float:
        return float(
            (dz * (counts - fit_offset(codes, counts, levels, z_obs, z_empty, g, interactions=interactions).mu)).sum()
        )

    lo, hi = -1.0, 1.0
    while score(lo) < 0 and lo > -_GAMMA_BOUND:
        lo *= 2
    while score(hi) > 0 and hi < _GAMMA_BOUND:
        hi *= 2
    s_lo, s_hi = score(lo), score(hi)
    if s_lo < 0 or s_hi > 0:  # no root inside ±32: the weight separates the cells
        g = lo if s_lo < 0 else hi
        fit = fit_offset(codes, counts, levels, z_obs, z_empty, g, interactions=interactions)
        return OffsetFit(fit.mu, fit.n_cells, fit.n_structural_zeros, fit.iterations, g, converged=False)
    g = brentq(score, lo, hi, xtol=1e-10)
    return fit_offset(codes, counts, levels, z_obs, z_empty, g, interactions=interactions)
