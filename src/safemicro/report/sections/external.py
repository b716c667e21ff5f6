"""The external report's view: what was done in words, the residual risk, how to analyse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..format import _num, fmt_er, fmt_int, fmt_pct
from .common import _list, _map, _names, _tier, _violations
from .steps import _changed_variables, _direct_ids, _external_steps, _totals
from .utility import _indicator_rows, _regressions, _variable_rows


def _residual_risk(risk: Mapping[str, Any], n_records: Any) -> list[str]:
    """The risk left in the released file, in plain sentences."""
    out = []
    keys = _names(risk.get("keys"))
    viol = {int(k): _num(v) for k, v in _violations(risk).items() if _num(k) is not None}
    if viol:
        safe = [k for k, v in sorted(viol.items()) if v == 0]
        unsafe = [(k, v) for k, v in sorted(viol.items()) if v]
        what = f"the key variables ({', '.join(keys)})" if keys else "the key variables"
        if safe:
            out.append(f"Every combination of {what} is shared by at least {max(safe)} records in the file.")
        if unsafe:
            k, v = unsafe[0]
            out.append(
                f"{fmt_int(v)} records are unique in the file on {what}."
                if k == 2
                else f"{fmt_int(v)} records have a combination of {what} that fewer than {k} records in the file share."
            )
    glob = _map(risk.get("global_risk"))
    er, pct = glob.get("expected_reidentifications"), glob.get("percent")
    if _num(er) is not None:
        of = f" of {fmt_int(n_records)}" if _num(n_records) else ""
        share = f" ({fmt_pct(pct)})" if _num(pct) is not None else ""
        out.append(
            f"An intruder who knows these variables about people in the file would be expected "
            f"to identify about {fmt_er(er)}{of} records correctly{share}."
        )
    hh = _map(risk.get("household_risk"))
    if _num(hh.get("percent")) is not None:
        out.append(
            f"Because one identified member reveals the whole household, the household-level "
            f"risk is higher: {fmt_pct(hh.get('percent'))}."
        )
    num = _map(risk.get("numeric_risk"))
    if _num(num.get("interval_disclosure")) is not None and num.get("compared_with") == "original":
        names = ", ".join(_names(num.get("variables")))
        out.append(
            f"On the numeric variables ({names}), {fmt_pct(100 * _num(num['interval_disclosure']))} of records "
            "have released values all within 5 % of a standard deviation of their true values, and "
            f"an intruder holding the true values would link {fmt_pct(100 * (_num(num.get('linkage_disclosure')) or 0))} "
            "of records to their own released record."
        )
    return out


def _external_context(view: Mapping[str, Any]) -> dict[str, Any]:
    steps = _list(view.get("steps"))
    suppressed = _totals(steps, "suppressed")
    perturbed, recoded, capped = _changed_variables(steps)
    direct = _direct_ids(view, steps)
    utility = _map(view.get("utility"))
    weight = _map(view.get("weight"))
    return {
        "title": str(view.get("title") or "Anonymized data file"),
        "version": view.get("safemicro_version"),
        "tier": _tier(view.get("tier")),
        "unit": str(view.get("unit") or ""),
        "n_records": fmt_int(view.get("n_records")) if view.get("n_records") is not None else None,
        "n_variables": len(_list(view.get("variables"))) or None,
        "removed": _names(view.get("removed_variables")),
        "removed_ids": direct,
        "removed_other": [n for n in _names(view.get("removed_variables")) if n not in direct],
        "steps": _external_steps(steps),
        "suppressed": [{"name": n, "count": fmt_int(c)} for n, c in suppressed.items() if c],
        "perturbed": perturbed,
        "recoded": recoded,
        "capped": capped,
        "weight": {"name": str(weight["name"]), "adjusted": bool(weight.get("adjusted"))}
        if weight.get("name")
        else None,
        "residual_risk": _residual_risk(_map(view.get("risk_after")), view.get("n_records")),
        "indicators": _indicator_rows(utility.get("indicators")),
        "regressions": _regressions(utility.get("regressions")),
        "variables": [v for rows in _variable_rows(utility.get("variables"))[:2] for v in rows],
        "warnings": [str(w) for w in _list(view.get("warnings")) if w],
    }
