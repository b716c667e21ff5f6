"""The release bundle's HTML pages: internal report, external report, approval form.

``anonymize`` builds a JSON-friendly report; these functions turn it (or the views
derived from it) into self-contained, printable pages in the style of the risk report:

* :func:`render_internal_report` — ``report.html`` for the curator: every step with its
  parameters, seed and changes, risk before/after, checks, utility, figures, warnings.
* :func:`render_external_report` — ``external_report.html`` for users, from
  ``external_view(report)``: what was done in words, residual risk, how to analyse the
  file validly. It shows nothing that would help undo a perturbation (no seed, no matrix).
* :func:`render_disclosure_risk_assessment` — the filled approval form, with blanks for
  what a reviewer still has to fill in and a signature line.

Everything is read defensively (a missing section is left out) and rendered with
autoescaping; the same input gives the same bytes (no clock, deterministic SVG).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from safemicro import __version__
from safemicro.risk.individual import risk_histogram

from . import plots
from .risk_report import (
    RULE_HIGH_RISK,
    TIERS,
    _environment,
    _num,
    fmt_er,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_prob,
    fmt_target_pct,
)

__all__ = [
    "render_internal_report",
    "render_external_report",
    "render_disclosure_risk_assessment",
    "risk_histogram",
]

LOW_OVERLAP = 0.5  # CI overlap below this: the release does not support the estimate well
MAX_PANELS = 8  # numeric variables drawn in the quantile figure
# ---------------------------------------------------------------------------------------
# small readers and formatters
# ---------------------------------------------------------------------------------------


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
    return [(k, v if isinstance(v, str) else "default" if v is None else json.dumps(v, ensure_ascii=False, default=str))
            for k, v in _map(params).items()]


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
        out.append({
            "target": str(item.get("target", "")),
            "value": _text(item.get("value")),
            "status": "pass" if passed is True else "fail" if passed is False else None,
            "message": str(item.get("message") or ""),
        })
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


def _risk_rows(before: Mapping[str, Any], after: Mapping[str, Any], target_k: Any) -> list[dict[str, Any]]:
    """Side-by-side rows; ``lower`` rows are better when they go down."""
    rows: list[dict[str, Any]] = []

    def row(label, path, fmt, lower=True, note=""):
        b, a = _get(before, *path), _get(after, *path)
        if b is None and a is None:
            return
        nb, na = _num(b), _num(a)
        trend = ""
        if lower and nb is not None and na is not None and nb != na:
            trend = "better" if na < nb else "worse"
        rows.append({"label": label, "before": fmt(b) if b is not None else "–",
                     "after": fmt(a) if a is not None else "–", "trend": trend, "note": note})

    row("Records", ("n_records",), fmt_int, lower=False)
    row("Distinct key combinations", ("k_anonymity", "n_distinct_keys"), fmt_int, lower=False)
    row("Sample uniques (fk = 1)", ("k_anonymity", "n_sample_uniques"), fmt_int)
    ks = sorted(set(_violations(before)) | set(_violations(after)), key=lambda k: _num(k) or 0)
    for k in ks:
        row(f"Records violating {k}-anonymity", ("k_anonymity", "violations", k), fmt_int,
            note="target" if str(target_k) == k else "")
    row("Global risk", ("global_risk", "percent"), fmt_pct)
    row("Expected re-identifications", ("global_risk", "expected_reidentifications"), fmt_er)
    row("Household risk", ("household_risk", "percent"), fmt_pct)
    row("Expected re-identifications (households)", ("household_risk", "expected_reidentifications"), fmt_er)
    row("Highest individual risk", ("individual_risk", "max"), fmt_prob)
    row("Median individual risk", ("individual_risk", "median"), fmt_prob)
    row("Records with risk above 0.1", ("individual_risk", "n_above_0_1"), fmt_int)
    row("Records above the individual-risk target", ("individual_risk", "n_above_target"), fmt_int)
    row("Risky records (above median + 2·MAD and 0.1)", ("individual_risk", "n_risky"), fmt_int)
    row("Records with a special unique (SUDA score > 0)", ("suda2", "n_score_gt0"), fmt_int)
    row("Highest DIS-SUDA score", ("suda2", "max_dis"), fmt_prob)
    row("Sum of DIS-SUDA scores", ("suda2", "sum_dis"), fmt_num)
    sens = list(dict.fromkeys([*_map(before.get("l_diversity")), *_map(after.get("l_diversity"))]))
    for s in sens:
        row(f"Records in groups where {s} takes one value (l = 1)",
            ("l_diversity", s, "distinct", "n_eq1"), fmt_int)
    row("Records with an outlying numeric key value", ("numeric_risk", "n_records_with_outlier"), fmt_int)
    row("Interval disclosure: share of records whose numeric keys all lie within ±5 % sd of the released values",
        ("numeric_risk", "interval_disclosure"), fmt_prob)
    row("Record linkage: share of records whose nearest released record on the numeric keys is their own",
        ("numeric_risk", "linkage_disclosure"), fmt_prob)
    if before.get("k_anonymity") is None and after.get("k_anonymity") is None:
        rows.insert(1, {"label": "k-anonymity, individual, global and household risk", "before": "not applicable",
                        "after": "not applicable", "trend": "", "note": "no categorical key variables"})
    return rows


def _suda_contributions(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, str]]:
    b = _map(_get(before, "suda2", "attribute_contributions"))
    a = _map(_get(after, "suda2", "attribute_contributions"))
    names = sorted(dict.fromkeys([*b, *a]), key=lambda n: -(_num(b.get(n)) or 0))
    return [{"name": n, "before": fmt_pct(b.get(n), 1) if n in b else "–",
             "after": fmt_pct(a.get(n), 1) if n in a else "–"} for n in names]


def _risk_figure(before: Mapping[str, Any], after: Mapping[str, Any], target: float | None) -> Markup | None:
    hb = _get(before, "individual_risk", "histogram")
    ha = _get(after, "individual_risk", "histogram")
    svg = plots.risk_overlay_svg(hb, ha, target=target, rule=RULE_HIGH_RISK) if hb or ha else None
    if svg is None:
        svg = plots.risk_range_svg(_get(before, "individual_risk"), _get(after, "individual_risk"),
                                   target=target, rule=RULE_HIGH_RISK)
    return _svg(svg)


# ---------------------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# utility
# ---------------------------------------------------------------------------------------


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
        out.append({"indicator": str(r.get("indicator") or r.get("variable") or ""),
                    "where": "; ".join(where),
                    "before": _estimate(r.get("before")), "after": _estimate(r.get("after")),
                    "difference": _difference(r)} | _overlap(r))
    return out


def _regressions(regs: Any) -> list[dict[str, Any]]:
    out = []
    for g in _list(regs):
        if not isinstance(g, Mapping):
            continue
        terms = [{"term": str(c.get("term", "")), "before": _estimate(c.get("before")),
                  "after": _estimate(c.get("after")), "difference": _difference(c)} | _overlap(c)
                 for c in _list(g.get("coefficients")) if isinstance(c, Mapping)]
        kind = " ".join(str(x) for x in (g.get("kind"), "weighted" if g.get("weighted") else "") if x)
        out.append({
            "model": f"{g.get('outcome', '')} ~ {' + '.join(_names(g.get('predictors')))}",
            "kind": kind,
            "n": _arrow(g.get("n_before"), g.get("n_after"), fmt_int),
            "mean_overlap": _overlap_text(_num(g.get("mean_ci_overlap"))),
            "terms": terms,
        })
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
        (numeric if r.get("kind") == "numeric" else kept).append({
            "name": name, "role": str(r.get("role") or "").replace("_", " "),
            "changed": fmt_int(r.get("changed")), "suppressed": fmt_int(r.get("suppressed")),
            "missing": _arrow(r.get("missing_before"), r.get("missing_after"), fmt_int),
            "tvd": fmt_prob(tvd) if tvd is not None else "–",
            "hellinger": fmt_prob(hel) if hel is not None else "–",
            "categories": _arrow(r.get("categories_before"), r.get("categories_after"), fmt_int),
            "mean": _arrow(r.get("mean_before"), r.get("mean_after")),
            "sd": _arrow(r.get("sd_before"), r.get("sd_after")),
        })
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
        out.append({"pair": " × ".join(_names(r.get("variables"))),
                    "removed": r.get("status") == "removed",
                    "tvd": fmt_prob(tvd) if tvd is not None else "–",
                    "hellinger": fmt_prob(r.get("hellinger")) if r.get("hellinger") is not None else "–",
                    "cells": _arrow(r.get("cells_before"), r.get("cells_after"), fmt_int),
                    "size": -1.0 if _num(tvd) is None else _num(tvd)})
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
                out.append({"name": str(r["variable"]), "side": side, "probs": probs,
                            "values": [fmt_num(v) for v in values]})
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
                "categories": [str(c.get("label") or _text(c.get("value"))) if c.get("kind") != "value"
                               else _value_label(c.get("value"), c.get("label")) for c in cats],
                "before": [_num(c.get("share_before")) or 0.0 for c in cats],
                "after": [_num(c.get("share_after")) or 0.0 for c in cats],
            }
    return out


def _design_size(design: Mapping[str, Any]) -> str:
    parts = [f"{fmt_int(design[k])} {what}" for k, what in (("strata_count", "strata"), ("psu_count", "PSUs"))
             if _num(design.get(k))]
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


# ---------------------------------------------------------------------------------------
# the three pages
# ---------------------------------------------------------------------------------------


def _internal_context(report: Mapping[str, Any]) -> dict[str, Any]:
    before, after = _map(report.get("risk_before")), _map(report.get("risk_after"))
    targets = _map(report.get("targets"))
    info, source = _map(report.get("release_info")), _map(report.get("input"))
    release = _map(report.get("release"))
    target_k = targets.get("k")
    target_ind = _num(targets.get("max_individual_risk"))
    steps = report.get("steps")
    utility = _map(report.get("utility"))
    rows = _list(utility.get("variables"))
    roles = _map(report.get("roles"))
    net = [r for r in rows if isinstance(r, Mapping) and r.get("status") == "kept"]
    if net:  # cells that differ from the input, per variable
        suppressed = {str(r.get("variable")): r.get("suppressed") for r in net}
        changed = {str(r.get("variable")): r.get("changed") for r in net}
    else:  # no utility section: the steps' own counts
        suppressed, changed = _totals(steps, "suppressed"), _totals(steps, "changed")
    numeric = _names(roles.get("numeric_keys")) or [
        str(r.get("variable")) for r in net if r.get("quantiles_before") is not None]
    figures = {
        "risk": _risk_figure(before, after, target_ind),
        "violations": _svg(plots.violations_before_after_svg(
            _violations(before), _violations(after), target_k=int(_num(target_k)) if _num(target_k) else None)),
        "changes": _svg(plots.changes_per_variable_svg(suppressed, changed)),
        "marginals": _svg(plots.marginals_before_after_svg(_plot_marginals(rows, _names(roles.get("keys"))))),
        "quantiles": _svg(plots.quantiles_before_after_svg(_plot_quantiles(rows, numeric[:MAX_PANELS]))),
    }
    met = report.get("targets_met")
    return {
        "title": str(info.get("title") or source.get("file") or "Anonymized release"),
        "version": report.get("safemicro_version"),
        "input": {
            "file": source.get("file"),
            "sha256": source.get("sha256"),
            "records": fmt_int(source.get("n_records")) if source.get("n_records") is not None else None,
            "variables": fmt_int(source.get("n_variables")) if source.get("n_variables") is not None else None,
            "derived_from": _params(source.get("derived_from")),
        },
        "tier": _tier(_map(report.get("scenario")).get("tier")),
        "scenario": str(_map(report.get("scenario")).get("description") or ""),
        "seed": None if report.get("seed") is None else str(report.get("seed")),
        "reviewer": str(info.get("reviewer") or ""),
        "date": str(info.get("date") or ""),
        "targets": _target_lines(targets),
        "targets_met": met if isinstance(met, bool) else None,
        "checks": _checks(report.get("checks")),
        "risk_rows": _risk_rows(before, after, target_k),
        "keys_before": _names(before.get("keys")),
        "keys_after": _names(after.get("keys")),
        "suda_contributions": _suda_contributions(before, after),
        "steps": _internal_steps(steps),
        "utility": _utility(utility),
        "quantiles": _quantile_rows(rows, numeric),
        "changes_net": bool(net),
        "figures": figures,
        "release": {
            "records": fmt_int(release.get("n_records")) if release.get("n_records") is not None else None,
            "variables": _names(release.get("variables")),
            "removed": _names(release.get("removed_variables")),
            "files": _params(release.get("files")),
        },
        "warnings": [str(w) for w in _list(report.get("warnings")) if w],
    }


def _target_lines(targets: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    if targets.get("k") is not None:
        out.append(("k-anonymity", f"every key combination shared by at least {fmt_int(targets['k'])} records"))
    if _num(targets.get("max_global_risk")) is not None:
        out.append(("Global risk", f"at most {fmt_target_pct(targets['max_global_risk'])}"))
    if _num(targets.get("max_individual_risk")) is not None:
        out.append(("Individual risk", f"no record above {fmt_prob(targets['max_individual_risk'])}"))
    return out


def render_internal_report(report: dict) -> str:
    """``report.html``: the replicable account of a release, for the curator only.

    ``report`` is the dict ``anonymize`` builds (``Release.report``); any section may be
    missing. The page holds seeds and parameters: never publish it with the data.
    """
    context = _internal_context(report if isinstance(report, Mapping) else {})
    return _environment().get_template("release_internal.html").render(**context)


# -- external ---------------------------------------------------------------------------


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
            out.append(f"{fmt_int(v)} records are unique in the file on {what}." if k == 2 else
                       f"{fmt_int(v)} records have a combination of {what} that fewer than {k} "
                       "records in the file share.")
    glob = _map(risk.get("global_risk"))
    er, pct = glob.get("expected_reidentifications"), glob.get("percent")
    if _num(er) is not None:
        of = f" of {fmt_int(n_records)}" if _num(n_records) else ""
        share = f" ({fmt_pct(pct)})" if _num(pct) is not None else ""
        out.append(f"An intruder who knows these variables about people in the file would be expected "
                   f"to identify about {fmt_er(er)}{of} records correctly{share}.")
    hh = _map(risk.get("household_risk"))
    if _num(hh.get("percent")) is not None:
        out.append(f"Because one identified member reveals the whole household, the household-level "
                   f"risk is higher: {fmt_pct(hh.get('percent'))}.")
    num = _map(risk.get("numeric_risk"))
    if _num(num.get("interval_disclosure")) is not None and num.get("compared_with") == "original":
        names = ", ".join(_names(num.get("variables")))
        out.append(f"On the numeric variables ({names}), {fmt_pct(100 * _num(num['interval_disclosure']))} of records "
                   "have released values all within 5 % of a standard deviation of their true values, and "
                   f"an intruder holding the true values would link {fmt_pct(100 * (_num(num.get('linkage_disclosure')) or 0))} "
                   "of records to their own released record.")
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


def _external_context(view: Mapping[str, Any]) -> dict[str, Any]:
    steps = _list(view.get("steps"))
    suppressed = _totals(steps, "suppressed")
    perturbed, recoded = _changed_variables(steps)
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
        "steps": _external_steps(steps),
        "suppressed": [{"name": n, "count": fmt_int(c)} for n, c in suppressed.items() if c],
        "perturbed": perturbed,
        "recoded": recoded,
        "weight": {"name": str(weight["name"]), "adjusted": bool(weight.get("adjusted"))}
        if weight.get("name") else None,
        "residual_risk": _residual_risk(_map(view.get("risk_after")), view.get("n_records")),
        "indicators": _indicator_rows(utility.get("indicators")),
        "regressions": _regressions(utility.get("regressions")),
        "variables": [v for rows in _variable_rows(utility.get("variables"))[:2] for v in rows],
        "warnings": [str(w) for w in _list(view.get("warnings")) if w],
    }


def render_external_report(view: dict) -> str:
    """``external_report.html``: for the users of the released file (no seeds, no parameters).

    ``view`` is ``external_view(report)``. The page explains what was done, the risk left
    and how to analyse the file validly, with the key indicators before and after.
    """
    context = _external_context(view if isinstance(view, Mapping) else {})
    return _environment().get_template("release_external.html").render(**context)


# -- disclosure risk assessment form ---------------------------------------------------------

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
        rows.append({"label": f"Records violating {k}-anonymity", "before": fmt_int(vb.get(k)),
                     "after": fmt_int(va.get(k))})
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
            methods.append({"step": _text(m.get("step")), "method": str(m.get("method", "")),
                            "parameters": _params(m.get("parameters")),
                            "cells_changed": fmt_int(m.get("cells_changed"))})
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


def render_disclosure_risk_assessment(dra: dict) -> str:
    """The filled disclosure risk assessment form as a printable page.

    ``dra`` is ``disclosure_risk_assessment(report, plan)``; fields still to be filled by
    the reviewer (reviewer, date, residual risk statement, decision) are printed as blanks.
    """
    context = _dra_context(dra if isinstance(dra, Mapping) else {})
    return _environment().get_template("release_dra.html").render(**context)
