"""What the pages show, as plain dicts for the templates: descriptions, not measures.

The variable table (labels, types, value labels, missing codes, distinct counts, a small
distribution), the forms generated from a step's parameter model, and the risk numbers a
page compares before and after. Risk and utility come from :mod:`safemicro.assess` and
:mod:`safemicro.utility` through the engine; this module only picks and formats.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

import numpy as np
import polars as pl
import yaml

from safemicro.io import Dataset

TOP_VALUES = 6
BINS = 8


def _label(labels: dict[Any, str], value: Any) -> str | None:
    if value is None or not labels:
        return None
    hit = labels.get(value)
    if hit is None and isinstance(value, (int, float)):
        hit = labels.get(float(value), labels.get(int(value)) if float(value).is_integer() else None)
    return hit


def _bars(items: list[tuple[str, int]]) -> list[dict[str, Any]]:
    top = max((c for _, c in items), default=0) or 1
    return [{"text": t, "count": c, "width": round(100 * c / top)} for t, c in items]


def distribution(ds: Dataset, name: str) -> list[dict[str, Any]]:
    """A small distribution: the most frequent values (with labels) or, for a numeric variable
    with many values, counts in equal-width bins."""
    s = ds.analysis_column(name)
    labels = ds.codebook.meta(name).value_labels
    n_unique = s.n_unique()
    if s.dtype.is_numeric() and n_unique > 12 and not labels:
        x = s.cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
        if x.size == 0:
            return []
        counts, edges = np.histogram(x, bins=BINS)
        fmt = "{:,.0f}" if s.dtype.is_integer() or np.abs(edges).max() >= 100 else "{:.3g}"
        return _bars([(f"{fmt.format(edges[i])}–{fmt.format(edges[i + 1])}", int(c)) for i, c in enumerate(counts)])
    vc = s.drop_nulls().value_counts(sort=True).head(TOP_VALUES)
    items = []
    for value, count in vc.iter_rows():
        lab = _label(labels, value)
        items.append((f"{value}" + (f" {lab}" if lab else ""), int(count)))
    rest = s.drop_nulls().len() - sum(c for _, c in items)
    if rest > 0:
        items.append((f"({n_unique - len(items)} more values)", int(rest)))
    return _bars(items)


def variable_table(ds: Dataset, roles_of: dict[str, str]) -> list[dict[str, Any]]:
    """One row per variable of the Data page."""
    rows = []
    counts = ds.frame.select(pl.all().n_unique()).row(0)
    for name, n_distinct in zip(ds.columns, counts):
        meta = ds.codebook.meta(name)
        missing = [str(v) for v in meta.missing_values] + [f"{lo}–{hi}" for lo, hi in meta.missing_ranges]
        vl = meta.value_labels
        rows.append(
            {
                "name": name,
                "label": meta.label or "",
                "type": str(ds.frame.schema[name]),
                "measure": meta.measure,
                "value_labels": [f"{k} = {v}" for k, v in list(vl.items())[:5]],
                "n_value_labels": len(vl),
                "missing": missing,
                "n_distinct": int(n_distinct),
                "n_missing": int(ds.analysis_column(name).null_count()),
                "role": roles_of.get(name, ""),
                "distribution": distribution(ds, name),
            }
        )
    return rows


# -- step forms ---------------------------------------------------------------------------------


def _kind(annotation: Any) -> tuple[str, list[str]]:
    """'bool', 'choice' (with its options), 'number', 'text' or 'yaml' (lists, mappings)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _kind(args[0])
    if origin is Literal:
        return "choice", [str(a) for a in get_args(annotation)]
    if annotation is bool:
        return "bool", ["true", "false"]
    if annotation in (int, float):
        return "number", []
    if annotation is str:
        return "text", []
    return "yaml", []


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
    return str(value)


def step_form(spec: Any, current: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The fields of a step's form, from its parameter model: name, kind, options, the
    default (as shown when left empty), the current value, whether it is required."""
    current = current or {}
    fields = []
    for name, info in spec.params.model_fields.items():
        kind, options = _kind(info.annotation)
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        fields.append(
            {
                "name": name,
                "kind": kind,
                "options": options,
                "required": info.is_required(),
                "default": _text(default),
                "value": _text(current.get(name)) if name in current else "",
                "help": info.description or "",
            }
        )
    return fields


def parse_step_form(spec: Any, form: dict[str, str]) -> dict[str, Any]:
    """Step parameters from a submitted form: empty fields keep the default; every other
    value is read as YAML (``[a, b]``, ``{6: 9}``, ``3``, ``true``), text fields as text."""
    params: dict[str, Any] = {}
    for name, info in spec.params.model_fields.items():
        raw = (form.get(f"p_{name}") or "").strip()
        if not raw:
            continue
        kind, _ = _kind(info.annotation)
        if kind in ("text", "choice"):
            params[name] = raw
        else:
            try:
                params[name] = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ValueError(f"{name}: not a valid value ({exc.__class__.__name__})") from None
    return params


# -- risk numbers -------------------------------------------------------------------------------


def headline(summary: dict[str, Any] | None) -> dict[str, Any]:
    """The numbers compared before → after on the Methods page."""
    if not summary or summary.get("k_anonymity") is None:
        return {}
    k = summary["k_anonymity"]
    g = summary.get("global_risk") or {}
    hh = summary.get("household_risk") or {}
    ind = summary.get("individual_risk") or {}
    return {
        "violations": k["violations"],
        "n_sample_uniques": k["n_sample_uniques"],
        "global_percent": g.get("percent"),
        "expected": g.get("expected_reidentifications"),
        "household_percent": hh.get("percent"),
        "max_risk": ind.get("max"),
        "n_risky": ind.get("n_risky"),
    }
