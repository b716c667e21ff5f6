"""Distance to closest record (DCR): records embedded as REaLTabFormer does (one-hot
categoricals, standard-scaled numerics, a truncated SVD for wide encodings) and compared
with the L1 distance."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import polars as pl
from scipy.spatial import cKDTree

from safemicro.errors import SafemicroError
from safemicro.synth.safeguards_common import Frame, _check_columns, _frame, encode_together

SVD_MIN_WIDTH = 20  # REaLTabFormer's max_col_nums: reduce the encoding from this width on


def distance_kinds(frame: pl.DataFrame) -> dict[str, str]:
    """Per column "numeric" (numbers, dates, durations) or "categorical" (everything else)."""
    out = {}
    for name, dtype in frame.schema.items():
        numeric = dtype.is_numeric() or dtype.is_temporal()
        out[name] = "numeric" if numeric and dtype != pl.Boolean else "categorical"
    return out


def _as_float(s: pl.Series) -> np.ndarray:
    """A numeric or temporal column as float64, NaN for missing and infinite values (text is
    parsed, what does not parse is missing)."""
    if s.dtype.is_temporal():
        s = s.to_physical()
    elif s.dtype == pl.String:
        s = s.str.strip_chars().cast(pl.Float64, strict=False)
    x = s.cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy().astype(np.float64)
    x[~np.isfinite(x)] = np.nan
    return x


class _Space:
    """Several frames stacked and encoded once; :meth:`embed` scales and reduces per fit set.

    Holds the one-hot block of the categoricals (categories shared by all frames, missing
    its own category) and the raw numeric block (NaN = missing).
    """

    def __init__(self, frames: list[pl.DataFrame], kinds: Mapping[str, str]) -> None:
        columns = list(kinds)
        self.sizes = [f.height for f in frames]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        n = int(self.offsets[-1])
        blocks, numeric = [], []
        for name in columns:
            parts = [f.get_column(name) for f in frames]
            if kinds[name] == "numeric":
                numeric.append(np.concatenate([_as_float(p) for p in parts]))
                continue
            split, card = encode_together(parts)
            codes = np.concatenate(split)
            present = np.flatnonzero(np.bincount(codes, minlength=card + 1))
            lookup = np.zeros(card + 1, dtype=np.int64)
            lookup[present] = np.arange(len(present))
            block = np.zeros((n, len(present)))
            block[np.arange(n), lookup[codes]] = 1.0
            blocks.append(block)
        self.onehot = np.hstack(blocks) if blocks else np.zeros((n, 0))
        self.numeric = np.column_stack(numeric) if numeric else np.zeros((n, 0))
        self.width = self.onehot.shape[1] + self.numeric.shape[1]

    def rows(self, frame: int) -> np.ndarray:
        return np.arange(self.offsets[frame], self.offsets[frame + 1])

    def embed(self, fit: np.ndarray, rows: list[np.ndarray]) -> list[np.ndarray]:
        """Embeddings of the given rows, with scaling and SVD fitted on the rows ``fit``."""
        num = self.numeric[fit]
        seen = ~np.isnan(num)
        count = np.maximum(seen.sum(axis=0), 1)
        mean = np.where(seen, num, 0.0).sum(axis=0) / count  # an all-missing column: 0
        std = np.sqrt(np.where(seen, (num - mean) ** 2, 0.0).sum(axis=0) / count)
        std = np.where(std > 0, std, 1.0)

        def encode(idx: np.ndarray) -> np.ndarray:
            z = (self.numeric[idx] - mean) / std
            return np.hstack([self.onehot[idx], np.where(np.isnan(z), 0.0, z)])

        if self.width < SVD_MIN_WIDTH:
            return [encode(r) for r in rows]
        x = encode(fit)
        k = min(max(5, math.ceil(math.sqrt(self.width))), self.width)
        # right singular vectors of x = eigenvectors of xᵀx (exact truncated SVD, uncentred)
        vals, vecs = np.linalg.eigh(x.T @ x)
        v = vecs[:, np.argsort(vals)[::-1][:k]]
        return [encode(r) @ v for r in rows]


def _kinds(frame: pl.DataFrame, kinds: Mapping[str, str] | None) -> dict[str, str]:
    if kinds is None:
        return distance_kinds(frame)
    bad = [k for k, v in kinds.items() if v not in ("numeric", "categorical")]
    if bad:
        raise SafemicroError("distance kinds must be 'numeric' or 'categorical'", column=bad[0])
    return dict(kinds)


def nearest_distances(reference: Frame, *queries: Frame, kinds: Mapping[str, str] | None = None) -> list[np.ndarray]:
    """DCR: for each query frame, the distance from each record to its closest ``reference``
    record, all in one embedding fitted on the reference."""
    r = _frame(reference)
    qs = [_frame(q) for q in queries]
    kinds = _kinds(r, kinds)
    _check_columns(list(kinds), reference=r, **{f"query {i + 1}": q for i, q in enumerate(qs)})
    space = _Space([r, *qs], kinds)
    emb = space.embed(space.rows(0), [space.rows(i) for i in range(len(qs) + 1)])
    if not qs:
        return []
    tree = cKDTree(emb[0]) if len(emb[0]) else None
    out = []
    for e in emb[1:]:
        if tree is None or len(e) == 0:
            out.append(np.full(len(e), np.inf))
        else:
            out.append(np.asarray(tree.query(e, k=1, p=1)[0], dtype=np.float64))
    return out
