"""Forgiving readers of the JSON report and small formatters shared by the release pages."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from ..format import TIERS, _num, fmt_int, fmt_num, fmt_prob, fmt_target_pct


def _map(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _names(value: Any) -> list[str]:
    """A role value (name, list of names or None) as a list of names."""
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _text(value: Any) -> str:
    """Any JSON value as one table cell."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return fmt_num(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _params(params: Any) -> list[tuple[str, str]]:
    """Parameters as (name, text) pairs: JSON for values, "default" for an unset (null) one."""
    return [
        (k, v if isinstance(v, str) else "default" if v is None else json.dumps(v, ensure_ascii=False, default=str))
        for k, v in _map(params).items()
    ]


def _tier(tier: Any) -> dict[str, str] | None:
    if not tier:
        return None
    name, text = TIERS.get(str(tier).lower(), (str(tier), ""))
    return {"code": str(tier).upper(), "name": name, "text": text}


def _svg(markup: str | None) -> Markup | None:
    return Markup(markup) if markup else None


def _checks(raw: Any) -> list[dict[str, Any]]:
    out = []
    for item in _list(raw):
        if not isinstance(item, Mapping):
            continue
        passed = item.get("passed")
        out.append(
            {
                "target": str(item.get("target", "")),
                "value": _text(item.get("value")),
                "status": "pass" if passed is True else "fail" if passed is False else None,
                "message": str(item.get("message") or ""),
            }
        )
    return out


# ---------------------------------------------------------------------------------------
# risk before / after
# ---------------------------------------------------------------------------------------


def _get(summary: Mapping[str, Any], *path: str) -> Any:
    value: Any = summary
    for p in path:
        value = value.get(p) if isinstance(value, Mapping) else None
    return value


def _violations(summary: Mapping[str, Any]) -> dict[str, Any]:
    return _map(_get(summary, "k_anonymity", "violations"))


def _target_lines(targets: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    if targets.get("k") is not None:
        out.append(("k-anonymity", f"every key combination shared by at least {fmt_int(targets['k'])} records"))
    if _num(targets.get("max_global_risk")) is not None:
        out.append(("Global risk", f"at most {fmt_target_pct(targets['max_global_risk'])}"))
    if _num(targets.get("max_individual_risk")) is not None:
        out.append(("Individual risk", f"no record above {fmt_prob(targets['max_individual_risk'])}"))
    return out
