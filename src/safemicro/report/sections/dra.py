"""The disclosure risk assessment form's view (the approval trail)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safemicro import __version__

from ..format import _num, fmt_er, fmt_int, fmt_pct, fmt_prob
from .common import _checks, _list, _map, _names, _params, _target_lines, _text, _tier
from .steps import _removed
from .utility import _indicator_rows

DRA_RISK_ROWS = (
    ("records", "Records", fmt_int),
    ("sample_uniques", "Sample uniques (fk = 1)", fmt_int),
    ("global_risk_percent", "Global risk", fmt_pct),
    ("expected_reidentifications", "Expected re-identifications", fmt_er),
    ("household_risk_percent", "Household risk", fmt_pct),
    ("max_individual_risk", "Highest individual risk", fmt_prob),
)
# numeric keys: shown when measured (a plan with numeric keys)
DRA_NUMERIC_ROWS = (
    ("interval_disclosure", "Interval disclosure (numeric keys within ±5 % sd of the released values)", fmt_prob),
    ("linkage_disclosure", "Record linkage on the numeric keys (own record nearest)", fmt_prob),
    ("records_with_outlier", "Records with an outlying numeric key value", fmt_int),
)


def _dra_risk(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, str]]:
    rows = []
    for key, label, fmt in DRA_RISK_ROWS[:2]:
        rows.append({"label": label, "before": fmt(before.get(key)), "after": fmt(after.get(key))})
    vb, va = _map(before.get("violations")), _map(after.get("violations"))
    for k in sorted(set(vb) | set(va), key=lambda k: _num(k) or 0):
        rows.append(
            {"label": f"Records violating {k}-anonymity", "before": fmt_int(vb.get(k)), "after": fmt_int(va.get(k))}
        )
    for key, label, fmt in DRA_RISK_ROWS[2:]:
        rows.append({"label": label, "before": fmt(before.get(key)), "after": fmt(after.get(key))})
    for key, label, fmt in DRA_NUMERIC_ROWS:
        if before.get(key) is not None or after.get(key) is not None:
            rows.append({"label": label, "before": fmt(before.get(key)), "after": fmt(after.get(key))})
    return rows


def _dra_context(dra: Mapping[str, Any]) -> dict[str, Any]:
    ds = _map(dra.get("dataset"))
    hierarchy, weights = _map(dra.get("hierarchy")), _map(dra.get("weights"))
    methods = []
    for m in _list(dra.get("methods")):
        if isinstance(m, Mapping):
            methods.append(
                {
                    "step": _text(m.get("step")),
                    "method": str(m.get("method", "")),
                    "parameters": _params(m.get("parameters")),
                    "cells_changed": (_removed(m) or {}).get("text") or fmt_int(m.get("cells_changed")),
                }
            )
    met = dra.get("targets_met")
    return {
        "version": dra.get("safemicro_version") or __version__,
        "form": str(dra.get("form") or "Disclosure risk assessment"),
        "dataset": {
            "title": str(ds.get("title") or ""),
            "input_file": str(ds.get("input_file") or ""),
            "input_sha256": str(ds.get("input_sha256") or ""),
            "derived_from": _params(ds.get("derived_from")),
            "records": fmt_int(ds.get("records")) if ds.get("records") is not None else "",
            "variables": fmt_int(ds.get("variables")) if ds.get("variables") is not None else "",
            "unit": str(ds.get("unit") or ""),
        },
        "tier": _tier(dra.get("tier")),
        "ids_removed": _names(dra.get("direct_identifiers_removed")),
        "ids_present": _names(dra.get("direct_identifiers_still_present")),
        "scenario": str(dra.get("scenario") or ""),
        "keys": _names(dra.get("key_variables")),
        "numeric_keys": _names(dra.get("numeric_key_variables")),
        "sensitive": _names(dra.get("sensitive_variables")),
        "household": _names(hierarchy.get("household_id")),
        "household_level": _names(hierarchy.get("household_level_variables")),
        "weight": _names(weights.get("weight")),
        "strata": _names(weights.get("strata")),
        "cluster": _names(weights.get("cluster")),
        "sampling": str(weights.get("sampling") or ""),
        "targets": _target_lines(_map(dra.get("targets"))),
        "risk": _dra_risk(_map(dra.get("risk_before")), _map(dra.get("risk_after"))),
        "checks": _checks(dra.get("checks")),
        "targets_met": met if isinstance(met, bool) else None,
        "methods": methods,
        "indicators": _indicator_rows(dra.get("utility_checks")),
        "residual_risk": str(dra.get("residual_risk_statement") or ""),
        "warnings": [str(w) for w in _list(dra.get("warnings")) if w],
        "reviewer": str(dra.get("reviewer") or ""),
        "date": str(dra.get("date") or ""),
    }
