"""SUDA2: special uniques detection (minimal sample uniques) and DIS-SUDA scores.

Definitions follow sdcMicro 5.8.1's ``suda2()`` (see ``SDCMICRO_SEMANTICS.md``); the
implementation is independent and works on the *distinct key patterns* of the data:

* NA (and NaN) in a key becomes the ``missing`` code, which counts as an ordinary value
  when other records are counted, but a variable that is missing for record ``r`` can never
  be part of one of ``r``'s MSUs.
* An MSU (minimal sample unique) of record ``r`` is a set of key variables on which ``r`` is
  unique in the sample and no proper subset of which has that property. Only records unique
  on the full key can have MSUs.
* score (``original_scores=True``) = sum over the MSUs of ``(M - |MSU|)!``; otherwise the
  weights ``(2^(M-k) - 1) * k! * (M-k)! / M!`` for an MSU of size ``k``.
* DIS-SUDA as in sdcMicro, in float32 where sdcMicro uses float32.
* With 1 or 2 key variables constant dummy columns are added so that ``M = 3``.

Algorithm: the data are reduced to distinct patterns with counts. For every subset ``S``
of the keys (level by level, ``|S| = 1, 2, ...``) the patterns are projected onto ``S``
with mixed-radix integer codes and counted with ``np.bincount``; a full-key unique ``r`` is
unique on ``S`` iff its projected count is 1, and ``S`` is an MSU of ``r`` iff ``r`` is
unique on ``S`` but on none of the sets ``S \\ {v}`` (uniqueness is monotone, so checking
the immediate subsets is enough). This costs ``2^M`` passes over the (small) table of
distinct patterns: fine up to ~15 keys; beyond that pass ``max_size`` to bound the MSU
size searched (larger MSUs are then ignored, so scores are lower bounds).

Deliberate differences from sdcMicro:

* Float keys are truncated towards zero like sdcMicro's cast to ``int``; string /
  categorical keys are encoded as categories (sdcMicro would need numeric codes); a null
  string is a missing value.
* ``U`` (number of sample uniques) in the DIS formula is the true count of sample uniques.
  sdcMicro counts only uniques alone in their hash bucket; mathematically ``U`` cancels, so
  this only changes float32 rounding (differences < 1e-7), and it avoids sdcMicro's NaN
  when that bucket count is 0.
* If there are no sample uniques every DIS is 0 (no NaN).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

from safemicro.keys import BINCOUNT_LIMIT, combine_codes, dense_ids

__all__ = ["Suda2Result", "suda2", "DIS_BINS"]

#: Bins used by :meth:`Suda2Result.summary` for the DIS table (as in the reference JSON).
DIS_BINS: list[tuple[str, float, float]] = [
    ("(0.0, 0.1]", 0.0, 0.1),
    ("(0.1, 0.2]", 0.1, 0.2),
    ("(0.2, 0.3]", 0.2, 0.3),
    ("(0.3, 0.4]", 0.3, 0.4),
    ("(0.4, 0.5]", 0.4, 0.5),
    ("(0.5, 0.6]", 0.5, 0.6),
    ("(0.6, 0.7]", 0.6, 0.7),
]


@dataclass
class Suda2Result:
    """Per-record SUDA2 results (numpy arrays in input order) and aggregates."""

    keys: list[str]
    score: np.ndarray
    dis: np.ndarray
    # records with a positive score and, per key, the share of their score due to MSUs
    # containing the key: the n x m ``contributions`` are built only when asked for
    contribution_rows: tuple[np.ndarray, np.ndarray]
    attribute_contributions: dict[str, float]
    level_contributions: dict[str, dict[Any, float]]
    original_scores: bool = True
    n_msu: np.ndarray = field(default=None, repr=False)  # per record: number of MSUs

    @property
    def contributions(self) -> np.ndarray:
        """n x m: the share of each record's score due to MSUs containing each key."""
        rows, shares = self.contribution_rows
        out = np.zeros((len(self.score), len(self.keys)), dtype=np.float64)
        out[rows] = shares
        return out

    def summary(self) -> dict[str, Any]:
        score, dis = self.score, self.dis
        table = {"== 0": int(np.count_nonzero(dis == 0))}
        for label, lo, hi in DIS_BINS:
            table[label] = int(np.count_nonzero((dis > lo) & (dis <= hi)))
        table["> 0.7"] = int(np.count_nonzero(dis > 0.7))
        return {
            "n_score_gt0": int(np.count_nonzero(score > 0)),
            "sum_score": float(score.sum()),
            "max_score": float(score.max()) if score.size else 0.0,
            "sum_dis": float(dis.sum()),
            "max_dis": float(dis.max()) if dis.size else 0.0,
            "dis_table": table,
            "attribute_contributions": dict(self.attribute_contributions),
            "level_contributions": {k: dict(v) for k, v in self.level_contributions.items()},
        }

    def to_frame(self) -> pl.DataFrame:
        """Per-record results as a Polars frame (score, dis, <key>_contribution)."""
        cols = {"score": self.score, "dis": self.dis}
        for j, k in enumerate(self.keys):
            cols[f"{k}_contribution"] = self.contributions[:, j]
        return pl.DataFrame(cols)


# ---------------------------------------------------------------------------------------
# encoding


def _encode_column(s: pl.Series, missing: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Compact integer codes 0..L-1 for one key column.

    Returns (codes int64, level values (object or int array, index = code), code of the
    missing value or -1 if absent).
    """
    dt = s.dtype
    if dt == pl.String or dt == pl.Categorical or dt == pl.Enum or dt == pl.Boolean:
        s = s.cast(pl.String)
        isna = s.is_null().to_numpy()
        phys = s.cast(pl.Categorical).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
        if phys.size == 0:
            return phys, np.empty(0, dtype=object), -1
        # compact the (hash-based) categorical codes, then order the levels alphabetically
        ok = ~isna
        span = int(phys.max()) + 1 if ok.any() else 1
        present = np.bincount(phys[ok], minlength=span) > 0
        lut = np.cumsum(present) - 1
        L = int(present.sum())
        first = np.full(span, -1, dtype=np.int64)
        idx = np.flatnonzero(ok)
        first[phys[idx[::-1]]] = idx[::-1]
        reps = s.gather(first[present]).to_list()
        order = sorted(range(L), key=lambda i: reps[i])
        rank = np.empty(L, dtype=np.int64)
        rank[order] = np.arange(L)
        codes = np.full(phys.size, L, dtype=np.int64)  # L = missing
        codes[ok] = rank[lut[phys[ok]]]
        levels = [reps[i] for i in order]
        miss_code = -1
        if isna.any():
            miss_code = L
            levels.append(None)
        return codes, np.asarray(levels, dtype=object), miss_code
    if dt.is_float():
        s = s.fill_nan(None)
        vals = s.fill_null(float(missing)).to_numpy()
        vals = np.trunc(vals).astype(np.int64)
    elif dt.is_integer():
        vals = s.fill_null(missing).to_numpy().astype(np.int64, copy=False)
    elif dt == pl.Null:
        vals = np.full(s.len(), missing, dtype=np.int64)
    else:
        raise TypeError(f"suda2: unsupported key dtype {dt} for column {s.name!r}")
    if vals.size == 0:
        return vals, np.empty(0, dtype=np.int64), -1
    mn, mx = int(vals.min()), int(vals.max())
    if mx - mn < BINCOUNT_LIMIT:
        shifted = vals - mn
        present = np.bincount(shifted, minlength=mx - mn + 1) > 0
        lut = np.cumsum(present) - 1
        codes = lut[shifted]
        levels = np.flatnonzero(present) + mn
    else:
        levels, codes = np.unique(vals, return_inverse=True)
        codes = codes.astype(np.int64, copy=False)
    hit = np.flatnonzero(levels == missing)
    miss_code = int(hit[0]) if hit.size else -1
    return codes, levels, miss_code


def _patterns(codes: list[np.ndarray], cards: list[int]):
    """Distinct key patterns: (inverse per record, counts, pattern codes D x m, first rows)."""
    n = codes[0].size
    # codes run 0..L-1 here, combine_codes takes the largest code
    inv, distinct = dense_ids(*combine_codes(codes, [L - 1 for L in cards]))
    D = len(distinct)
    cnt = np.bincount(inv, minlength=D)
    first = np.empty(D, dtype=np.int64)
    first[inv] = np.arange(n, dtype=np.int64)
    pat = np.stack([c[first] for c in codes], axis=1) if codes else np.zeros((D, 0), np.int64)
    return inv, cnt, pat, first


def _subset_counts(pat: np.ndarray, cnt: np.ndarray, cards: list[int], S: tuple[int, ...]):
    """Projected code of every pattern on S and the number of records per code."""
    code = pat[:, S[0]].copy()
    span = cards[S[0]]
    for v in S[1:]:
        if span * cards[v] >= (1 << 62):
            code = np.unique(code, return_inverse=True)[1].astype(np.int64)
            span = int(code.max()) + 1
        code *= cards[v]
        code += pat[:, v]
        span *= cards[v]
    if span <= max(BINCOUNT_LIMIT, 4 * code.size):
        counts = np.bincount(code, weights=cnt, minlength=span)
        return code, counts
    _, inv = np.unique(code, return_inverse=True)
    counts = np.bincount(inv, weights=cnt)
    return inv, counts


# ---------------------------------------------------------------------------------------
# main entry point


def suda2(
    frame: pl.DataFrame,
    keys: list[str],
    *,
    missing: int = -999,
    dis_fraction: float = 0.01,
    original_scores: bool = True,
    max_size: int | None = None,
) -> Suda2Result:
    """SUDA2 scores, DIS-SUDA scores and variable contributions (sdcMicro semantics).

    Parameters
    ----------
    frame : Polars frame holding the key columns (integers, floats, strings, nulls).
    keys : key (quasi-identifier) variables.
    missing : code that NA becomes; a key equal to it is "missing" for that record.
    dis_fraction : sampling fraction used by DIS-SUDA (sdcMicro ``DisFraction``).
    original_scores : ``(M-k)!`` scoring (True) or the alternative weights.
    max_size : only search MSUs of at most this many variables (default: all). Needed
        for many keys (the search visits ``sum_{k<=max_size} C(M, k)`` subsets).
    """
    keys = list(keys)
    if not keys:
        raise ValueError("suda2: at least one key variable is required")
    if len(set(keys)) != len(keys):
        raise ValueError("suda2: duplicate key variables")
    missing_cols = [k for k in keys if k not in frame.columns]
    if missing_cols:
        raise KeyError(f"suda2: key columns not in frame: {missing_cols}")
    if not 0.0 < dis_fraction < 1.0:
        raise ValueError("suda2: dis_fraction must be in (0, 1)")
    n = frame.height
    m = len(keys)

    codes: list[np.ndarray] = []
    levels: list[np.ndarray] = []
    miss_codes: list[int] = []
    cards: list[int] = []
    for k in keys:
        c, lv, mc = _encode_column(frame.get_column(k), missing)
        codes.append(c)
        levels.append(lv)
        miss_codes.append(mc)
        cards.append(max(len(lv), 1))
    if m < 3:
        warnings.warn(
            "suda2: fewer than 3 key variables; constant dummy variables are added (M = 3)",
            stacklevel=2,
        )
        for _ in range(3 - m):
            codes.append(np.zeros(n, dtype=np.int64))
            cards.append(1)
            miss_codes.append(-1)
    if n == 0:
        return suda2_patterns(
            keys, 0, None, None, None, cards, miss_codes, levels, dis_fraction, original_scores, max_size
        )
    _, cnt, pat, first = _patterns(codes, cards)
    return suda2_patterns(keys, n, pat, cnt, first, cards, miss_codes, levels, dis_fraction, original_scores, max_size)


def suda2_patterns(
    keys: list[str],
    n: int,
    pat: np.ndarray | None,
    cnt: np.ndarray | None,
    first: np.ndarray | None,
    cards: list[int],
    miss_codes: list[int],
    levels: list,
    dis_fraction: float = 0.01,
    original_scores: bool = True,
    max_size: int | None = None,
) -> Suda2Result:
    """SUDA2 on the distinct key patterns of ``n`` records: ``pat`` (D x M codes below
    ``cards``), their record counts ``cnt`` and one record of each (``first``);
    ``miss_codes`` the code of a missing value per column (-1: none), ``levels`` the value
    of each code. :func:`suda2` encodes a frame into this; ``suda2_keys`` takes the key table."""
    m = len(keys)
    M = len(cards)
    max_k = M if max_size is None else max(0, min(int(max_size), M))
    if max_size is None and M > 20:
        raise ValueError(f"suda2: {M} keys means 2^{M} subsets; pass max_size to bound the search")

    score = np.zeros(n, dtype=np.float64)
    n_msu = np.zeros(n, dtype=np.int64)
    if n == 0:
        return Suda2Result(
            keys,
            score,
            score.astype(np.float64),
            (np.zeros(0, dtype=np.int64), np.zeros((0, m), dtype=np.float64)),
            {k: 0.0 for k in keys},
            {k: {} for k in keys},
            original_scores,
            n_msu,
        )

    cand = np.flatnonzero(cnt == 1)  # patterns = records unique on the full key
    C = cand.size
    cand_miss = np.zeros((C, M), dtype=bool)
    for j in range(M):
        if miss_codes[j] >= 0:
            cand_miss[:, j] = pat[cand, j] == miss_codes[j]

    # weights per MSU size
    if original_scores:
        wts = [float(math.factorial(M - k)) for k in range(M + 1)]
    else:
        wts = [
            (2.0 ** (M - k) - 1.0) * math.factorial(k) * math.factorial(M - k) / math.factorial(M) for k in range(M + 1)
        ]

    c_score = np.zeros(C, dtype=np.float64)
    c_contrib = np.zeros((C, M), dtype=np.float64)
    c_nmsu = np.zeros(C, dtype=np.int64)

    if C:
        # "alive": candidates that may still have MSUs at the next levels, i.e. for which
        # some subset of the current size is not yet unique and free of missing values.
        prev: dict[int, np.ndarray] = {0: np.zeros(C, dtype=bool) if n > 1 else np.ones(C, bool)}
        for k in range(1, max_k + 1):
            cur: dict[int, np.ndarray] = {}
            any_open = np.zeros(C, dtype=bool)
            for S in combinations(range(M), k):
                mask = 0
                for v in S:
                    mask |= 1 << v
                # r unique on some S \ {v}  ->  S is not minimal (and r is unique on S)
                sub_uniq = np.zeros(C, dtype=bool)
                for v in S:
                    sub_uniq |= prev[mask & ~(1 << v)]
                if sub_uniq.all():
                    cur[mask] = sub_uniq
                    continue
                pcode, counts = _subset_counts(pat, cnt, cards, S)
                uniq = counts[pcode[cand]] == 1
                uniq |= sub_uniq
                cur[mask] = uniq
                msu = uniq & ~sub_uniq
                if k == 1:
                    msu &= ~cand_miss[:, S[0]]
                else:
                    msu &= ~cand_miss[:, list(S)].any(axis=1)
                any_open |= ~uniq
                if msu.any():
                    idx = np.flatnonzero(msu)
                    w = wts[k]
                    c_score[idx] += w
                    c_nmsu[idx] += 1
                    for v in S:
                        c_contrib[idx, v] += w
            prev = cur
            if not any_open.any():
                break

    # map back to records (candidate patterns have exactly one record)
    cand_rec = first[cand]
    score[cand_rec] = c_score
    n_msu[cand_rec] = c_nmsu
    pos = c_score > 0
    contributions = (cand_rec[pos], c_contrib[pos, :m] / c_score[pos, None])

    dis = _dis_scores(score, cand.size, int(2 * np.count_nonzero(cnt == 2)), M, dis_fraction)

    # attribute and level contributions
    total = score.sum()
    attr: dict[str, float] = {}
    lev: dict[str, dict[Any, float]] = {}
    for j, k in enumerate(keys):
        wsum = c_contrib[:, j]  # = contribution * score per candidate
        tot_j = float(wsum.sum())
        attr[k] = float(100.0 * tot_j / total) if total > 0 else 0.0
        per_level = np.bincount(pat[cand, j], weights=wsum, minlength=cards[j]) if C else np.zeros(cards[j])
        d: dict[Any, float] = {}
        lv = levels[j]
        for code in range(len(lv)):
            if code == miss_codes[j]:
                continue
            val = lv[code]
            val = val.item() if isinstance(val, np.generic) else val
            d[val] = 100.0 * float(per_level[code]) / tot_j if tot_j > 0 else 0.0
        lev[k] = d

    return Suda2Result(keys, score, dis, contributions, attr, lev, original_scores, n_msu)


def _dis_scores(score: np.ndarray, U: int, P: int, M: int, dis_fraction: float) -> np.ndarray:
    """DIS-SUDA per record (sdcMicro's float32 formula)."""
    n = score.size
    out = np.zeros(n, dtype=np.float64)
    pos = score > 0
    if U == 0 or not pos.any():
        return out
    f = np.float32(dis_fraction)
    Uf = np.float32(U) * f
    dis = np.float32(Uf / (Uf + np.float32(P) * (np.float32(1.0) - f)))
    # Q and U/Dis - U are float32 quantities (this reproduces sdcMicro to ~1e-16)
    q = float(np.float32(1.0) + np.float32(8 - M) / np.float32(20.0))
    s = score[pos]
    sq = s**q
    A = float(np.sum(1.0 / sq))
    num = float(np.float32(np.float32(U) / dis - np.float32(U)))
    out[pos] = 1.0 / (1.0 + num / (sq * A))
    return out
