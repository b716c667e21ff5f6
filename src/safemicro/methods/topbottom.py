"""Top and bottom coding: values strictly above (below) a threshold replaced by one value."""

from __future__ import annotations

import math
from typing import Literal

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods.base import Change, MethodResult
from safemicro.methods.recode_common import (
    _as_number,
    _check_column,
    _is_user_missing,
    _label_key,
    _missing_mask,
    _new_meta,
)
from safemicro.methods.relabel import _fmt_code


def top_bottom_code(
    ds: Dataset,
    *,
    variable: str,
    value: float,
    replacement: float | None = None,
    kind: Literal["top", "bottom"] = "top",
    label: str | None = None,
) -> MethodResult:
    """Replace values strictly above (``kind="top"``) or below (``"bottom"``) ``value``.

    ``replacement`` defaults to ``value``. When the variable has value labels (or
    ``label`` is given) the replacement code is labelled, e.g. "10 or more", and labels of
    codes that no longer occur are dropped. Missing and user-missing cells stay as they are.
    """
    _check_column(ds, variable)
    if kind not in ("top", "bottom"):
        raise SafemicroError(f"kind must be 'top' or 'bottom', got {kind!r}", column=variable)
    col = ds.frame.get_column(variable)
    if not col.dtype.is_numeric():
        raise SafemicroError(
            f"top/bottom coding needs a numeric variable, {variable!r} holds {col.dtype}", column=variable
        )
    for name, v in (("value", value), ("replacement", replacement)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise SafemicroError(f"{name} must be a finite number, got {v!r}", column=variable)
    value = _as_number(value)
    replacement = value if replacement is None else _as_number(replacement)
    if _is_user_missing(ds, variable, replacement):
        raise SafemicroError(
            f"replacement {replacement} is a user-missing code of {variable!r}; it would make values missing",
            column=variable,
        )
    miss = pl.Series(_missing_mask(ds, variable))
    c = pl.col(variable)
    hit = ds.frame.select(((c > value) if kind == "top" else (c < value)).fill_null(False)).to_series() & ~miss
    target = col.dtype
    if col.dtype.is_integer():
        if isinstance(replacement, float):
            target = pl.Float64
        else:
            try:
                pl.Series([replacement]).cast(col.dtype, strict=True)
            except Exception:
                target = pl.Int64
    new = pl.select(
        pl.when(hit).then(pl.lit(replacement).cast(target)).otherwise(col.cast(target)).alias(variable)
    ).to_series()
    out = ds.with_frame(ds.frame.with_columns(new))

    old_labels = ds.codebook.meta(variable).value_labels
    value_labels = dict(old_labels)
    if old_labels or label is not None:
        gone = set(col.filter(hit).unique().to_list()) - {replacement}
        for code in list(value_labels):
            if _as_number(code) in gone and not _is_user_missing(ds, variable, code):
                value_labels.pop(code)
        if label is None:
            base = old_labels.get(replacement, str(replacement))
            more, than = ("more", "above") if kind == "top" else ("less", "below")
            if replacement == value:
                label = f"{base} or {more}"
            elif (replacement > value) == (kind == "top"):
                label = f"{than} {value}"
            else:
                label = f"{base} or {than} {value}"
        value_labels[_label_key(replacement)] = label
    _new_meta(
        ds,
        out,
        variable,
        value_labels,
        dtype_changed=target != col.dtype,
        kind=f"{kind}-coded",
        shown=[label] if label else [f"at {_fmt_code(replacement)}"],
    )

    n_coded = int(hit.sum())
    change = Change.measured(
        ds.frame,
        out.frame,
        [variable],
        method="top_bottom_code",
        params={"variable": variable, "value": value, "replacement": replacement, "kind": kind},
        details={"kind": kind, "n_coded": n_coded, "label": value_labels.get(_label_key(replacement))},
    )
    return MethodResult(out, change)
