"""The utility section: indicators, regressions, per-variable distances, numeric loss, tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..format import _num, fmt_int, fmt_num, fmt_prob
from .common import _list, _map, _names, _text

LOW_OVERLAP = 0.5  # CI overlap below this: the release does not support the estimate well


def _arrow(before: Any, after: Any, fmt=fmt_num) -> str:
    """``"a → b"``, or one value when both sides agree, or ``"–"`` when both are unknown."""
    if before is None and after is None:
        return "–"
    b, a = fmt(before) if before is not None else "–", fmt(after) if after is not None else "–"
    return b if b == a else f"{b} → {a}"


def _estimate(side: Any) -> str:
    """``"5,010 [4,805, 5,215]"``: an estimate with its confidence interval."""
    s = _map(side)
    if s.get("estimate") is None:
        return "–"
    lo, hi = s.get("lower"), s.get("upper")
    ci = f" [{fmt_num(lo)}, {fmt_num(hi)}]" if lo is not None and hi is not None else ""
    return fmt_num(s["estimate"]) + ci


def _difference(row: Mapping[str, Any]) -> str:
    if row.get("difference") is None:
        return "–"
    rel = _num(row.get("relative_difference"))
    if not rel:
        return fmt_num(row["difference"])
    pct = 100 * rel
    return fmt_num(row["difference"]) + (f" ({pct:+.1f} %)" if abs(pct) >= 0.1 else f" ({pct:+.2g} %)")


def _overlap_text(x: float | None) -> str:
    """Karr et al.'s interval overlap: 1 = identical, below 0 the intervals are disjoint."""
    if x is None:
        return "–"
    return "disjoint" if x < 0 else fmt_prob(x)


def _overlap(row: Mapping[str, Any]) -> dict[str, Any]:
    """CI overlap as text, flagged when the intervals overlap by less than half."""
    x = _num(row.get("ci_overlap"))
    return {"overlap": _overlap_text(x), "flag": x is not None and x < LOW_OVERLAP}


def _value_label(value: Any, label: Any) -> str:
    if value is None:
        return ""
    text = _text(value)
    return f"{text} · {label}" if label not in (None, "") and str(label) != text else text


def _pram(row: Mapping[str, Any]) -> str:
    """A PRAMed variable's corrected estimate after the naive one (internal report only)."""
    if "after_pram_corrected" not in row:
        return ""
    corrected = row["after_pram_corrected"]
    if corrected is None:
        return " (PRAM: this interval is too narrow)"
    return f"; PRAM-corrected {_estimate(corrected)}"


def _indicator_rows(rows: Any) -> list[dict[str, Any]]:
    out = []
    for r in _list(rows):
        if not isinstance(r, Mapping):
            continue
        where = []
        if r.get("value") is not None:
            where.append(f"{r.get('variable', '')} = {_value_label(r.get('value'), r.get('value_label'))}")
        if r.get("by"):
            where.append(f"{r['by']} = {_value_label(r.get('domain'), r.get('domain_label'))}")
        out.append(
            {
                "indicator": str(r.get("indicator") or r.get("variable") or ""),
                "where": "; ".join(where),
                "before": _estimate(r.get("before")),
                "after": _estimate(r.get("after")) + _pram(r),
                "difference": _difference(r),
            }
            | _overlap(r)
        )
    return out


def _regressions(regs: Any) -> list[dict[str, Any]]:
    out = []
    for g in _list(regs):
        if not isinstance(g, Mapping):
            continue
        terms = [
            {
                "term": str(c.get("term", "")),
                "before": _estimate(c.get("before")),
                "after": _estimate(c.get("after")),
                "difference": _difference(c),
            }
            | _overlap(c)
            for c in _list(g.get("coefficients"))
            if isinstance(c, Mapping)
        ]
        kind = " ".join(str(x) for x in (g.get("kind"), "weighted" if g.get("weighted") else "") if x)
        out.append(
            {
                "model": f"{g.get('outcome', '')} ~ {' + '.join(_names(g.get('predictors')))}",
                "kind": kind,
                "n": _arrow(g.get("n_before"), g.get("n_after"), fmt_int),
                "mean_overlap": _overlap_text(_num(g.get("mean_ci_overlap"))),
                "terms": terms,
            }
        )
    return out


def _variable_rows(rows: Any) -> tuple[list[dict[str, str]], list[dict[str, str]], list[str]]:
    """Per-variable rows of the kept categorical and numeric variables, and the removed names."""
    kept, numeric, removed = [], [], []
    for r in _list(rows):
        if not isinstance(r, Mapping):
            continue
        name = str(r.get("variable") or r.get("name") or "")
        if r.get("status") == "removed":
            removed.append(name)
            continue
        if r.get("status") == "added":
            continue
        tvd = r.get("tvd_weighted") if r.get("tvd_weighted") is not None else r.get("tvd")
        hel = r.get("hellinger_weighted") if r.get("hellinger_weighted") is not None else r.get("hellinger")
        (numeric if r.get("kind") == "numeric" else kept).append(
            {
                "name": name,
                "role": str(r.get("role") or "").replace("_", " "),
                "changed": fmt_int(r.get("changed")),
                "suppressed": fmt_int(r.get("suppressed")),
                "missing": _arrow(r.get("missing_before"), r.get("missing_after"), fmt_int),
                "tvd": fmt_prob(tvd) if tvd is not None else "–",
                "hellinger": fmt_prob(hel) if hel is not None else "–",
                "categories": _arrow(r.get("categories_before"), r.get("categories_after"), fmt_int),
                "mean": _arrow(r.get("mean_before"), r.get("mean_after")),
                "sd": _arrow(r.get("sd_before"), r.get("sd_after")),
            }
        )
    return kept, numeric, removed


NUMERIC_LOSS = (
    ("il1", "IL1 (sum of absolute differences)", fmt_num),
    ("il1s", "IL1s (scaled by the standard deviation)", fmt_num),
    ("eigen", "Eigenvalue change of the correlation matrix", fmt_prob),
    ("correlation_max_diff", "Largest change of a correlation", fmt_prob),
    ("interval_disclosure", "Interval disclosure risk (original within released ± 5 % sd)", fmt_prob),
    ("records_used", "Records compared", fmt_int),
)


def _numeric_loss(numeric: Any) -> list[dict[str, str]]:
    n = _map(numeric)
    facts = [{"label": label, "value": fmt(n[key])} for key, label, fmt in NUMERIC_LOSS if n.get(key) is not None]
    if facts and _names(n.get("variables")):
        facts.insert(0, {"label": "Variables", "value": ", ".join(_names(n.get("variables")))})
    return facts


def _pair_tables(rows: Any) -> list[dict[str, Any]]:
    """Two-way table distances, the largest first (removed pairs last)."""
    out = []
    for r in _list(rows):
        if not isinstance(r, Mapping):
            continue
        tvd = r.get("tvd_weighted") if r.get("tvd_weighted") is not None else r.get("tvd")
        loss = (r.get("info_loss") or {}).get("measures") or {}
        absd, relabsd = loss.get("absD") or {}, loss.get("relabsD") or {}
        out.append(
            {
                "pair": " × ".join(_names(r.get("variables"))),
                "absd": f"{absd['mean']:.2f} / {absd['max']:.0f}" if absd.get("mean") is not None else "–",
                "relabsd": fmt_prob(relabsd["max"]) if relabsd.get("max") is not None else "–",
                "removed": r.get("status") == "removed",
                "tvd": fmt_prob(tvd) if tvd is not None else "–",
                "hellinger": fmt_prob(r.get("hellinger")) if r.get("hellinger") is not None else "–",
                "cells": _arrow(r.get("cells_before"), r.get("cells_after"), fmt_int),
                "size": -1.0 if _num(tvd) is None else _num(tvd),
            }
        )
    return sorted(out, key=lambda t: -t["size"])


def _quantile_rows(rows: Any, names: list[str]) -> list[dict[str, Any]]:
    out = []
    for r in _list(rows):
        if not isinstance(r, Mapping) or str(r.get("variable")) not in names:
            continue
        probs = [_num(p) for p in _list(r.get("quantile_probs"))]
        for side in ("before", "after"):
            values = _list(r.get(f"quantiles_{side}"))
            if len(values) == len(probs) and probs:
                out.append(
                    {"name": str(r["variable"]), "side": side, "probs": probs, "values": [fmt_num(v) for v in values]}
                )
    return out


def _plot_quantiles(rows: Any, names: list[str]) -> dict[str, Any]:
    """``{variable: {probs, before, after}}`` without the minimum and maximum (they dwarf the rest)."""
    out = {}
    for r in _list(rows):
        if not isinstance(r, Mapping) or str(r.get("variable")) not in names:
            continue
        probs = [_num(p) for p in _list(r.get("quantile_probs"))]
        inner = [i for i, p in enumerate(probs) if p is not None and 0 < p < 1]
        body = {"probs": [probs[i] for i in inner]}
        for side in ("before", "after"):
            values = _list(r.get(f"quantiles_{side}"))
            body[side] = [values[i] for i in inner] if len(values) == len(probs) else None
        if inner and (body["before"] or body["after"]):
            out[str(r["variable"])] = body
    return out


def _plot_marginals(rows: Any, names: list[str]) -> dict[str, Any]:
    """``{variable: {categories, before, after}}`` (shares) in code order, missing and rest last."""
    out = {}
    for r in _list(rows):
        if not isinstance(r, Mapping) or str(r.get("variable")) not in names:
            continue
        cats = [c for c in _list(r.get("marginal")) if isinstance(c, Mapping)]
        values = [c for c in cats if c.get("kind") == "value"]
        if all(_num(c.get("value")) is not None for c in values):
            values.sort(key=lambda c: _num(c.get("value")))
        cats = values + [c for c in cats if c.get("kind") != "value"]
        if cats:
            out[str(r["variable"])] = {
                "categories": [
                    str(c.get("label") or _text(c.get("value")))
                    if c.get("kind") != "value"
                    else _value_label(c.get("value"), c.get("label"))
                    for c in cats
                ],
                "before": [_num(c.get("share_before")) or 0.0 for c in cats],
                "after": [_num(c.get("share_after")) or 0.0 for c in cats],
            }
    return out


def _design_size(design: Mapping[str, Any]) -> str:
    parts = [
        f"{fmt_int(design[k])} {what}"
        for k, what in (("strata_count", "strata"), ("psu_count", "PSUs"))
        if _num(design.get(k))
    ]
    return f" ({', '.join(parts)})" if parts else ""


def _utility(utility: Any) -> dict[str, Any] | None:
    u = _map(utility)
    if not u:
        return None
    variables, numeric_vars, removed = _variable_rows(u.get("variables"))
    design = _map(u.get("design"))
    level = _num(design.get("confidence_level"))
    ctx = {
        "variables": variables,
        "numeric_variables": numeric_vars,
        "removed": removed,
        "numeric": _numeric_loss(u.get("numeric")),
        "tables": _pair_tables(u.get("tables")),
        "indicators": _indicator_rows(u.get("indicators")),
        "regressions": _regressions(u.get("regressions")),
        "notes": [str(n) for n in _list(u.get("notes"))],
        "variance": str(design.get("variance") or "") + _design_size(design),
        "level": f"{100 * level:g} %" if level is not None else "",
    }
    return ctx if any(v for k, v in ctx.items() if k not in ("variance", "level")) else None
