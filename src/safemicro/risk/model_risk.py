"""Model-based global risk for samples (sdcMicro ``modRisk``, Skinner & Shlomo 2008).

Sample frequencies f_k are Poisson with mean μ_k, estimated by a log-linear model on the
key table (:mod:`safemicro.risk.loglinear`). With sampling fraction π_k = f_k / Σw_k (the
sum of weights per key, sdcMicro's default), the population rate is λ_k = μ_k/π_k and the
unseen part F_k - f_k is Poisson(λ_k(1-π_k)). Over the sample uniques (f_k = 1):

- τ1 = Σ P(F_k = 1 | f_k = 1) = Σ exp(-λ_k(1-π_k)): expected sample uniques that are
  population uniques;
- τ2 = Σ E(1/F_k | f_k = 1) = Σ (1 - exp(-x_k))/x_k, x_k = λ_k(1-π_k): expected correct
  matches if an intruder links every sample unique to a population record with its key.

The estimators of λ (default, CE, PML, weightedLLM, IPF) are in :mod:`.model_methods`.
sdcMicro 5.x ``modRisk`` prints other numbers from the same fit: it takes x_k = μ_k(1-π_k)
(the sample-scale fitted count, not λ_k) and divides each sum by the number of keys; both are
reported as ``sdcmicro_tau1``/``sdcmicro_tau2`` so the two can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from safemicro.keys import KeyTable

from .model_methods import population_rates


@dataclass(frozen=True)
class ModelRisk:
    tau1: float
    tau2: float
    n_sample_uniques: int
    model: str
    n_cells: int
    n_structural_zeros: int
    n_keys_with_missing: int
    method: str = "default"
    gamma: float | None = None
    converged: bool = True
    sdcmicro_tau1: float | None = None
    sdcmicro_tau2: float | None = None

    def summary(self) -> dict:
        return {
            "method": self.method,
            "tau1": self.tau1,
            "tau2": self.tau2,
            "n_sample_uniques": self.n_sample_uniques,
            "tau1_share_of_uniques": self.tau1 / self.n_sample_uniques if self.n_sample_uniques else 0.0,
            "model": self.model,
            "n_cells": self.n_cells,
            "n_structural_zeros": self.n_structural_zeros,
            "n_keys_with_missing_excluded": self.n_keys_with_missing,
            "weight_coefficient": self.gamma,
            "converged": self.converged,
            "sdcmicro_tau1": self.sdcmicro_tau1,
            "sdcmicro_tau2": self.sdcmicro_tau2,
        }


def tau_measures(mu: np.ndarray, pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample unique: P(F=1 | f=1) and E(1/F | f=1) from μ and the sampling fraction π."""
    x = np.asarray(mu, dtype=np.float64) * (1.0 / np.asarray(pi, dtype=np.float64) - 1.0)
    r1 = np.exp(-x)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(x > 1e-12, -np.expm1(-x) / x, 1.0)
    return r1, r2


def model_risk(kt: KeyTable, *, interactions: int = 1, weighted: bool = True, method: str = "default") -> ModelRisk:
    """τ1 and τ2 of the key table ``kt`` (keys with a missing value are left out of the model,
    as sdcMicro's table of the keys leaves them out) with the estimator ``method``. Needs
    weights (π_k = f_k/Σw_k)."""
    if not weighted:
        raise ValueError("model-based risk needs sampling weights (the sampling fraction per key)")
    complete = np.all(kt.codes > 0, axis=1)
    codes, count, wsum = kt.codes[complete], kt.count[complete], kt.weight_sum[complete]
    levels = [len(lab) for lab in kt.labels]
    rates = population_rates(codes, count, wsum, levels, method=method, interactions=interactions)
    unique = count == 1
    pi, lam = rates.pi[unique], rates.lam[unique]
    r1, r2 = tau_measures(pi * lam, pi)
    s1, s2 = tau_measures(pi * pi * lam, pi)  # sdcMicro: x = μ(1-π) with μ = πλ
    n_keys = max(len(count), 1)
    return ModelRisk(
        tau1=float(r1.sum()),
        tau2=float(r2.sum()),
        n_sample_uniques=int(unique.sum()),
        model="main effects" if interactions == 1 else "two-way interactions",
        n_cells=rates.n_cells,
        n_structural_zeros=rates.n_structural_zeros,
        n_keys_with_missing=int((~complete).sum()),
        method=method,
        gamma=rates.gamma,
        converged=rates.converged,
        sdcmicro_tau1=float(s1.sum()) / n_keys,
        sdcmicro_tau2=float(s2.sum()) / n_keys,
    )


def model_risk_summary(kt: KeyTable, weighted: bool, options: dict | None = None) -> dict:
    """The assess section ``model_risk``: τ1/τ2 (main effects; two-way too with
    ``options["interactions"] = 2``), the same from the further estimators in
    ``options["methods"]`` (``variants``), the population-uniqueness estimators and the exact
    individual risk. The sampling fraction is ``options["sampling_fraction"]`` or n/Σw."""
    from .individual_exact import individual_risk_exact
    from .uniqueness import population_uniqueness

    options = options or {}
    n = float(kt.count.sum())
    pi = options.get("sampling_fraction") or (n / float(kt.weight_sum.sum()) if weighted else None)
    out: dict = {"loglinear": None, "loglinear_two_way": None, "variants": [], "population_uniqueness": None}
    out["notes"] = []
    if weighted:
        try:
            out["loglinear"] = model_risk(kt).summary()
            if options.get("interactions") == 2:
                out["loglinear_two_way"] = model_risk(kt, interactions=2).summary()
        except ValueError as exc:
            out["notes"].append(f"log-linear model: {exc}")
        out["variants"] = _variants(kt, options, out["notes"])
        exact = individual_risk_exact(kt.fk, kt.Fk, qual=float(options.get("qual", 1.0)))
        out["individual_risk_exact"] = {
            "max": float(exact.max()),
            "expected_reidentifications": float((exact * kt.count).sum()),
            "n_above_0_1": int(kt.count[exact > 0.1].sum()),
        }
    else:
        out["notes"].append("τ1/τ2 and the exact individual risk need sampling weights")
    if pi is not None:
        if pi > 1.0:
            out["notes"].append(f"weights below 1 (sampling fraction {pi:.3g} > 1): no population estimate")
        else:
            out["population_uniqueness"] = population_uniqueness(np.rint(kt.count).astype(np.int64), pi)
    else:
        out["notes"].append("population uniqueness needs weights or options['sampling_fraction']")
    return out


def _variants(kt: KeyTable, options: dict, notes: list[str]) -> list[dict]:
    """τ1/τ2 from each estimator of ``options["methods"]`` other than the default."""
    two_way = [1, 2] if options.get("interactions") == 2 else [1]
    out = []
    for method in dict.fromkeys(m for m in options.get("methods") or () if m != "default"):
        for inter in two_way:
            try:
                fit = model_risk(kt, interactions=inter, method=method).summary()
            except ValueError as exc:
                notes.append(f"log-linear model ({method}): {exc}")
                continue
            if not fit["converged"]:
                notes.append(f"{method}: the weight's coefficient reached its bound (the weights separate the keys)")
            out.append(fit)
    return out
