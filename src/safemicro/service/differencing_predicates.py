"""The cell predicates of the differencing guard: a small JSON language over record columns.

A predicate is a conjunction of ``{"column": {"in": [values]}}`` / ``{"column": {"between":
[lo, hi]}}`` / ``{"column": {"eq": value}}`` (``{}`` is everyone); its canonical JSON is the
key a store indexes and replays.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError


def canonical(cells: Iterable[Mapping[str, Any]]) -> str:
    """Canonical JSON of a list of predicates (the key a store can index and replay)."""
    return json.dumps([dict(c) for c in cells], sort_keys=True, separators=(",", ":"), default=str)


def _coerce(values: list, dtype: pl.DataType, column: str) -> pl.Series:
    s = pl.Series(values)
    if s.dtype == dtype or s.len() == 0:
        return s.cast(dtype) if s.len() == 0 else s
    try:
        if s.dtype == pl.String and dtype == pl.Date:
            return s.str.to_date()
        if s.dtype == pl.String and isinstance(dtype, pl.Datetime):
            return s.str.to_datetime(time_unit=dtype.time_unit, time_zone=dtype.time_zone)
        return s.cast(dtype, strict=True)
    except Exception as e:  # noqa: BLE001 - any conversion failure is the user's value
        raise SafemicroError(f"value {values!r} does not fit the column type {dtype}: {e}", column=column) from None


def predicate_expr(predicate: Mapping[str, Any], schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """A Polars boolean expression for one cell predicate (validated against ``schema``)."""
    if not isinstance(predicate, Mapping):
        raise SafemicroError(f"a cell predicate must be a mapping of column to condition, got {predicate!r}")
    parts = []
    for column, cond in predicate.items():
        if column not in schema:
            raise SafemicroError(f"unknown column in predicate (columns: {', '.join(schema)})", column=str(column))
        if not isinstance(cond, Mapping) or len(cond) != 1:
            raise SafemicroError(
                f"condition must be one of {{'in': [...]}}, {{'between': [lo, hi]}}, {{'eq': v}}, got {cond!r}",
                column=column,
            )
        ((op, arg),) = cond.items()
        dtype = schema[column]
        if op == "in":
            if not isinstance(arg, (list, tuple)):
                raise SafemicroError(f"'in' needs a list, got {arg!r}", column=column)
            parts.append(pl.col(column).is_in(_coerce(list(arg), dtype, column).implode()))
        elif op == "eq":
            parts.append(pl.col(column) == _coerce([arg], dtype, column)[0])
        elif op == "between":
            if not isinstance(arg, (list, tuple)) or len(arg) != 2:
                raise SafemicroError(f"'between' needs [lo, hi], got {arg!r}", column=column)
            lo, hi = _coerce(list(arg), dtype, column).to_list()
            parts.append(pl.col(column).is_between(lo, hi, closed="both"))
        else:
            raise SafemicroError(f"unknown condition {op!r}; use in, between or eq", column=column)
    return pl.all_horizontal(parts).fill_null(False) if parts else pl.lit(True)


def predicate_mask(records: pl.DataFrame, predicates: list[Mapping[str, Any]]) -> np.ndarray:
    """Boolean matrix (cells × records): which records each predicate selects."""
    if not predicates:
        return np.zeros((0, records.height), dtype=bool)
    exprs = [predicate_expr(p, records.schema).alias(f"_c{i}") for i, p in enumerate(predicates)]
    out = records.with_columns(exprs).select([f"_c{i}" for i in range(len(predicates))])  # literals broadcast
    return np.vstack([out.get_column(f"_c{i}").to_numpy() for i in range(len(predicates))]).astype(bool)
