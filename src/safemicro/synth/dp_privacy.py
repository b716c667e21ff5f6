"""Privacy accounting and noise for the DP synthesizer: zCDP <-> (ε, δ), Gaussian counts,
the exponential mechanism (report noisy max), and the ledger entry of one measurement."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from safemicro.methods.base import rng_for

__all__ = ["epsilon_to_rho", "rho_to_epsilon"]


def rho_to_epsilon(rho: float, delta: float) -> float:
    """The ε of a ρ-zCDP mechanism at δ (Canonne, Kamath & Steinke 2020, Prop. 12 / Cor. 13).

    ε = min over α > 1 of  αρ + (log(1/δ) + (α−1)·log(1 − 1/α) − log α) / (α − 1);
    tighter than Bun & Steinke's ρ + 2·sqrt(ρ·log(1/δ)), and what OpenDP computes.
    """
    from scipy.optimize import minimize_scalar

    if rho <= 0:
        return 0.0
    log_delta = math.log(1 / delta)

    def eps(a: float) -> float:
        return a * rho + (log_delta + (a - 1) * math.log1p(-1 / a) - math.log(a)) / (a - 1)

    # the optimum is near 1 + sqrt(log(1/δ)/ρ); search a bracket around it in log scale
    best = 1 + math.sqrt(log_delta / rho)
    res = minimize_scalar(
        lambda t: eps(1 + math.exp(t)),
        bounds=(math.log(best - 1) - 8, math.log(best - 1) + 8),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(min(res.fun, rho + 2 * math.sqrt(rho * log_delta)))


def epsilon_to_rho(epsilon: float, delta: float) -> float:
    """The largest ρ whose ρ-zCDP guarantee converts to (ε, δ)-DP (bisection)."""
    lo, hi = 0.0, float(epsilon)  # ε(ρ) ≥ ρ, so ρ ≤ ε
    for _ in range(100):
        mid = (lo + hi) / 2
        if rho_to_epsilon(mid, delta) <= epsilon:
            lo = mid
        else:
            hi = mid
    return lo


# -- noise -----------------------------------------------------------------------------------


class _Noise:
    """Where the noise comes from.

    With a seed: a NumPy generator (reproducible, but neither cryptographically secure nor
    safe from floating-point attacks -- fine for testing and for reruns the curator
    controls). Without: OpenDP's samplers when installed (discrete Gaussian on the integer
    counts, secure randomness), else an unseeded NumPy generator. The privacy cost is the
    same formula either way (discrete and continuous Gaussian have the same ρ = 1/(2σ²)).
    """

    def __init__(self, seed: int | None):
        self.dp = None
        if seed is None:
            try:
                import opendp.prelude as dp

                dp.enable_features("contrib")
                self.dp = dp
            except ImportError:  # pragma: no cover - depends on the environment
                pass
        self.rng = None if self.dp is not None else rng_for(seed)[0]

    @property
    def name(self) -> str:
        if self.dp is not None:
            return "OpenDP (discrete Gaussian, report noisy max with Gumbel noise; secure randomness)"
        return "NumPy (Gaussian, Gumbel-max; seeded: reproducible, not cryptographically secure)"

    def gaussian(self, counts: np.ndarray, sigma: float) -> np.ndarray:
        """Counts plus independent Gaussian noise of standard deviation sigma."""
        if self.dp is not None:
            dp = self.dp
            m = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int), scale=float(sigma))
            return np.asarray(m([int(c) for c in counts.ravel()]), dtype=float).reshape(counts.shape)
        return counts + self.rng.normal(0.0, sigma, counts.shape)

    def select(self, scores: np.ndarray, scale: float) -> int:
        """Index of the largest score plus Gumbel(scale) noise (the exponential mechanism)."""
        if self.dp is not None:
            dp = self.dp
            m = dp.m.make_noisy_max(
                dp.vector_domain(dp.atom_domain(T=float, nan=False)),
                dp.linf_distance(T=float),
                dp.zero_concentrated_divergence(),
                scale=float(scale),
            )
            return int(m([float(s) for s in scores]))
        return int(np.argmax(scores + self.rng.gumbel(0.0, scale, len(scores))))


def _normal_isf(p: float) -> float:
    """z with P(N(0, 1) > z) = p."""
    from scipy.stats import norm

    return float(norm.isf(p))


def _entry(what: str, mechanism: str, sigma: float, cells: int) -> dict[str, Any]:
    """One Gaussian measurement of a count vector (L2 sensitivity 1): ρ = 1/(2σ²)."""
    return {"what": what, "mechanism": mechanism, "sigma": sigma, "cells": int(cells), "rho": 1 / (2 * sigma**2)}
