"""The risk report's "model-based risk" section: modRisk's τ1/τ2, the population-uniqueness
estimators and the exact individual risk, from the assess summary's ``model_risk``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .format import fmt_er, fmt_num, fmt_pct, fmt_prob

_MEANING = {
    "tau1": "τ1: expected sample uniques that are also unique in the population (sure re-identifications)",
    "tau2": "τ2: expected correct matches when an intruder links every sample unique to a population record",
}
_METHODS = {
    "default": "default (weights only in π)",
    "IPF": "IPF (the default fit by iterative proportional fitting)",
    "CE": "CE (Clogg–Eliason: log weight as offset)",
    "PML": "PML (pseudo-likelihood: fitted to weighted counts)",
    "weightedLLM": "weightedLLM (log weight as a fitted predictor)",
}
_ESTIMATORS = {
    "pitman": "Pitman (Hoshino 2001)",
    "zayatz": "Zayatz (1991)",
    "snb": "SNB (Chen & Keller-McNulty 1998)",
    "dankar": "Dankar et al. (2012) rule",
}


def model_context(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Rows for the template, or None when the measure was not asked for."""
    section = summary.get("model_risk") if isinstance(summary, Mapping) else None
    if not isinstance(section, Mapping):
        return None
    tau = []
    fits = [section.get("loglinear"), section.get("loglinear_two_way"), *(section.get("variants") or [])]
    for fit in fits:
        if isinstance(fit, Mapping):
            method = _METHODS.get(str(fit.get("method", "default")), str(fit.get("method")))
            if fit.get("weight_coefficient") is not None and fit.get("method") == "weightedLLM":
                method += f", γ = {fmt_num(fit.get('weight_coefficient'))}"
            for name, meaning in _MEANING.items():
                tau.append(
                    {
                        "model": f"{fit.get('model')}, {method}",
                        "name": meaning,
                        "value": fmt_er(fit.get(name)),
                        "sdcmicro": fmt_num(fit.get(f"sdcmicro_{name}")),
                        "uniques": fit.get("n_sample_uniques"),
                    }
                )
    pu = section.get("population_uniqueness")
    uniq = []
    if isinstance(pu, Mapping):
        for key, label in _ESTIMATORS.items():
            label = f"{label}: {pu.get('dankar_model')}" if key == "dankar" else label
            uniq.append(
                {"name": label, "value": fmt_er(pu.get(key)), "share": fmt_pct(100 * (pu.get(f"{key}_share") or 0))}
            )
    exact = section.get("individual_risk_exact") if isinstance(section.get("individual_risk_exact"), Mapping) else None
    return {
        "tau": tau,
        "uniqueness": uniq,
        "sampling_fraction": fmt_num(pu.get("sampling_fraction")) if isinstance(pu, Mapping) else None,
        "exact": {
            "max": fmt_prob(exact.get("max")),
            "er": fmt_er(exact.get("expected_reidentifications")),
            "above": exact.get("n_above_0_1"),
        }
        if exact
        else None,
        "notes": [str(n) for n in section.get("notes") or []],
    }
