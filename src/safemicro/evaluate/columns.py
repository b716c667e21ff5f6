"""How each column is compared, and the columns in the form the measures read them.

Kinds follow sdmetrics' sdtypes so our quality score is comparable with its QualityReport:

* ``numeric``: numbers (and text columns holding numbers with at most a few non-numeric
  codes, such as NIST CRC's literal ``N``; the codes count as missing);
* ``datetime``: dates and datetimes, compared as numbers;
* ``categorical``: text, booleans, and numbers with value labels or a nominal/ordinal
  measure in the codebook;
* ``id``: text with a distinct value on (almost) every row; left out of every measure.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset

__all__ = ["KINDS", "column_kinds", "analysis_series", "missing_share"]

KINDS = ("numeric", "datetime", "categorical", "id")
MAX_CODES = 3  # text holding numbers: at most this many non-numeric codes
MIN_NUMBERS = 20  # ... and more than this many distinct numbers
ID_MIN_DISTINCT = 1000  # text with more distinct values than this (or all distinct) is an id


def _numbers(s: pl.Series) -> tuple[pl.Series, int]:
    """A text column parsed as numbers, and how many distinct non-numeric codes it has."""
    parsed = s.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    codes = s.filter(parsed.is_null() & s.is_not_null()).n_unique()
    return parsed, codes


def _infer(name: str, ds: Dataset) -> str:
    s = ds.frame.get_column(name)
    dtype = s.dtype
    meta = ds.codebook.meta(name)
    if dtype == pl.Boolean:
        return "categorical"
    if dtype in (pl.Date, pl.Datetime) or isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype.is_numeric() and ds.special_codes(name):  # income with -9 "Refused"
        return "numeric"
    if dtype.is_numeric() or dtype.is_temporal():
        return "categorical" if meta.value_labels or meta.measure in ("nominal", "ordinal") else "numeric"
    if meta.measure == "scale" or not meta.value_labels:
        parsed, codes = _numbers(s)
        if parsed.is_not_null().any() and codes <= MAX_CODES and parsed.n_unique() > MIN_NUMBERS + 1:
            return "numeric"
    distinct = s.drop_nulls().n_unique()
    if distinct > ID_MIN_DISTINCT or (distinct == s.drop_nulls().len() and distinct > MIN_NUMBERS):
        return "id"
    return "categorical"


def column_kinds(ds: Dataset, kinds: Mapping[str, str] | None = None) -> dict[str, str]:
    """The kind of every column of ``ds``; ``kinds`` overrides the inferred ones."""
    kinds = dict(kinds or {})
    for name, kind in kinds.items():
        if name not in ds.columns:
            raise SafemicroError("a column kind is given for a column the data does not have", column=name)
        if kind not in KINDS:
            raise SafemicroError(f"unknown column kind {kind!r}; use one of {', '.join(KINDS)}", column=name)
    return {name: kinds.get(name) or _infer(name, ds) for name in ds.columns}


def analysis_series(s: pl.Series, kind: str) -> pl.Series:
    """The column as the measures read it: numbers as Float64 (NaN, ±inf and non-numeric
    codes → null), dates as their physical integer, categoricals as they are."""
    if kind == "datetime":
        return s.to_physical().cast(pl.Float64)
    if kind == "numeric":
        if s.dtype == pl.String or s.dtype == pl.Categorical or isinstance(s.dtype, pl.Enum):
            s = _numbers(s)[0]
        elif s.dtype.is_temporal():
            s = s.to_physical()
        x = s.cast(pl.Float64, strict=False)
        return x.set(x.is_nan() | x.is_infinite(), None)  # NaN and ±inf are missing too
    return s


def missing_share(s: pl.Series) -> float | None:
    """Share of null cells of an analysis series (None for an empty one)."""
    return float(s.null_count() / s.len()) if s.len() else None


def float_values(s: pl.Series) -> np.ndarray:
    """The non-missing values of a numeric analysis series, as float64."""
    return s.drop_nulls().to_numpy().astype(np.float64)
