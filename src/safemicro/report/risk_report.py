"""Self-contained HTML disclosure-risk report for data curators.

``render_risk_report(summary, records)`` turns the JSON summary written by the risk
assessment (``safemicro assess``) and the per-record risk frame into ONE HTML page with
inline CSS and inline SVG figures: no external stylesheet, script, font or image, so the
file can be e-mailed, archived with the release bundle or printed as it is.

The summary is read defensively: every section may be missing or ``None`` and is then
left out of the page.

Example
-------
>>> import polars as pl
>>> from safemicro.report.risk_report import render_risk_report
>>> html = render_risk_report(
...     {"n_records": 3, "source": "demo.csv"},
...     pl.DataFrame({"fk": [1, 2, 2], "Fk": [10.0, 30.0, 30.0], "risk": [0.2, 0.05, 0.05]}),
... )
>>> html.startswith("<!DOCTYPE html>")
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
from markupsafe import Markup

from safemicro.atomic import write_text

from . import plots
from .format import (
    ROLE_LABELS,
    RULE_HIGH_RISK,
    TIERS,
    _num,
    _section,
    _value_text,
    fmt_int,
    fmt_num,
    fmt_prob,
    fmt_share,
    fmt_target_pct,
    template_environment,
)
from .risk_cards import _headline_cards, _nested_table, _numeric, _suda
from .risk_combinations import combinations_context
from .risk_model import model_context
from .risk_population import population_context

__all__ = ["render_risk_report", "write_risk_report", "build_context"]


# ---------------------------------------------------------------------------------------
# the view model
# ---------------------------------------------------------------------------------------


def _checks(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = summary.get("checks") if isinstance(summary, Mapping) else None
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        passed = item.get("passed")
        out.append(
            {
                "target": str(item.get("target", "")),
                "value": fmt_num(item.get("value")) if item.get("value") is not None else "–",
                "status": "pass" if passed is True else "fail" if passed is False else None,
                "message": str(item.get("message") or ""),
            }
        )
    return out


def _variables(summary: Mapping[str, Any], n_records: float | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    raw = summary.get("variables")
    if isinstance(raw, list) and raw:
        for v in raw:
            if not isinstance(v, Mapping):
                continue
            role = str(v.get("role") or "other")
            missing = v.get("n_missing")
            rows.append(
                {
                    "name": str(v.get("name", "")),
                    "role": role,
                    "role_label": ROLE_LABELS.get(role, role),
                    "label": "" if v.get("label") is None else str(v.get("label")),
                    "n_distinct": fmt_int(v.get("n_distinct")),
                    "n_missing": fmt_int(missing),
                    "missing_share": fmt_share(missing, n_records) if _num(missing) else "",
                }
            )
        return rows
    roles = _section(summary, "roles") or {}
    for role_name, key in (
        ("direct_id", "direct_ids"),
        ("key", "keys"),
        ("numeric_key", "numeric_keys"),
        ("sensitive", "sensitive"),
        ("weight", "weight"),
        ("household", "household"),
        ("strata", "strata"),
        ("cluster", "cluster"),
    ):
        names = roles.get(key)
        if names is None:
            continue
        for name in names if isinstance(names, list) else [names]:
            rows.append(
                {
                    "name": str(name),
                    "role": role_name,
                    "role_label": ROLE_LABELS.get(role_name, role_name),
                    "label": "",
                    "n_distinct": "–",
                    "n_missing": "–",
                    "missing_share": "",
                }
            )
    return rows


def _roles(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    roles = _section(summary, "roles")
    if roles is None:
        return None

    def names(key):
        v = roles.get(key)
        if v is None:
            return []
        return [str(x) for x in v] if isinstance(v, list) else [str(v)]

    return {
        "key_vars": names("keys"),
        "numeric_keys": names("numeric_keys"),
        "sensitive": names("sensitive"),
        "weight": names("weight"),
        "household": names("household"),
        "direct_ids": names("direct_ids"),
        "strata": names("strata"),
        "cluster": names("cluster"),
    }


def _scenario(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    sc = _section(summary, "scenario")
    targets = _section(summary, "targets")
    if sc is None and targets is None:
        return None
    out: dict[str, Any] = {"description": "", "tier": None, "tier_name": "", "tier_text": "", "targets": []}
    if sc is not None:
        out["description"] = str(sc.get("description") or "")
        tier = sc.get("tier")
        if tier:
            name, text = TIERS.get(str(tier).lower(), (str(tier), ""))
            out.update(tier=str(tier).upper(), tier_name=name, tier_text=text)
    if targets is not None:
        if targets.get("k") is not None:
            out["targets"].append(
                ("k-anonymity", f"every key combination shared by at least {fmt_int(targets['k'])} records")
            )
        if targets.get("max_global_risk") is not None:
            out["targets"].append(
                (
                    "Global risk",
                    f"at most {fmt_target_pct(targets['max_global_risk'])} "
                    "(expected re-identifications as a share of records)"
                    if _num(targets["max_global_risk"]) is not None
                    else str(targets["max_global_risk"]),
                )
            )
        if targets.get("max_individual_risk") is not None:
            out["targets"].append(("Individual risk", f"no record above {fmt_prob(targets['max_individual_risk'])}"))
    return out


def _riskiest(summary: Mapping[str, Any], limit: int = 25) -> dict[str, Any] | None:
    raw = summary.get("riskiest_keys") if isinstance(summary, Mapping) else None
    if not isinstance(raw, list) or not raw:
        return None
    columns: list[str] = []
    for item in raw[:limit]:
        values = item.get("values") if isinstance(item, Mapping) else None
        if isinstance(values, Mapping):
            for k in values:
                if str(k) not in columns:
                    columns.append(str(k))
    rows = []
    for item in raw[:limit]:
        if not isinstance(item, Mapping):
            continue
        values = item.get("values") if isinstance(item.get("values"), Mapping) else {}
        values = {str(k): v for k, v in values.items()}
        labels = item.get("labels") if isinstance(item.get("labels"), Mapping) else {}
        labels = {str(k): v for k, v in labels.items()}
        cells = []
        for c in columns:
            if c not in values:
                cells.append("")
                continue
            text = _value_text(values[c])
            label = labels.get(c)
            if isinstance(label, Mapping):
                label = label.get(str(values[c]))
            if label not in (None, "") and values[c] is not None and str(label) != text:
                text = f"{text} · {label}"
            cells.append(text)
        rows.append(
            {
                "cells": cells,
                "fk": fmt_int(item.get("fk")),
                "Fk": fmt_num(item.get("Fk")),
                "risk": fmt_prob(item.get("risk")),
                "n_records": fmt_int(item.get("n_records")),
                "high": (_num(item.get("risk")) or 0) > RULE_HIGH_RISK,
            }
        )
    return {"columns": columns, "rows": rows, "total": len(raw), "shown": len(rows)}


def _key_names(summary: Mapping[str, Any]) -> list[str]:
    roles = _section(summary, "roles") or {}
    keys = roles.get("keys")
    if not isinstance(keys, list):
        keys = summary.get("keys") if isinstance(summary.get("keys"), list) else []
    return [str(k) for k in keys]


def _records_ok(records: Any) -> pl.DataFrame | None:
    if isinstance(records, pl.LazyFrame):
        records = records.collect()
    return records if isinstance(records, pl.DataFrame) and records.height else None


def build_context(
    summary: Mapping[str, Any] | None, records: pl.DataFrame | None, *, title: str = "Disclosure risk assessment"
) -> dict[str, Any]:
    """Everything the template needs, already formatted (useful for JSON/other views)."""
    summary = summary if isinstance(summary, Mapping) else {}
    records = _records_ok(records)
    n_records = _num(summary.get("n_records"))
    if n_records is None and records is not None:
        n_records = float(records.height)
    targets = _section(summary, "targets") or {}
    target_k = _num(targets.get("k"))
    ind = _section(summary, "individual_risk") or {}
    median, mad = _num(ind.get("median")), _num(ind.get("mad"))
    risky_threshold = median + 2 * mad if median is not None and mad is not None and mad > 0 else None

    figures: dict[str, Markup | None] = {
        "risk": plots.risk_distribution_svg(
            records,
            target=_num(targets.get("max_individual_risk")),
            rule=RULE_HIGH_RISK,
            risky_threshold=risky_threshold,
        ),
        "violations": plots.violations_by_k_svg(records, target_k=int(target_k) if target_k else None),
        "suda": plots.suda_contribution_svg((_section(summary, "suda2") or {}).get("attribute_contributions")),
        "household": plots.household_size_svg((_section(summary, "household_risk") or {}).get("household_sizes")),
    }
    figures = {k: Markup(v) if v else None for k, v in figures.items()}
    vbk = plots.violations_by_k(records) if records is not None else None

    kan = _section(summary, "k_anonymity") or {}
    viol = kan.get("violations") if isinstance(kan.get("violations"), Mapping) else {}
    k_rows = [
        {"k": str(k), "count": fmt_int(v), "share": fmt_share(v, n_records)}
        for k, v in sorted(viol.items(), key=lambda kv: _num(kv[0]) or 0)
    ]

    hh = _section(summary, "household_risk")
    glob = _section(summary, "global_risk")
    alpha = _num(summary.get("alpha"))

    return {
        "title": title,
        "source": summary.get("source"),
        "n_records": fmt_int(n_records) if n_records is not None else None,
        "version": summary.get("safemicro_version"),
        "generated_at": summary.get("generated_at"),
        "tier": ((_section(summary, "scenario") or {}).get("tier") or "").upper() or None,
        "alpha": fmt_num(alpha) if alpha is not None else None,
        "cards": _headline_cards(summary, n_records),
        "checks": _checks(summary),
        "variables": _variables(summary, n_records),
        "roles": _roles(summary),
        "scenario": _scenario(summary),
        "figures": figures,
        "violations_by_k": [{"k": k, "count": fmt_int(c), "share": fmt_share(c, n_records)} for k, c in vbk]
        if vbk
        else [],
        "k_rows": k_rows,
        "global_threshold": fmt_prob(glob.get("threshold")) if glob and glob.get("threshold") is not None else None,
        "household": (
            {"n_households": fmt_int(hh.get("n_households")), "has_sizes": figures["household"] is not None}
            if hh
            else None
        ),
        "riskiest": _riskiest(summary),
        "suda": _suda(summary, n_records),
        "combos": combinations_context(summary),
        "population": population_context(summary),
        "model": model_context(summary),
        "ldiv": _nested_table(summary.get("l_diversity") if isinstance(summary, Mapping) else None),
        "attribute": _nested_table(summary.get("attribute_disclosure") if isinstance(summary, Mapping) else None),
        "attribute_targets": _attribute_targets(targets),
        "numeric": _numeric(summary.get("numeric_risk") if isinstance(summary, Mapping) else None),
        "warnings": [str(w) for w in summary.get("warnings") or [] if w]
        if isinstance(summary.get("warnings"), list)
        else [],
        "keys_list": _key_names(summary),
        "has_records": records is not None,
        "individual_target": (
            fmt_prob(targets.get("max_individual_risk"))
            if _num(targets.get("max_individual_risk")) is not None
            else None
        ),
        "risky_threshold": fmt_prob(risky_threshold) if risky_threshold is not None else None,
    }


def _attribute_targets(targets: Mapping[str, Any]) -> list[str]:
    """The plan's attribute-disclosure targets in words."""
    from safemicro.risk.attribute_checks import ATTRIBUTE_TARGETS

    return [
        f"{name} at most {fmt_num(targets[key])}"
        for key, (_, _, name, _) in ATTRIBUTE_TARGETS.items()
        if _num(targets.get(key)) is not None
    ]


def render_risk_report(summary: dict, records: pl.DataFrame, *, title: str = "Disclosure risk assessment") -> str:
    """Render the risk assessment as one self-contained HTML page.

    Parameters
    ----------
    summary:
        The assessment summary (the JSON written by ``safemicro assess``). Any section
        may be missing or ``None``; it is then omitted from the page.
    records:
        Per-record risk frame with columns ``fk``, ``Fk``, ``risk`` and optionally
        ``hh_risk``, ``suda_score``, ``dis_suda``, ``ldiv_*``; used for the figures.
        May be ``None`` or empty (the record-level figures are then omitted).
    title:
        Page title.

    Returns
    -------
    str
        The HTML document (inline CSS, inline SVG figures, no external resources).
    """
    context = build_context(summary, records, title=title)
    return template_environment().get_template("risk_report.html").render(**context)


def write_risk_report(path: str | os.PathLike[str], summary: dict, records: pl.DataFrame, **kw: Any) -> Path:
    """Render the report and write it atomically to *path* (temp file + ``os.replace``)."""
    html = render_risk_report(summary, records, **kw)
    target = Path(path)
    write_text(target, html)
    return target
