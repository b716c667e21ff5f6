"""Per-variable summaries for codebooks: categories with weighted and unweighted counts,
missing codes, valid/invalid counts and summary statistics.

One :class:`VariableSummary` per released variable feeds the DDI ``var`` element, the
HTML codebook and the Data Package field. Rules:

* A variable is **discrete** (``intrvl="discrete"``, categories listed) when it has value
  labels, is nominal/ordinal, is text, or is a whole-number variable of unknown measure
  with few distinct values; otherwise **continuous** (statistics only; its missing codes
  are still listed as categories).
* Missing values: system missing (null/NaN), user-missing codes (SPSS), Stata extended
  missing ``.a``-``.z`` (letters kept by :mod:`safemicro.io`). They count as invalid.
* Weighted counts use the design weight (records with a missing weight count 0).
* At most ``max_categories`` categories are listed (labelled first, then the most
  frequent); the rest are summed into a note. A public use file codebook masks small
  cells: a count below ``mask_below`` is shown as ``< k`` and an unlabelled value seen
  fewer than ``mask_below`` times is not listed at all (its existence would disclose it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io import Dataset

__all__ = ["Category", "VariableSummary", "summarize", "summarize_dataset", "DEFAULT_MAX_CATEGORIES"]

DEFAULT_MAX_CATEGORIES = 200
FEW_DISTINCT = 20  # whole numbers with at most this many values and no measure: categorical


@dataclass
class Category:
    """One value of a discrete variable (or one missing code)."""

    value: Any  # the code as stored (int, float, str) or ".a" for Stata extended missing
    label: str | None
    missing: bool = False
    freq: int | None = 0  # None: masked
    wfreq: float | None = None  # None: no weight, or masked
    percent: float | None = None  # of valid records (weighted if a weight is given)
    masked: bool = False

    @property
    def code_text(self) -> str:
        return format_code(self.value)


@dataclass
class VariableSummary:
    name: str
    label: str | None
    measure: str  # nominal / ordinal / scale / unknown
    kind: str  # "numeric" or "character"
    dtype: str
    format: str | None
    discrete: bool
    n_valid: int
    n_invalid: int
    w_valid: float | None = None
    w_invalid: float | None = None
    stats: dict[str, float] = field(default_factory=dict)  # unweighted: min max mean medn stdev
    wstats: dict[str, float] = field(default_factory=dict)  # weighted: mean stdev
    categories: list[Category] = field(default_factory=list)
    missing_codes: list[Any] = field(default_factory=list)
    missing_ranges: list[tuple[Any, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    is_weight: bool = False
    decimals: int | None = None
    mask_below: int | None = None

    @property
    def n(self) -> int:
        return self.n_valid + self.n_invalid


def format_code(value: Any) -> str:
    """A code as text: 3.0 -> "3", 2.5 -> "2.5", ".a" stays, strings as they are."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return str(int(value))
        return repr(value)
    return str(value)


def _norm(v: Any) -> Any:
    """A key under which 1, 1.0 and "1" (a code read back from text) meet."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    return str(v)


def _same_code(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def summarize_dataset(
    ds: Dataset,
    *,
    weight: str | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    mask_below: int | None = None,
) -> list[VariableSummary]:
    """Summaries of every column, in column order."""
    if weight is not None and weight not in ds.columns:
        raise SafemicroError("weight variable is not a column of the data", file=ds.source, column=weight)
    w = None
    if weight is not None:
        w = ds.analysis_column(weight).cast(pl.Float64, strict=False).fill_null(0.0).fill_nan(0.0).to_numpy()
        if (w < 0).any():
            row = int(np.argmax(w < 0)) + 1
            raise SafemicroError("negative weight", file=ds.source, column=weight, row=row)
    return [
        summarize(ds, name, weights=w, is_weight=(name == weight), max_categories=max_categories, mask_below=mask_below)
        for name in ds.columns
    ]


def summarize(
    ds: Dataset,
    name: str,
    *,
    weights: np.ndarray | None = None,
    is_weight: bool = False,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    mask_below: int | None = None,
) -> VariableSummary:
    """The summary of one column (see the module docstring for the rules)."""
    meta = ds.codebook.meta(name)
    col = ds.frame.get_column(name)
    dtype = col.dtype
    numeric = dtype.is_numeric() or dtype == pl.Boolean
    missing = ds.frame.select(ds.missing_expr(name)).to_series().to_numpy()
    valid_mask = ~missing
    n_valid = int(valid_mask.sum())
    n_invalid = int(missing.sum())
    s = VariableSummary(
        name=name,
        label=meta.label,
        measure=meta.measure,
        kind="numeric" if numeric else "character",
        dtype=str(dtype),
        format=meta.format,
        discrete=False,
        n_valid=n_valid,
        n_invalid=n_invalid,
        missing_codes=list(meta.missing_values),
        missing_ranges=list(meta.missing_ranges),
        is_weight=is_weight,
        mask_below=mask_below,
    )
    if weights is not None:
        s.w_valid = float(weights[valid_mask].sum())
        s.w_invalid = float(weights[missing].sum())

    labelled = bool(meta.value_labels)
    whole = dtype.is_integer() or dtype == pl.Boolean
    if dtype.is_float() and n_valid:
        vals = ds.analysis_column(name).drop_nulls().to_numpy()
        whole = bool(np.all(np.mod(vals, 1) == 0))
        if not whole:
            s.decimals = _decimals(vals)
    n_distinct = int(ds.frame.filter(pl.Series(valid_mask)).get_column(name).n_unique()) if n_valid else 0
    s.discrete = (
        labelled
        or meta.measure in ("nominal", "ordinal")
        or not numeric
        or (meta.measure == "unknown" and whole and n_distinct <= FEW_DISTINCT)
    )
    if is_weight:
        s.discrete = False
    if s.discrete and not labelled and n_distinct > max(FEW_DISTINCT, n_valid // 2):
        # an identifier or free text: listing its values documents nothing and discloses much
        s.discrete = False
        s.notes.append(f"{n_distinct} distinct values (identifier-like or free text): values are not listed")

    if numeric and n_valid and dtype != pl.Boolean and dtype.is_numeric() and meta.measure != "nominal":
        xa = ds.analysis_column(name).cast(pl.Float64).to_numpy()
        ok = valid_mask & np.isfinite(xa)
        x = xa[ok]
        if x.size:
            s.stats = {
                "min": float(x.min()),
                "max": float(x.max()),
                "mean": float(x.mean()),
                "medn": float(np.median(x)),
                "stdev": float(x.std(ddof=1)) if x.size > 1 else 0.0,
            }
            if weights is not None and not is_weight:
                wx = weights[ok]
                if wx.sum() > 0:
                    mean = float(np.average(x, weights=wx))
                    var = float(np.average((x - mean) ** 2, weights=wx))
                    s.wstats = {"mean": mean, "stdev": math.sqrt(var)}

    if mask_below and not s.discrete and s.stats:
        # the extremes of a continuous variable belong to single records
        s.stats.pop("min", None)
        s.stats.pop("max", None)
        s.notes.append("minimum and maximum are not shown in a public use codebook (they are single records' values)")

    s.categories = _categories(ds, name, s, weights, labelled, max_categories, mask_below)
    return s


def _decimals(vals: np.ndarray) -> int:
    """Decimal places needed to show the values (at most 6)."""
    for d in range(1, 7):
        if np.allclose(np.round(vals, d), vals, rtol=0, atol=10 ** (-(d + 3))):
            return d
    return 6


def _categories(
    ds: Dataset,
    name: str,
    s: VariableSummary,
    weights: np.ndarray | None,
    labelled: bool,
    max_categories: int,
    mask_below: int | None,
) -> list[Category]:
    meta = ds.codebook.meta(name)
    col = ds.frame.get_column(name)
    frame = pl.DataFrame({"v": col, "w": weights if weights is not None else np.ones(len(col))})
    counts = (
        frame.filter(pl.col("v").is_not_null()).group_by("v").agg(pl.len().alias("n"), pl.col("w").sum().alias("w"))
    )
    if col.dtype.is_float():
        counts = counts.filter(~pl.col("v").is_nan())
    observed = {row[0]: (int(row[1]), float(row[2])) for row in counts.iter_rows()}

    def is_missing_code(v: Any) -> bool:
        if any(_same_code(v, m) for m in meta.missing_values):
            return True
        for lo, hi in meta.missing_ranges:
            try:
                if float(lo) <= float(v) <= float(hi):
                    return True
            except (TypeError, ValueError):
                pass
        return False

    by_norm: dict[Any, tuple[int, float]] = {}
    for obs, (on, ow) in observed.items():
        n0, w0 = by_norm.get(_norm(obs), (0, 0.0))
        by_norm[_norm(obs)] = (n0 + on, w0 + ow)

    cats: dict[str, Category] = {}
    order: list[str] = []

    def add(value: Any, label: str | None, missing: bool, n: int, w: float) -> None:
        key = format_code(value)
        if key in cats:
            c = cats[key]
            c.freq = (c.freq or 0) + n
            c.wfreq = (c.wfreq or 0.0) + w if weights is not None else None
            c.label = c.label or label
            return
        cats[key] = Category(
            value=value, label=label, missing=missing, freq=n, wfreq=w if weights is not None else None
        )
        order.append(key)

    # labelled values first (in code order), then observed values, then extended missing
    for value, label in meta.value_labels.items():
        if s.kind == "numeric" and _extended_letter(value):
            continue  # a Stata extended-missing label: added below with its count
        n, w = by_norm.get(_norm(value), (0, 0.0))
        add(value, str(label), is_missing_code(value), n, w)
    labelled_keys = set(order)
    if s.discrete or meta.missing_values or meta.missing_ranges:
        extra = [
            (v, n, w)
            for v, (n, w) in observed.items()
            if format_code(v) not in labelled_keys and (s.discrete or is_missing_code(v))
        ]
        extra.sort(key=lambda t: _sort_key(t[0]))
        for v, n, w in extra:
            add(v, None, is_missing_code(v), n, w)
    letters = ds.codebook.extended_missing.get(name) or {}
    if letters:
        by_letter: dict[str, tuple[int, float]] = {}
        for row, letter in letters.items():
            n0, w0 = by_letter.get(letter, (0, 0.0))
            wr = float(weights[row]) if weights is not None and row < len(weights) else 0.0
            by_letter[letter] = (n0 + 1, w0 + wr)
        for letter in sorted(by_letter):
            label = meta.value_labels.get(letter, meta.value_labels.get("." + letter))
            n, w = by_letter[letter]
            add("." + letter, None if label is None else str(label), True, n, w)
    if s.kind == "numeric":
        for code, label in meta.value_labels.items():  # labelled extended missing never observed
            letter = _extended_letter(code)
            if letter and "." + letter not in cats:
                add("." + letter, str(label), True, 0, 0.0)

    result = sorted((cats[k] for k in order), key=lambda c: (c.missing, _sort_key(c.value)))
    # percentages of valid records
    total = s.w_valid if weights is not None else float(s.n_valid)
    for c in result:
        if not c.missing and total:
            base = c.wfreq if weights is not None else c.freq
            c.percent = 100.0 * float(base or 0.0) / total

    if mask_below:
        kept = []
        hidden_n = 0
        for c in result:
            small = c.freq is not None and 0 < c.freq < mask_below
            if small and c.label is None and not c.missing:
                hidden_n += 1
                continue
            if small:
                c.freq, c.wfreq, c.percent, c.masked = None, None, None, True
            kept.append(c)
        if hidden_n:
            s.notes.append(
                f"{hidden_n} unlabelled value(s) held by fewer than {mask_below} records are not "
                "listed (public use codebook: small cells masked)"
            )
        result = kept

    if len(result) > max_categories:
        # keep labelled and missing categories first, then the most frequent values
        ranked = sorted(
            range(len(result)),
            key=lambda i: (
                0 if (result[i].label is not None or result[i].missing) else 1,
                -(result[i].freq or 0),
                i,
            ),
        )
        keep = sorted(ranked[:max_categories])
        dropped = [result[i] for i in ranked[max_categories:]]
        n_dropped = sum(c.freq or 0 for c in dropped)
        result = [result[i] for i in keep]
        s.notes.append(
            f"{len(dropped)} further categories ({n_dropped} records) are not listed: "
            f"at most {max_categories} categories are shown per variable"
        )
    return result


def _extended_letter(code: Any) -> str | None:
    """'a' for a Stata extended-missing label key ('a' as safemicro.io keeps it, or '.a')."""
    if isinstance(code, str):
        letter = code[1:] if code.startswith(".") else code
        if len(letter) == 1 and "a" <= letter <= "z":
            return letter
    return None


def _sort_key(v: Any) -> tuple:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, str(v))
