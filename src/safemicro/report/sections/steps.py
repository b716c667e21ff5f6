"""The steps section: what each step did, for the internal and the external report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..format import _num, fmt_int
from .common import _list, _map, _params, _text


def _step_variables(step: Mapping[str, Any]) -> list[dict[str, str]]:
    changed, suppressed = _map(step.get("changed")), _map(step.get("suppressed"))
    return [{"name": n, "changed": fmt_int(changed.get(n, 0)), "suppressed": fmt_int(suppressed.get(n, 0))}
            for n in dict.fromkeys([*changed, *suppressed])]


def _internal_steps(steps: Any) -> list[dict[str, Any]]:
    out = []
    for s in _list(steps):
        if not isinstance(s, Mapping):
            continue
        out.append({
            "index": _text(s.get("index")),
            "name": str(s.get("name", "")),
            "description": str(s.get("description") or ""),
            "params": [(k, v) for k, v in _params(s.get("params")) if not (k == "seed" and v == "default")],
            "seed": None if s.get("seed") is None else str(s.get("seed")),
            "records_touched": fmt_int(s.get("records_touched")),
            "cells_changed": fmt_int(sum(_num(v) or 0 for v in _map(s.get("changed")).values())),
            "cells_suppressed": fmt_int(sum(_num(v) or 0 for v in _map(s.get("suppressed")).values())),
            "variables": _step_variables(s),
            "details": _params(s.get("details")),
            "notes": [str(n) for n in _list(s.get("notes"))],
            "perturbative": bool(s.get("perturbative")),
        })
    return out


def _totals(steps: Any, field: str) -> dict[str, float]:
    """Cells per variable summed over the steps (a cell changed twice counts twice)."""
    out: dict[str, float] = {}
    for s in _list(steps):
        for name, v in _map(s.get(field) if isinstance(s, Mapping) else None).items():
            out[name] = out.get(name, 0.0) + (_num(v) or 0.0)
    return out


def _external_steps(steps: Any) -> list[dict[str, Any]]:
    out = []
    for s in _list(steps):
        if not isinstance(s, Mapping):
            continue
        changed = sum(_num(v) or 0 for v in _map(s.get("changed")).values())
        suppressed = sum(_num(v) or 0 for v in _map(s.get("suppressed")).values())
        parts = []
        if changed:
            parts.append(f"{fmt_int(changed)} value{'s' if changed != 1 else ''} changed")
        if suppressed:
            parts.append(f"{fmt_int(suppressed)} of them set to missing")
        if _num(s.get("records_touched")):
            parts.append(f"{fmt_int(s['records_touched'])} records affected")
        out.append({"description": str(s.get("description") or s.get("name") or ""),
                    "counts": ", ".join(parts), "perturbative": bool(s.get("perturbative"))})
    return out


def _changed_variables(steps: list[Any]) -> tuple[list[str], list[str]]:
    """Variables with values changed by perturbative steps, and by the others (not suppressed)."""
    perturbed: dict[str, None] = {}
    recoded: dict[str, None] = {}
    for s in steps:
        if not isinstance(s, Mapping) or s.get("name") == "new_ids":  # new ids are not a recode
            continue
        suppressed = _map(s.get("suppressed"))
        for name, v in _map(s.get("changed")).items():
            if (_num(v) or 0) > (_num(suppressed.get(name)) or 0):
                (perturbed if s.get("perturbative") else recoded)[name] = None
    return list(perturbed), [n for n in recoded if n not in perturbed]
