"""The estimators of sdcMicro ``modRisk``: how each turns the key table into population rates λ_k.

Skinner & Shlomo (2008): population counts F_k ~ Poisson(λ_k), log λ_k linear in the keys;
a record is sampled with probability π_k, so f_k ~ Poisson(π_k λ_k). The estimators differ in
how the survey weights enter (F̂_k = Σw over key k, w̄_k = F̂_k/f_k, π_k = 1/w̄_k):

- ``default`` (and ``IPF``, the same maximum-likelihood fit computed by iterative
  proportional fitting, as sdcMicro's deprecated ``LLmodGlobalRisk``): the model is fitted to
  f_k, weights ignored; λ_k = μ_k/π_k.
- ``CE`` (Clogg & Eliason 1987): log μ_k = log π_k + x_k'β, i.e. the model holds for λ_k and
  the weights enter as the offset -log w̄_k; empty cells take the overall π = n/ΣF̂.
- ``PML`` (pseudo maximum likelihood): the weighted likelihood Σ_i w_i log p(key_i), i.e. the
  model fitted to the weighted counts F̂_k; λ_k is its fitted value.
- ``weightedLLM``: log μ_k = x_k'β + γ·log w̄_k with γ estimated (the weight as a predictor).
  γ = 0 gives ``default``, γ = -1 gives ``CE``.

With equal weights all five give the same λ (the offset and the predictor are constants the
intercept absorbs; the weighted counts are the counts times the weight). sdcMicro 5.x's CE
and weightedLLM do not: on its own equal-weight test case its CE gives empty cells an offset
below the observed ones, and its weightedLLM uses the cell's weight sum (then proportional to
the count being modelled) as a linear predictor; tests/test_model_risk_methods.py shows both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .loglinear import fit_loglinear
from .loglinear_offset import fit_offset, fit_weight_predictor

METHODS = ("default", "CE", "PML", "weightedLLM", "IPF")


@dataclass(frozen=True)
class PopulationRates:
    """λ_k of the observed keys, the sampling fraction π_k, and the fit's size."""

    lam: np.ndarray
    pi: np.ndarray
    n_cells: int
    n_structural_zeros: int
    gamma: float | None = None
    converged: bool = True


def population_rates(codes, count, wsum, levels, *, method: str = "default", interactions: int = 1) -> PopulationRates:
    """λ_k and π_k for ``method`` (one of :data:`METHODS`) from the complete keys' codes,
    sample counts and weight sums."""
    if method not in METHODS:
        raise ValueError(f"unknown modRisk method {method!r}; one of {', '.join(METHODS)}")
    count = np.asarray(count, dtype=np.float64)
    wsum = np.asarray(wsum, dtype=np.float64)
    if method in ("CE", "PML", "weightedLLM") and np.any(wsum <= 0):
        raise ValueError(f"{method} needs positive weights in every key")
    with np.errstate(divide="ignore"):
        pi = np.clip(count / wsum, 0.0, 1.0)  # a key of weight 0: π = 1 (nothing unseen)
    if method in ("default", "IPF"):
        fit = fit_loglinear(codes, count, levels, interactions=interactions)
        return PopulationRates(fit.mu / pi, pi, fit.n_cells, fit.n_structural_zeros)
    if method == "PML":
        fit = fit_loglinear(codes, wsum, levels, interactions=interactions)
        return PopulationRates(fit.mu, pi, fit.n_cells, fit.n_structural_zeros)
    z_obs = np.log(wsum / count)
    z_empty = float(np.log(wsum.sum() / count.sum()))
    if method == "CE":
        offset_fit = fit_offset(codes, count, levels, z_obs, z_empty, -1.0, interactions=interactions)
    else:
        offset_fit = fit_weight_predictor(codes, count, levels, z_obs, z_empty, interactions=interactions)
    return PopulationRates(
        offset_fit.mu / pi,
        pi,
        offset_fit.n_cells,
        offset_fit.n_structural_zeros,
        offset_fit.gamma,
        offset_fit.converged,
    )
