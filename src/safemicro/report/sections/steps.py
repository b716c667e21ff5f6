"""The steps section: what each step did, for the internal and the external report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..format import _num, fmt_int
from .common import _list, _map, _names, _params, _text


def _step_variables(step: Mapping[str, Any]) -> list[dict[str, str]]:
    changed, suppressed = _map(step.get("changed")), _map(step.get("suppressed"))
    return [
        {"name": n, "changed": fmt_int(changed.get(n, 0)), "suppressed": fmt_int(suppressed.get(n, 0))}
        for n in dict.fromkeys([*changed, *suppressed])
    ]


def _removed(step: Mapping[str, Any]) -> dict[str, Any] | None:
    """Columns a step dropped, as ``{names, text}``: "2 columns × 9,902 records removed"."""
    names = _names(step.get("removed")) or _names(_map(step.get("details")).get("removed"))
    if not names:
        return None
    n = len(names)
    records = _num(step.get("records_touched"))
    size = f"{n} column{'s' if n != 1 else ''}" + (f" × {fmt_int(records)} records" if records else "")
    return {"names": names, "text": f"{size} removed"}


def _internal_steps(steps: Any) -> list[dict[str, Any]]:
    out = []
    for s in _list(steps):
        if not isinstance(s, Mapping):
            continue
        out.append(
            {
                "index": _text(s.get("index")),
                "name": str(s.get("name", "")),
                "description": str(s.get("description") or ""),
                "params": [(k, v) for k, v in _params(s.get("params")) if not (k == "seed" and v == "default")],
                "seed": None if s.get("seed") is None else str(s.get("seed")),
                "records_touched": fmt_int(s.get("records_touched")),
                "cells_changed": fmt_int(sum(_num(v) or 0 for v in _map(s.get("changed")).values())),
                "cells_suppressed": fmt_int(sum(_num(v) or 0 for v in _map(s.get("suppressed")).values())),
                "variables": _step_variables(s),
                "removed": _removed(s),
                "details": _params(s.get("details")),
                "notes": [str(n) for n in _list(s.get("notes"))],
                "perturbative": bool(s.get("perturbative")),
            }
        )
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
        removed = _removed(s)
        if removed:
            parts.append(removed["text"] + ": " + ", ".join(removed["names"]))
        if changed:
            parts.append(f"{fmt_int(changed)} value{'s' if changed != 1 else ''} changed")
        if suppressed:
            parts.append(f"{fmt_int(suppressed)} of them set to missing")
        if _num(s.get("records_touched")) and not removed:
            parts.append(f"{fmt_int(s['records_touched'])} records affected")
        out.append(
            {
                "description": str(s.get("description") or s.get("name") or ""),
                "counts": ", ".join(parts),
                "perturbative": bool(s.get("perturbative")),
            }
        )
    return out


CAPPING = ("topcode", "bottomcode")  # steps that cap extreme values


def _changed_variables(steps: list[Any]) -> tuple[list[str], list[str], list[str]]:
    """Variables whose values were changed (not only suppressed) by perturbative steps, by
    recodes that group categories, and by top/bottom coding that capped values."""
    perturbed: dict[str, None] = {}
    recoded: dict[str, None] = {}
    capped: dict[str, None] = {}
    for s in steps:
        if not isinstance(s, Mapping) or s.get("name") == "new_ids":  # new ids are not a recode
            continue
        suppressed = _map(s.get("suppressed"))
        for name, v in _map(s.get("changed")).items():
            if (_num(v) or 0) > (_num(suppressed.get(name)) or 0):
                kind = perturbed if s.get("perturbative") else capped if s.get("name") in CAPPING else recoded
                kind[name] = None
    return (list(perturbed), [n for n in recoded if n not in perturbed], [n for n in capped if n not in perturbed])


def _direct_ids(view: Mapping[str, Any], steps: list[Any]) -> list[str]:
    """Removed variables that are direct identifiers: named so in the roles, or removed by
    ``remove_direct_ids``."""
    named = set(_names(view.get("direct_ids")))
    for s in steps:
        if isinstance(s, Mapping) and s.get("name") == "remove_direct_ids":
            named |= set(_names(s.get("removed")) or _names(_map(s.get("details")).get("removed")))
    return [n for n in _names(view.get("removed_variables")) if n in named]
