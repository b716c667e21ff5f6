"""Gower-like distances between records of several frames, and nearest-neighbour search.

Per column: categories contribute 0 when equal and 1 when not (a missing value is a
category of its own); numbers contribute the absolute difference divided by the column's
range over all the frames (so at most 1), 0 when both are missing and 1 when one is. The
distance is the sum over the columns. This is the distance of Gower (1971) without the
final division by the number of columns, as Anonymeter uses it; Anonymeter differs only on
missing numbers (both missing counts 1 there).

Neighbours are found by brute force in blocks of queries (NumPy broadcasting). Ties are
broken at random (the intruder has nothing to prefer one tied record to another; taking
the first in the file would make the result depend on the file's order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from safemicro.keys import encode_column
from safemicro.utility.tables import common_dtypes

__all__ = ["GowerSpace", "numeric_columns"]

BLOCK = 4_000_000  # pair × column contributions computed at a time
JITTER = 1e-9  # random tie-breaker, far below any real difference (a numeric gap is ≥ 1e-9 of the range)


def numeric_columns(frame: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    """Columns compared as numbers: numeric (not boolean) dtypes; the rest are categories."""
    return [c for c in columns if frame.schema[c].is_numeric() and frame.schema[c] != pl.Boolean]


def range_scaled(values: pl.Series) -> np.ndarray:
    """Numbers divided by their range (Gower's scaling), missing as NaN; text that is no
    number counts as missing."""
    x = values.cast(pl.Float64, strict=False).fill_nan(None).fill_null(np.nan).to_numpy().astype(np.float64)
    finite = x[np.isfinite(x)]
    span = float(finite.max() - finite.min()) if len(finite) else 0.0
    return x / (span if span > 0 else 1.0)


class GowerSpace:
    """Several frames encoded once on the same columns, for distances between their rows."""

    def __init__(self, frames: Sequence[pl.DataFrame], columns: Sequence[str], numeric: Sequence[str]) -> None:
        self.columns = list(columns)
        self.numeric = [c in set(numeric) for c in self.columns]
        sizes = [f.height for f in frames]
        cuts = np.cumsum(sizes)[:-1]
        num_parts: list[list[np.ndarray]] = [[] for _ in frames]
        cat_parts: list[list[np.ndarray]] = [[] for _ in frames]
        for name, is_num in zip(self.columns, self.numeric):
            parts = common_dtypes([f.get_column(name) for f in frames])
            joined = pl.concat([p.rename("v") for p in parts])
            if is_num:
                x = range_scaled(joined)
                for i, part in enumerate(np.split(x, cuts)):
                    num_parts[i].append(part)
            else:
                codes, _ = encode_column(joined)
                for i, part in enumerate(np.split(codes.astype(np.float64), cuts)):
                    cat_parts[i].append(part)
        self.num = [np.column_stack(p) if p else np.zeros((n, 0)) for p, n in zip(num_parts, sizes)]
        self.cat = [np.column_stack(p) if p else np.zeros((n, 0)) for p, n in zip(cat_parts, sizes)]
        # column positions of the numeric and categorical blocks in self.columns
        self.num_pos = [j for j, f in enumerate(self.numeric) if f]
        self.cat_pos = [j for j, f in enumerate(self.numeric) if not f]

    def contributions(self, qf: int, q_rows: np.ndarray, cf: int, c_rows: np.ndarray | None = None) -> np.ndarray:
        """Per-column distance contributions, shape (len(q_rows), n_candidates, n_columns)."""
        qn, qc = self.num[qf][q_rows], self.cat[qf][q_rows]
        cn = self.num[cf] if c_rows is None else self.num[cf][c_rows]
        cc = self.cat[cf] if c_rows is None else self.cat[cf][c_rows]
        out = np.empty((len(q_rows), len(cn), len(self.columns)))
        if self.num_pos:
            a, b = qn[:, None, :], cn[None, :, :]
            gap = np.abs(a - b)
            na, nb = np.isnan(a), np.isnan(b)
            gap = np.where(na & nb, 0.0, np.where(na | nb, 1.0, np.minimum(gap, 1.0)))
            out[:, :, self.num_pos] = gap
        if self.cat_pos:
            out[:, :, self.cat_pos] = qc[:, None, :] != cc[None, :, :]
        return out

    def _column_mask(self, use: Sequence[str] | None) -> np.ndarray:
        if use is None:
            return np.ones(len(self.columns), dtype=bool)
        return np.array([c in set(use) for c in self.columns])

    def distances(self, qf: int, q_rows: np.ndarray, cf: int, use: Sequence[str] | None = None) -> np.ndarray:
        """Distances (len(q_rows), rows of frame ``cf``) on the columns ``use``, summed
        column by column (no 3-D array)."""
        mask = self._column_mask(use)
        n_c = len(self.num[cf])
        d = np.zeros((len(q_rows), n_c))
        for k, j in enumerate(self.num_pos):
            if not mask[j]:
                continue
            a = self.num[qf][q_rows, k][:, None]
            b = self.num[cf][:, k][None, :]
            na, nb = np.isnan(a), np.isnan(b)
            gap = np.minimum(np.abs(a - b), 1.0)
            d += np.where(na & nb, 0.0, np.where(na | nb, 1.0, gap))
        for k, j in enumerate(self.cat_pos):
            if mask[j]:
                d += self.cat[qf][q_rows, k][:, None] != self.cat[cf][:, k][None, :]
        return d

    def neighbours(
        self,
        qf: int,
        q_rows: np.ndarray,
        cf: int,
        *,
        k: int = 1,
        use: Sequence[str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of frame ``cf`` to each query row, on the columns ``use``
        (default all); ties at random with ``rng`` (else, for k = 1, the first in the file).
        Returns (indices, distances)."""
        n_c = len(self.num[cf])
        k = min(k, n_c)
        idx = np.empty((len(q_rows), k), dtype=np.int64)
        dist = np.empty((len(q_rows), k))
        step = max(1, BLOCK // max(n_c, 1))
        for s in range(0, len(q_rows), step):
            d = self.distances(qf, q_rows[s : s + step], cf, use)
            key = d if rng is None else d + JITTER * rng.random(d.shape)
            if k == 1:
                order = np.argmin(key, axis=1)[:, None]
            else:
                part = np.argpartition(key, k - 1, axis=1)[:, :k]
                order = np.take_along_axis(
                    part, np.argsort(np.take_along_axis(key, part, axis=1), axis=1, kind="stable"), axis=1
                )
            idx[s : s + step] = order
            dist[s : s + step] = np.take_along_axis(d, order, axis=1)
        return idx, dist
