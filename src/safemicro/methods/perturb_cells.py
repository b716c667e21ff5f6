"""Writing perturbed numbers back into a column: in the column's type (integers rounded and
kept in range), only on observed cells, never onto a user-missing code."""

from __future__ import annotations

import numpy as np
import polars as pl

from safemicro.io.dataset import Dataset

_REDRAWS = 20  # attempts to move a noisy value off a user-missing code


def _noisy_column(
    ds: Dataset, name: str, x: np.ndarray, noise: np.ndarray, scale: float, observed: np.ndarray, rng
) -> tuple[pl.Series, bool, int]:
    """The column with noise on its observed cells; integers rounded back into their type.

    Cells whose new value is a user-missing code get fresh noise (up to _REDRAWS times,
    then they keep their value), so no real value turns into a missing one.
    """
    original = ds.frame[name]
    integral = original.dtype.is_integer()
    new = x + noise
    redrawn = 0
    for attempt in range(_REDRAWS + 1):
        candidate = _typed(new, original, integral)
        hits = observed & _is_missing(ds, name, candidate)
        if not hits.any():
            break
        redrawn += int(hits.sum())
        if attempt == _REDRAWS:
            new[hits] = x[hits]
            candidate = _typed(new, original, integral)
            break
        new[hits] = x[hits] + rng.standard_normal(int(hits.sum())) * scale
    column = pl.select(pl.when(pl.Series(observed)).then(candidate).otherwise(original)).to_series()
    return column.alias(name).cast(original.dtype), integral, redrawn


def _typed(values: np.ndarray, original: pl.Series, integral: bool) -> pl.Series:
    """Values in the column's type: floats as they are, integers rounded and kept in range."""
    if not integral:
        return pl.Series(values).cast(original.dtype)
    try:
        info = np.iinfo(str(original.dtype).lower())
    except TypeError:
        info = np.iinfo(np.int64)
    clean = np.where(np.isnan(values), 0.0, np.clip(np.rint(values), info.min, info.max))
    return pl.Series(clean).cast(original.dtype)


def _is_missing(ds: Dataset, name: str, values: pl.Series) -> np.ndarray:
    """Which values are user-missing codes of ``name``."""
    meta = ds.codebook.meta(name)
    hit = np.zeros(len(values), dtype=bool)
    if meta.missing_values:
        codes = pl.Series(meta.missing_values).cast(values.dtype, strict=False).drop_nulls()
        hit |= values.is_in(codes.implode()).fill_null(False).to_numpy()
    for lo, hi in meta.missing_ranges:
        hit |= values.is_between(lo, hi).fill_null(False).to_numpy()
    return hit
