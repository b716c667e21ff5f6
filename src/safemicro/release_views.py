"""What users and approvers see of a release: the external view (steps in words, residual
risk, utility; never seeds or the PRAM matrix) and the filled disclosure risk assessment form.
Both are pure functions of the internal report (:mod:`safemicro.release` writes them)."""

from __future__ import annotations

from typing import Any

from safemicro.plan import Plan
from safemicro.utility.pram_correction import public_indicators

__all__ = ["external_view", "disclosure_risk_assessment"]


def external_view(report: dict[str, Any]) -> dict[str, Any]:
    """What users need: steps in words with counts, residual risk, utility; never seeds."""
    steps = []
    for s in report["steps"]:
        steps.append(
            {
                "index": s["index"],
                "name": s["name"],
                "description": s["description"],
                "changed": s["changed"],
                "suppressed": s["suppressed"],
                "records_touched": s["records_touched"],
                "removed": s.get("removed", []),
                "perturbative": s["perturbative"],
            }
        )
    after = report["risk_after"]
    return {
        "safemicro_version": report["safemicro_version"],
        "title": report["release_info"].get("title") or "",
        "tier": report["scenario"]["tier"],
        "unit": report["release_info"].get("unit") or "",
        "n_records": report["release"]["n_records"],
        "variables": report["release"]["variables"],
        "removed_variables": report["release"]["removed_variables"],
        "direct_ids": report["roles"]["direct_ids"],
        "steps": steps,
        "risk_after": {
            "k_anonymity": after.get("k_anonymity"),
            "global_risk": after.get("global_risk"),
            "household_risk": after.get("household_risk"),
            "attribute_disclosure": after.get("attribute_disclosure"),
            "keys": after.get("keys"),
            "numeric_risk": _numeric_overview(after.get("numeric_risk")),
        },
        "utility": {
            "variables": report["utility"].get("variables"),
            "indicators": public_indicators(report["utility"].get("indicators")),  # no PRAM correction
            "regressions": report["utility"].get("regressions"),
        },
        "weight": _weight_note(report),
        "warnings": [w for w in report["warnings"] if "seed" not in w.lower() and "attack" not in w],
    }


def _numeric_overview(numeric: dict[str, Any] | None) -> dict[str, Any] | None:
    """Numeric-key risk for users: the shares, without per-variable statistics."""
    if not numeric:
        return None
    keep = ("interval_disclosure", "linkage_disclosure", "n_records_with_outlier", "compared_with")
    return {"variables": list(numeric.get("variables") or []), **{k: numeric.get(k) for k in keep}}


def _weight_note(report: dict[str, Any]) -> dict[str, Any] | None:
    """Which weight users should use and whether anonymization changed it."""
    name = report["release"]["roles"].get("weight")
    if not name:
        return None
    adjusted = any(name in s["changed"] and s["changed"][name] for s in report["steps"])
    return {"name": name, "adjusted": adjusted}


def disclosure_risk_assessment(report: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The filled disclosure risk assessment form (Practice Guide) for the approval trail."""
    roles = report["roles"]
    before, after = report["risk_before"], report["risk_after"]

    def risk_row(s: dict[str, Any]) -> dict[str, Any]:
        gr = s.get("global_risk") or {}
        hh = s.get("household_risk") or {}
        ka = s.get("k_anonymity") or {}
        return {
            "records": s.get("n_records"),
            "sample_uniques": ka.get("n_sample_uniques"),
            "violations": ka.get("violations"),
            "global_risk_percent": gr.get("percent"),
            "expected_reidentifications": gr.get("expected_reidentifications"),
            "household_risk_percent": hh.get("percent") if isinstance(hh, dict) else None,
            "max_individual_risk": (s.get("individual_risk") or {}).get("max"),
            "interval_disclosure": (s.get("numeric_risk") or {}).get("interval_disclosure"),
            "linkage_disclosure": (s.get("numeric_risk") or {}).get("linkage_disclosure"),
            "records_with_outlier": (s.get("numeric_risk") or {}).get("n_records_with_outlier"),
        }

    info = report["release_info"]
    return {
        "form": "Disclosure risk assessment",
        "dataset": {
            "title": info.get("title") or report["input"].get("file") or "",
            "input_file": report["input"].get("file"),
            "input_sha256": report["input"].get("sha256"),
            "derived_from": report["input"].get("derived_from"),
            "records": report["input"]["n_records"],
            "variables": report["input"]["n_variables"],
            "unit": info.get("unit") or "",
        },
        "tier": report["scenario"]["tier"],
        "direct_identifiers_removed": [v for v in roles["direct_ids"] if v in report["release"]["removed_variables"]],
        "direct_identifiers_still_present": [v for v in roles["direct_ids"] if v in report["release"]["variables"]],
        "scenario": report["scenario"]["description"],
        "key_variables": roles["keys"],
        "numeric_key_variables": roles["numeric_keys"],
        "sensitive_variables": roles["sensitive"],
        "hierarchy": {
            "household_id": roles["household"],
            "household_level_variables": roles["household_level"],
        },
        "weights": {
            "weight": roles["weight"],
            "strata": roles["strata"],
            "cluster": roles["cluster"],
            "sampling": info.get("sampling") or "",
        },
        "targets": report["targets"],
        "risk_before": risk_row(before),
        "risk_after": risk_row(after),
        "checks": report["checks"],
        "targets_met": report["targets_met"],
        "methods": [
            {
                "step": s["index"],
                "method": s["name"],
                "parameters": _public_params(s),
                "cells_changed": sum(s["changed"].values()),
                "removed": s.get("removed", []),
                "records_touched": s["records_touched"],
            }
            for s in report["steps"]
        ],
        "utility_checks": report["utility"].get("indicators", []),
        "residual_risk_statement": info.get("residual_risk") or "",
        "warnings": report["warnings"],
        "reviewer": info.get("reviewer") or "",
        "date": info.get("date") or "",
    }


def _public_params(step: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in step["params"].items() if k not in ("seed", "matrix")}
