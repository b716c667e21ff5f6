"""The plan's attribute-disclosure targets checked against :func:`attribute_disclosure`'s summary."""

from __future__ import annotations

from typing import Any

__all__ = ["attribute_checks", "ATTRIBUTE_TARGETS"]

# target -> (summary measure, records above it, what the number means)
ATTRIBUTE_TARGETS = {
    "t_closeness": (
        "t_closeness",
        "n_records_above_t",
        "t-closeness",
        "distance between a key group's {s} and the whole file's (0: the group tells nothing)",
    ),
    "delta_disclosure": (
        "delta_disclosure",
        "n_records_above_delta",
        "δ-disclosure",
        "largest |ln(q/p)|: how many times more (or less) likely a value of {s} is in a key group",
    ),
    "beta_likeness": (
        "beta_likeness",
        "n_records_above_beta",
        "β-likeness",
        "largest relative gain (q − p)/p in the share of a value of {s} within a key group",
    ),
    "max_sensitive_share": (
        "alpha",
        "n_records_above_alpha",
        "(α,k)-anonymity α",
        "largest share of one value of {s} within a key group",
    ),
}


def attribute_checks(section: dict[str, Any] | None, targets: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One check per attribute-disclosure target in the plan, over every sensitive variable.

    Passed when no record lies in a key group above the target for any sensitive variable
    (``passed`` None when the plan names no sensitive variable)."""
    targets = targets or {}
    checks: list[dict[str, Any]] = []
    for target, (measure, above, name, _) in ATTRIBUTE_TARGETS.items():
        limit = targets.get(target)
        if limit is None:
            continue
        label = f"{name} ≤ {limit:g}"
        if not section:
            checks.append(
                {
                    "target": label,
                    "value": None,
                    "passed": None,
                    "applicable": False,
                    "message": "no sensitive variables",
                }
            )
            continue
        worst = max((v.get(measure) or 0.0) for v in section.values())
        n = sum(int(v.get(above) or 0) for v in section.values())
        extra = ""
        if target == "beta_likeness":
            n_enh = sum(int(v.get("n_records_above_beta_enhanced") or 0) for v in section.values())
            extra = f"; {n_enh} above the enhanced cap min(β, −ln p)"
        checks.append(
            {
                "target": label,
                "value": worst,
                "passed": n == 0,
                "message": f"largest {name} {worst:.4g}: {n} records in key groups above {limit:g}{extra}",
            }
        )
    return checks
