"""l-diversity of sensitive variables within key groups (sdcMicro ``ldiversity()`` semantics).

Definitions (see ``SDCMICRO_SEMANTICS.md``), for every record, computed on the group of
records that share its key pattern (NA equal to NA, no wildcard matching):

* ``distinct``  = number of distinct values of the sensitive variable in the group;
* ``entropy``   = ``exp(-sum p log p)`` over the value shares ``p`` in the group;
* ``recursive`` = recursive (c, l)-diversity: with the value counts sorted decreasingly
  ``r_1 >= r_2 >= ... >= r_m``, the largest ``l`` with ``r_1 < c * (r_l + ... + r_m)``,
  evaluated in float32 like sdcMicro (``c * ...`` as float32). For ``c > 1`` ``l = 1``
  always qualifies; for ``c <= 1`` a group where no ``l`` qualifies gets 1.

A missing (null / NaN) sensitive value counts as a new category each time (as in sdcMicro,
where NaN != NaN). Any other value, including sdcMicro's ``missing`` code -999, is an
ordinary category. sdcMicro's ``MultiEntropy`` / ``MultiRecursive`` columns are always 0 in
version 5.8.1 and are not produced.

Implementation: keys are encoded once to dense group ids (mixed-radix integer codes), then
per sensitive variable the (group, value) pairs are counted with ``np.bincount`` and the
per-group measures are vectorised over the sorted pair table: no per-record Python loops.
Float keys are compared exactly (no truncation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from safemicro.keys import BINCOUNT_LIMIT, combine_codes, dense_ids, encode_column

__all__ = ["LDiversityResult", "ldiversity"]


@dataclass
class LDiversityResult:
    """Per-record l-diversity (Polars frame, input order) and a summary."""

    keys: list[str]
    sensitive: list[str]
    c: float
    per_record: pl.DataFrame

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        out: dict[str, dict[str, dict[str, float]]] = {}
        for s in self.sensitive:
            kinds = ("distinct", "entropy", "recursive")
            out[s] = {
                kind: _measure_summary(self.per_record.get_column(f"ldiv_{s}_{kind}").to_numpy()) for kind in kinds
            }
        return out


def _measure_summary(x: np.ndarray, size: np.ndarray | None = None) -> dict[str, float]:
    """Smallest and mean value of one measure, and the records where it is 1 and below 2:
    ``x`` per record, or per group of ``size`` records."""
    w = np.ones(len(x)) if size is None else size
    total = float(w.sum())
    return {
        "min": float(x.min()) if x.size else float("nan"),
        "mean": float((x * w).sum() / total) if total else float("nan"),
        "n_eq1": int(w[x == 1].sum()),
        "n_lt2": int(w[x < 2].sum()),
    }


def _codes(s: pl.Series) -> tuple[np.ndarray, int, np.ndarray]:
    """Dense codes 0..L-1 for the non-missing values, the number L, and the NA mask."""
    codes, L = encode_column(s)
    isna = codes == 0
    return np.maximum(codes - 1, 0), L, isna


def _key_groups(frame: pl.DataFrame, keys: list[str]) -> tuple[np.ndarray, int]:
    """Group id per record: identical keys, NA equal to NA."""
    columns, cards = zip(*(encode_column(frame.get_column(k)) for k in keys))
    ids, distinct = dense_ids(*combine_codes(list(columns), list(cards)))
    return ids, len(distinct)


def _group_measures(g: np.ndarray, G: int, s: pl.Series, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """distinct, entropy, recursive per group for one sensitive variable."""
    codes, L, isna = _codes(s)
    L = max(L, 1)
    ok = ~isna
    # counts of (group, value) pairs for non-missing values
    pair = g[ok] * L + codes[ok]
    span = G * L
    if span <= max(BINCOUNT_LIMIT, 4 * pair.size):
        pc = np.bincount(pair, minlength=span)
        nz = np.flatnonzero(pc)
        p_cnt = pc[nz]
        p_grp = nz // L
    else:
        u, p_cnt = np.unique(pair, return_counts=True)
        p_grp = u // L
    # every missing value is its own category of count 1
    if isna.any():
        p_grp = np.concatenate([p_grp, g[isna]])
        p_cnt = np.concatenate([p_cnt, np.ones(int(isna.sum()), dtype=p_cnt.dtype)])
    return pair_measures(p_grp, p_cnt.astype(np.int64, copy=False), G, c)


def pair_measures(p_grp: np.ndarray, p_cnt: np.ndarray, G: int, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """distinct, entropy, recursive per group from the (group, value) pairs: ``p_grp`` the
    group of each pair, ``p_cnt`` its number of records (a missing value: a pair of its own
    with count 1)."""
    distinct = np.bincount(p_grp, minlength=G)
    total = np.bincount(p_grp, weights=p_cnt, minlength=G)
    p = p_cnt / total[p_grp]
    ent = np.exp(np.bincount(p_grp, weights=-p * np.log(p), minlength=G))

    # recursive (c, l): counts sorted decreasingly within each group
    order = np.lexsort((-p_cnt, p_grp))
    sg = p_grp[order]
    sc = p_cnt[order]
    cs = np.cumsum(sc)
    start = np.searchsorted(sg, np.arange(G), side="left")  # first pair of each group
    before_grp = np.where(start > 0, cs[np.maximum(start - 1, 0)], 0)
    suffix = total[sg].astype(np.int64) - (cs - sc - before_grp[sg])  # r_j + ... + r_m
    r1 = sc[start[sg]]
    cond = np.float32(r1) < np.float32(c) * suffix.astype(np.float32)
    recursive = np.maximum(np.bincount(sg, weights=cond, minlength=G).astype(np.int64), 1)
    return distinct.astype(np.int64), ent, recursive


def ldiversity(frame: pl.DataFrame, keys: list[str], sensitive: list[str] | str, *, c: float = 2.0) -> LDiversityResult:
    """Distinct, entropy and recursive (c, l)-diversity per record.

    Returns a :class:`LDiversityResult` whose ``per_record`` frame has the columns
    ``ldiv_<S>_distinct`` (Int64), ``ldiv_<S>_entropy`` (Float64) and
    ``ldiv_<S>_recursive`` (Int64) for every sensitive variable ``S``, in input order.
    """
    if isinstance(sensitive, str):
        sensitive = [sensitive]
    keys, sensitive = list(keys), list(sensitive)
    if not keys:
        raise ValueError("ldiversity: at least one key variable is required")
    if not sensitive:
        raise ValueError("ldiversity: at least one sensitive variable is required")
    absent = [v for v in keys + sensitive if v not in frame.columns]
    if absent:
        raise KeyError(f"ldiversity: columns not in frame: {absent}")
    overlap = set(keys) & set(sensitive)
    if overlap:
        raise ValueError(f"ldiversity: sensitive variables are also keys: {sorted(overlap)}")

    g, G = _key_groups(frame, keys)
    cols: dict[str, Any] = {}
    for s in sensitive:
        if frame.height == 0:
            d = e = r = np.zeros(0)
            cols[f"ldiv_{s}_distinct"] = pl.Series(d, dtype=pl.Int64)
            cols[f"ldiv_{s}_entropy"] = pl.Series(e, dtype=pl.Float64)
            cols[f"ldiv_{s}_recursive"] = pl.Series(r, dtype=pl.Int64)
            continue
        d, e, r = _group_measures(g, G, frame.get_column(s), c)
        cols[f"ldiv_{s}_distinct"] = d[g]
        cols[f"ldiv_{s}_entropy"] = e[g]
        cols[f"ldiv_{s}_recursive"] = r[g]
    return LDiversityResult(keys, sensitive, float(c), pl.DataFrame(cols))


def ldiversity_from_pairs(pairs: pl.DataFrame, keys: list[str], sensitive: str, *, c: float = 2.0) -> dict:
    """The :meth:`LDiversityResult.summary` entry of ``sensitive`` from counted pairs
    instead of records: ``pairs`` has one row per (key values, sensitive value) with its
    number of records in ``__n`` (an engine's group-by; the records stay where they are).
    Groups and values are coded as :func:`ldiversity` codes them, and a missing value
    counted n times becomes n categories of one record, so the per-group measures are the
    per-record ones; the summary weights each group by its records."""
    from safemicro.keys import fold_keys

    g = fold_keys(pairs, keys)[0]  # NaN and null keys share a group
    G = int(g.max()) + 1 if len(g) else 0
    n = pairs.get_column("__n").cast(pl.Int64).to_numpy()
    codes, L, isna = _codes(pairs.get_column(sensitive))
    ok = ~isna
    u, inverse = np.unique(g[ok] * max(L, 1) + codes[ok], return_inverse=True)  # NaN/null rows merged
    p_grp = np.concatenate([u // max(L, 1), np.repeat(g[isna], n[isna])])
    p_cnt = np.concatenate([np.bincount(inverse, weights=n[ok], minlength=len(u)), np.ones(int(n[isna].sum()))])
    p_cnt = p_cnt.astype(np.int64)
    measures = dict(zip(("distinct", "entropy", "recursive"), pair_measures(p_grp, p_cnt, G, c)))
    size = np.bincount(p_grp, weights=p_cnt, minlength=G)
    return {kind: _measure_summary(x, size) for kind, x in measures.items()}
