"""PRAM transition matrices given by the user: recognised in their accepted shapes
(``{from: {to: p}}``, ``{categories, probabilities}``, a square array, or one per variable),
parsed against the observed categories and checked to be stochastic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError

_TOL = 1e-6


def _is_matrix(spec: Any) -> bool:
    if isinstance(spec, np.ndarray):
        return spec.ndim == 2
    if isinstance(spec, (list, tuple)):
        return bool(spec) and all(isinstance(r, (list, tuple, np.ndarray)) for r in spec)
    if isinstance(spec, Mapping):
        if set(spec) == {"categories", "probabilities"}:
            return True
        return bool(spec) and all(isinstance(r, Mapping) for r in spec.values())
    return False


def _matrix_specs(matrix: Any, variables: list[str]) -> dict[str, Any]:
    """{variable: matrix} from a bare matrix (one variable) or a per-variable mapping."""
    if matrix is None:
        return {}
    if (
        isinstance(matrix, Mapping)
        and matrix
        and all(k in variables for k in matrix)
        and all(_is_matrix(v) for v in matrix.values())
    ):
        return dict(matrix)
    if not _is_matrix(matrix):
        raise SafemicroError(
            "matrix must be {from: {to: probability}}, {categories: [...], probabilities: [[...]]},"
            " a square array, or {variable: matrix}",
            step="pram",
        )
    if len(variables) != 1:
        raise SafemicroError("with several variables give the matrix per variable: {variable: matrix}", step="pram")
    return {variables[0]: matrix}


def _parse_matrix(spec: Any, categories: pl.Series, var: str) -> tuple[pl.Series, np.ndarray, list]:
    """Categories (observed first, then new ones the matrix adds) and the square matrix.

    Categories the matrix only names as destinations keep their value (identity row).
    """
    if isinstance(spec, Mapping) and set(spec) == {"categories", "probabilities"}:
        labels, arr = list(spec["categories"]), _array(spec["probabilities"], var)
        n_rows = len(labels)
    elif isinstance(spec, Mapping):  # {from: {to: probability}}
        labels = list(spec)
        n_rows = len(labels)
        for row in spec.values():
            labels += [t for t in row if t not in labels]
        arr = np.zeros((len(labels), len(labels)))
        for i, row in enumerate(spec.values()):
            for t, prob in row.items():
                arr[i, labels.index(t)] = _number(prob, var)
    else:
        arr = _array(spec, var)
        labels = categories.to_list()
        n_rows = len(labels)
        if arr.shape[0] != len(labels):
            raise SafemicroError(
                f"the matrix is {arr.shape[0]}×{arr.shape[0]} but the variable has {len(labels)} "
                "observed categories; give {categories: [...], probabilities: [[...]]} to name them",
                column=var,
                step="pram",
            )
    if arr.shape != (len(labels), len(labels)):
        raise SafemicroError(
            f"the matrix must be square with one row and column per category ({len(labels)}), got shape {arr.shape}",
            column=var,
            step="pram",
        )
    values = [_cast(label, categories.dtype, var) for label in labels]
    if len(set(values)) != len(values):
        raise SafemicroError("the matrix names a category twice", column=var, step="pram")
    known = categories.to_list()
    absent = [v for v in known if v not in values[:n_rows]]
    if absent:
        raise SafemicroError(
            f"the matrix has no row for the observed categor{'y' if len(absent) == 1 else 'ies'} {absent[:10]}",
            column=var,
            step="pram",
        )
    extra = [v for v in values if v not in known]
    space = known + extra
    index = np.array([space.index(v) for v in values], dtype=np.int64)
    p = np.eye(len(space))
    for i in range(n_rows):
        row = arr[i]
        if not np.all(np.isfinite(row)) or (row < 0).any():
            raise SafemicroError(
                f"row {labels[i]!r} of the matrix has a negative or non-numeric probability",
                column=var,
                step="pram",
            )
        if abs(row.sum() - 1.0) > _TOL:
            raise SafemicroError(
                f"row {labels[i]!r} of the matrix sums to {row.sum():.6g}, not 1",
                column=var,
                step="pram",
            )
        p[index[i]] = 0.0
        p[index[i], index] = row / row.sum()
    out = pl.concat([categories, pl.Series(categories.name, extra, dtype=categories.dtype)])
    return out, p, extra


def _array(spec: Any, var: str) -> np.ndarray:
    try:
        arr = np.asarray(spec, dtype=np.float64)
    except (TypeError, ValueError):
        raise SafemicroError("the matrix must hold numbers", column=var, step="pram") from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise SafemicroError(f"the matrix must be square, got shape {arr.shape}", column=var, step="pram")
    return arr


def _number(value: Any, var: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SafemicroError(f"probability {value!r} is not a number", column=var, step="pram")
    return float(value)


def _cast(label: Any, dtype: pl.DataType, var: str) -> Any:
    """A matrix category as a value of the column's type (YAML keys may be text)."""
    try:
        return pl.Series([label]).cast(dtype, strict=True).to_list()[0]
    except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
        raise SafemicroError(
            f"matrix category {label!r} is not a valid value of a {dtype} column",
            column=var,
            step="pram",
        ) from None
