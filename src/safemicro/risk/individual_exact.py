"""Exact individual risk (sdcMicro ``indivRisk(method="exact")``, Benedetti & Franconi 1998).

Given f_k sample records of key k and p_k = f_k/F̂_k (F̂_k the sum of weights), the
population count is F_k = f_k + NegBin(f_k, p_k) and the risk is
E(1/F_k | f_k) = Σ_{h>=f} (1/h)·C(h-1, f-1)·p^f (1-p)^(h-f) = p^f/f · 2F1(f, f; f+1; 1-p),
which Pfaff's transformation turns into 2F1(1, f; f+1; -(1-p)/p)/f = ∫_0^1 t^(f-1)/(1+t(1-p)/p) dt
(where SciPy's 2F1 fails, large f with small p, that integral by Gauss-Legendre in u = t^f). sdcMicro's
default "approx" (:func:`safemicro.risk.individual.individual_risk`) uses this for f = 1, 2
and p/(f - (1-p)) above. ``qual`` is sdcMicro's final correction factor (risk × qual).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import hyp2f1


def individual_risk_exact(fk: np.ndarray, Fk: np.ndarray, *, qual: float = 1.0) -> np.ndarray:
    """Exact E(1/F | f) per key; where Fk <= fk (no one unseen, or weights below 1) 1/fk."""
    fk = np.asarray(fk, dtype=np.float64)
    Fk = np.asarray(Fk, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pk = np.clip(fk / Fk, 0.0, 1.0)
        odds = (1.0 - pk) / pk
        risk = hyp2f1(1.0, fk, fk + 1.0, -odds) / fk
        bad = ~np.isfinite(risk) & (Fk > fk)
        if bad.any():
            risk[bad] = _quadrature(fk[bad], odds[bad])
    risk = np.where((Fk <= fk) | ~np.isfinite(risk), 1.0 / fk, risk)
    return qual * risk


def _quadrature(f: np.ndarray, odds: np.ndarray, nodes: int = 256) -> np.ndarray:
    """(1/f)∫_0^1 du / (1 + odds·u^(1/f)) by Gauss-Legendre (u = t^f makes it smooth for large f)."""
    x, w = _gauss_legendre(nodes)
    u = (x + 1.0) / 2.0
    vals = 1.0 / (1.0 + odds[:, None] * u[None, :] ** (1.0 / f[:, None]))
    return (vals @ w) / 2.0 / f


@lru_cache(maxsize=4)
def _gauss_legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(nodes)
