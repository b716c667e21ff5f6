"""Numbers with special codes: a numeric variable whose few labelled values are codes.

Survey files label a handful of values of a continuous variable: income with −9 "Refused",
age with 99 "Don't know", a amount with 999999 "Top-coded". Those labels do not make the
variable categorical (haven keeps such a column numeric with its labels; sdcMicro treats
it as a numeric variable): the labelled values are *codes* and everything else is a
number. :func:`special_codes` decides this once, from the values and the codebook, so
every consumer (synthesis, numeric keys, utility, reports) sees the same answer:

- a column is **numeric with special codes** when it is numeric, has value labels or
  user-missing codes, at most :data:`MAX_SPECIAL_CODES` labelled values and more than
  :data:`MIN_NUMERIC_VALUES` distinct other values. The measure level is not consulted:
  Stata has none (the reader guesses "nominal" for every labelled variable) and SPSS
  files often carry its defaults;
- its codes are the labelled values and the discrete user-missing codes (values in a
  user-missing range count as codes as well);
- :func:`numeric_part` gives the numbers alone, every code (and missing value) as null.

A column whose labels cover most of its values (a code list such as region or sex) is not
numeric with codes: it stays categorical.

>>> import polars as pl
>>> from safemicro.io.dataset import VariableMeta
>>> s = pl.Series("income", [-9, *range(100, 2000, 100)])
>>> special_codes(s, VariableMeta("income", value_labels={-9: "Refused"}))
[-9]
>>> numeric_part(s, VariableMeta("income", value_labels={-9: "Refused"})).null_count()
1
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:  # dataset.py imports this module
    from safemicro.io.dataset import VariableMeta

__all__ = ["MAX_SPECIAL_CODES", "MIN_NUMERIC_VALUES", "is_numeric_with_codes", "numeric_part", "special_codes"]

# At most this many labelled values: more labels than that describe a code list.
MAX_SPECIAL_CODES = 10
# More distinct unlabelled values than this: the rest of the column is a quantity.
MIN_NUMERIC_VALUES = 15


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _declared(meta: VariableMeta) -> list[float]:
    """Labelled values and discrete user-missing codes, as numbers, ascending."""
    codes = {_number(v) for v in [*meta.value_labels, *meta.missing_values]}
    codes.discard(None)
    return sorted(codes)  # type: ignore[arg-type]


def _code_mask(s: pl.Series, meta: VariableMeta, codes: list[float]) -> pl.Series:
    x = s.cast(pl.Float64)
    hit = x.is_in(codes) if codes else pl.repeat(False, len(s), dtype=pl.Boolean, eager=True)
    for lo, hi in meta.missing_ranges:
        lo_n, hi_n = _number(lo), _number(hi)
        if lo_n is not None and hi_n is not None:
            hit = hit | x.is_between(lo_n, hi_n)
    return hit.fill_null(False)


def special_codes(s: pl.Series, meta: VariableMeta) -> list[Any] | None:
    """The codes of a numeric-with-special-codes column (as they occur in ``s``), else None.

    ``None`` means the column is not numeric with codes: not numeric, no labels or missing
    codes, or labels that describe most values (a categorical). The codes
    are returned in the column's own type (``-9`` for an integer column, ``-9.0`` for a
    float one), ascending, only those that occur in the data.
    """
    dtype = s.dtype
    if not dtype.is_numeric() or dtype == pl.Boolean:
        return None
    if not (meta.value_labels or meta.missing_values or meta.missing_ranges):
        return None
    labelled = {_number(v) for v in meta.value_labels} - {None}
    if len(labelled) > MAX_SPECIAL_CODES:
        return None
    values = s.drop_nulls()
    if dtype.is_float():
        values = values.filter(values.is_not_nan())
    declared = _declared(meta)
    is_code = _code_mask(values, meta, declared)
    if values.filter(~is_code).n_unique() <= MIN_NUMERIC_VALUES:
        return None
    present = values.filter(is_code).unique().sort()
    return present.to_list()


def is_numeric_with_codes(s: pl.Series, meta: VariableMeta) -> bool:
    """True when the labelled values of a numeric column are codes, not categories."""
    return special_codes(s, meta) is not None


def numeric_part(s: pl.Series, meta: VariableMeta, *, codes: list[Any] | None = None) -> pl.Series:
    """The column's numbers as Float64: user-missing codes, NaN and null are null, and so
    are the labelled codes of a numeric-with-special-codes column.

    Labels of a column that is categorical by :func:`special_codes` are not codes here (the
    caller asked for numbers; a fully labelled scale keeps its values). ``codes``: the codes
    to remove, decided elsewhere (synthetic data read with the real data's codes).
    """
    x = s.cast(pl.Float64)
    missing = [v for v in (_number(c) for c in meta.missing_values) if v is not None]
    codes = (special_codes(s, meta) if codes is None else codes) or []
    mask = _code_mask(s, meta, sorted({*missing, *(float(c) for c in codes)})) | x.is_nan().fill_null(False)
    return x.set(mask, None) if mask.any() else x
