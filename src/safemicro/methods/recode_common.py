"""What every recode shares: the column check, missing and user-missing cells (never
recoded), numbers as the codebook keeps them, and the recoded variable's codebook entry."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods.relabel import recoded_label


def _check_column(ds: Dataset, variable: str) -> None:
    if variable not in ds.columns:
        raise SafemicroError(f"there is no column {variable!r} to recode", column=variable)
    if ds.frame.schema[variable] == pl.Null:
        raise SafemicroError("every value is missing: there is nothing to recode", column=variable)


def _missing_mask(ds: Dataset, variable: str) -> np.ndarray:
    return ds.frame.select(ds.missing_expr(variable).fill_null(True)).to_series().to_numpy()


def _is_user_missing(ds: Dataset, variable: str, value: Any) -> bool:
    meta = ds.codebook.meta(variable)
    try:
        if value in meta.missing_values:
            return True
        return any(lo <= value <= hi for lo, hi in meta.missing_ranges)
    except TypeError:
        return False


def _whole(values: np.ndarray) -> bool:
    v = values[~np.isnan(values)]
    return bool(np.all(v == np.floor(v))) and bool(np.all(np.abs(v) < 2**53))


def _as_number(v: Any) -> Any:
    """A number stays a number; numeric text becomes a number; anything else stays as is."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return int(v) if float(v).is_integer() else float(v)
    if isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return v
        if math.isfinite(f):
            return int(f) if f.is_integer() else f
    return v


def _label_key(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _new_meta(
    ds: Dataset,
    out: Dataset,
    variable: str,
    labels: dict,
    *,
    dtype_changed: bool,
    measure=None,
    kind: str = "grouped",
    shown: list[str] | None = None,
):
    """Set the recoded variable's labels (a new dict: metadata dicts are shared after with_frame)
    and say in its variable label what it now holds (``shown``: the words quoted, default
    the category labels)."""
    meta = out.codebook.meta(variable)
    meta.value_labels = dict(labels)
    if shown or labels:
        meta.label = recoded_label(meta.label, variable, kind, dict(enumerate(shown)) if shown else labels)
    if dtype_changed:
        meta.format = None
    if measure is not None:
        meta.measure = measure


def _json_num(x: float) -> float | int | str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return int(x) if float(x).is_integer() else float(x)
