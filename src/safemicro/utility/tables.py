"""Distances between categorical distributions before and after release.

A variable's original and released values are encoded together (:func:`joint_codes`), so
the same category gets the same integer code on both sides and code 0 is "missing" (a
suppressed cell is a category of its own). One-way and two-way tables are then weighted
``bincount``s of those codes, and the distances are computed on the tables' shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from safemicro.io.dataset import Dataset
from safemicro.keys import BINCOUNT_LIMIT, dense_ids, encode_column
from safemicro.methods.base import same_values

__all__ = [
    "JointCodes",
    "common_dtype",
    "distances",
    "hellinger",
    "joint_codes",
    "pair_distances",
    "tvd",
    "value_label",
]


def _shares(counts) -> np.ndarray | None:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return c / total if total > 0 else None


def tvd(p, q) -> float:
    """Total variation distance ½·Σ|p − q| between two tables of counts (or shares).

    0 for identical distributions, 1 for disjoint ones; NaN if a table is empty.
    """
    a, b = _shares(p), _shares(q)
    if a is None or b is None:
        return math.nan
    return float(0.5 * np.abs(a - b).sum())


def hellinger(p, q) -> float:
    """Hellinger distance √(½·Σ(√p − √q)²) between two tables of counts, in [0, 1]."""
    a, b = _shares(p), _shares(q)
    if a is None or b is None:
        return math.nan
    return float(math.sqrt(max(0.0, 0.5 * ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())))


def common_dtype(a: pl.Series, b: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Both series in one dtype: integers, floats, booleans, or else text."""
    da, db = a.dtype, b.dtype
    if da.is_integer() and db.is_integer():
        return a.cast(pl.Int64), b.cast(pl.Int64)
    if da.is_numeric() and db.is_numeric():
        return a.cast(pl.Float64), b.cast(pl.Float64)
    if da == db == pl.Boolean:
        return a, b
    return a.cast(pl.String), b.cast(pl.String)


@dataclass
class JointCodes:
    """Integer codes of one variable on both sides; ``values[c-1]`` is category c, 0 = missing."""

    before: np.ndarray
    after: np.ndarray
    values: pl.Series
    card: int

    def counts(self, weights_before=None, weights_after=None) -> tuple[np.ndarray, np.ndarray]:
        """Tables (missing first) of the before and after codes, weighted when given."""
        n = self.card + 1
        return (
            np.bincount(self.before, weights=weights_before, minlength=n).astype(np.float64),
            np.bincount(self.after, weights=weights_after, minlength=n).astype(np.float64),
        )


def common_dtypes(series: list[pl.Series]) -> list[pl.Series]:
    """The same column from several frames, all in one dtype (see :func:`common_dtype`)."""
    out = [series[0]]
    for s in series[1:]:
        a, b = common_dtype(out[0], s)
        if a.dtype != out[0].dtype:
            out = [common_dtype(x, s)[0] for x in out]
        out.append(b)
    return out


def joint_codes(before: pl.Series, after: pl.Series) -> JointCodes:
    """Encode two columns (nulls = missing) in one code space ordered by value."""
    a, b = common_dtype(before, after)
    if same_values(a, b):
        # an unchanged variable: encoding one side gives the joint codes (half the work)
        codes, card = encode_column(a)
        rep = np.zeros(card, dtype=np.int64)
        rows = np.flatnonzero(codes)
        rep[codes[rows] - 1] = rows
        values = a.rename("v").gather(rep) if card else a.rename("v").head(0)
        return JointCodes(codes, codes, values, card)
    both = pl.concat([a.rename("v"), b.rename("v")])
    codes, card = encode_column(both)
    rep = np.zeros(card, dtype=np.int64)
    rows = np.flatnonzero(codes)
    rep[codes[rows] - 1] = rows
    values = both.gather(rep) if card else both.head(0)
    return JointCodes(codes[: len(a)], codes[len(a) :], values, card)


def distances(before_counts, after_counts) -> dict[str, float | None]:
    """TVD and Hellinger distance between two tables (None when a table is empty)."""
    out = {"tvd": tvd(before_counts, after_counts), "hellinger": hellinger(before_counts, after_counts)}
    return {k: (None if math.isnan(v) else v) for k, v in out.items()}


def pair_distances(
    x: JointCodes,
    y: JointCodes,
    *,
    weights_before: np.ndarray | None = None,
    weights_after: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """TVD and Hellinger distance between the before and after two-way tables of x and y.

    Unweighted, and weighted when weights are given (``*_weighted``). ``cells_*`` count the
    non-empty cells of each table.
    """
    space = (x.card + 1) * (y.card + 1)
    # codes may be narrow integers (uint8/uint16): the cell numbers are int64
    ib = x.before.astype(np.int64) * (y.card + 1) + y.before
    ia = x.after.astype(np.int64) * (y.card + 1) + y.after
    if space > max(BINCOUNT_LIMIT, 4 * (len(ib) + len(ia))):
        ids, _ = dense_ids(np.concatenate([ib, ia]), space)
        ib, ia = ids[: len(ib)], ids[len(ib) :]
        space = int(ids.max()) + 1 if len(ids) else 0
    weighted = None
    if weights_before is not None and weights_after is not None:
        weighted = (
            np.bincount(ib, weights=weights_before, minlength=space),
            np.bincount(ia, weights=weights_after, minlength=space),
        )
    return table_distances(np.bincount(ib, minlength=space), np.bincount(ia, minlength=space), weighted)


def table_distances(
    counts_before: np.ndarray, counts_after: np.ndarray, weighted: tuple[np.ndarray, np.ndarray] | None
) -> dict[str, float | int | None]:
    """The entry of a two-way table comparison: distances of the record counts, the
    non-empty cells, and the distances of the weighted tables when given."""
    out: dict[str, float | int | None] = dict(distances(counts_before, counts_after))
    out["cells_before"] = int((counts_before > 0).sum())
    out["cells_after"] = int((counts_after > 0).sum())
    if weighted is not None:
        w = distances(*weighted)
        out["tvd_weighted"], out["hellinger_weighted"] = w["tvd"], w["hellinger"]
    return out


def value_label(value: Any, name: str, *datasets: Dataset) -> str | None:
    """The value label of ``value`` in the first dataset whose codebook has one."""
    if value is None:
        return None
    keys = [value, str(value)]
    if isinstance(value, float) and value.is_integer():
        keys.insert(1, int(value))
    for ds in datasets:
        if name in ds.columns:
            labels = ds.codebook.meta(name).value_labels
            for key in keys:
                if key in labels:
                    return labels[key]
    return None
