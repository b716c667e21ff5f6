"""The plan's risk targets checked against an assessment's summary: one row per target with
its value, whether it passed (None: not applicable) and a sentence for the reports."""

from __future__ import annotations

from typing import Any

from safemicro.risk.attribute_checks import attribute_checks
from safemicro.risk.combinations import combination_checks
from safemicro.risk.numeric_keys import robust_checks
from safemicro.risk.population import population_checks

__all__ = ["NOT_APPLICABLE", "target_checks"]

NOT_APPLICABLE = "not applicable: no categorical key variables (only numeric keys)"


def target_checks(summary: dict[str, Any], targets: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Compare the measures with the plan's risk targets (``passed`` None: not applicable)."""
    if not targets:
        return []
    if summary.get("k_anonymity") is None:
        names = [
            f"k = {targets['k']}" if targets.get("k") else None,
            f"global risk ≤ {targets['max_global_risk']:g}" if targets.get("max_global_risk") is not None else None,
            f"individual risk ≤ {targets['max_individual_risk']:g}"
            if targets.get("max_individual_risk") is not None
            else None,
        ]
        return [
            {"target": n, "value": None, "passed": None, "applicable": False, "message": NOT_APPLICABLE}
            for n in names
            if n
        ] + robust_checks(summary, targets)
    checks = attribute_checks(summary.get("attribute_disclosure"), targets)
    k = targets.get("k")
    if k:
        v = summary["k_anonymity"]["violations"][str(int(k))]
        checks.append(
            {"target": f"k = {k}", "value": v, "passed": v == 0, "message": f"{v} records violate {k}-anonymity"}
        )
    mg = targets.get("max_global_risk")
    if mg is not None:
        v = summary["global_risk"]["mean"]
        checks.append(
            {
                "target": f"global risk ≤ {mg:g}",
                "value": v,
                "passed": v <= mg,
                "message": f"global risk {100 * v:.3f}% (expected re-identifications "
                f"{summary['global_risk']['expected_reidentifications']:.2f})",
            }
        )
    mi = targets.get("max_individual_risk")
    if mi is not None:
        v = summary["individual_risk"].get("n_above_target", 0)
        checks.append(
            {
                "target": f"individual risk ≤ {mi:g}",
                "value": v,
                "passed": v == 0,
                "message": f"{v} records have an individual risk above {mi:g}",
            }
        )
    return (
        checks
        + combination_checks(summary.get("key_combinations"))
        + population_checks(summary.get("population"))
        + robust_checks(summary, targets)
    )
