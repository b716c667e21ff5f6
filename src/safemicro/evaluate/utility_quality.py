"""sdmetrics' QualityReport from its definitions: column shapes (KSComplement,
TVComplement), column pair trends (CorrelationSimilarity, ContingencySimilarity) and
their mean, plus the column kinds compared as numbers and their float form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

from safemicro.utility.tables import JointCodes, joint_codes

CONTINUOUS = ("numeric", "datetime")
PAIR_BINS = 10  # sdmetrics bins a number into np.histogram_bin_edges' default 10 bins
KS_DECIMALS = 14  # sdmetrics rounds values to sys.float_info.dig - 1 decimals before KS
CORRELATION_THRESHOLD = 0.5  # sdmetrics QualityReport's real_correlation_threshold
ASSOCIATION_THRESHOLD = 0.3  # ... and real_association_threshold


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


# -- single columns ---------------------------------------------------------------------------


def ks_complement(real: np.ndarray, synth: np.ndarray) -> float:
    """1 − the two-sample Kolmogorov–Smirnov statistic (NaN when a side has no values)."""
    a = np.sort(np.round(np.asarray(real, dtype=np.float64), KS_DECIMALS))
    b = np.sort(np.round(np.asarray(synth, dtype=np.float64), KS_DECIMALS))
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return math.nan
    both = np.concatenate([a, b])
    fa = np.searchsorted(a, both, side="right") / len(a)
    fb = np.searchsorted(b, both, side="right") / len(b)
    return float(1.0 - np.abs(fa - fb).max())


def tv_complement(codes: JointCodes) -> float:
    """1 − total variation distance between the observed categories (missing left out)."""
    r, s = codes.counts()
    r, s = r[1:], s[1:]
    if r.sum() == 0 or s.sum() == 0:
        return math.nan
    return float(1.0 - 0.5 * np.abs(r / r.sum() - s / s.sum()).sum())


# -- pairs -------------------------------------------------------------------------------------


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(np.clip((dx @ dy) / den, -1.0, 1.0)) if den > 0 else math.nan


def _constant(x: np.ndarray) -> bool:
    v = x[~np.isnan(x)]
    return len(v) > 0 and bool((v == v[0]).all())


def correlation_similarity(
    real: tuple[np.ndarray, np.ndarray], synth: tuple[np.ndarray, np.ndarray], threshold: float = 0.0
) -> dict[str, float]:
    """1 − |r_real − r_synth| / 2 for Pearson's r on the rows where both are observed.

    NaN when a column is constant on a side (correlation undefined) or when |r_real| is at
    most ``threshold``.
    """
    out = {"score": math.nan, "real": math.nan, "synth": math.nan}
    if any(_constant(c) for c in (*real, *synth)):
        return out

    def r(x: np.ndarray, y: np.ndarray) -> float:
        ok = ~(np.isnan(x) | np.isnan(y))
        return _pearson(x[ok], y[ok])

    out["real"] = r(*real)
    if not abs(out["real"]) > threshold:
        return out
    out["synth"] = r(*synth)
    if not math.isnan(out["synth"]):
        out["score"] = 1.0 - abs(out["real"] - out["synth"]) / 2.0
    return out


def _pair_table(a: np.ndarray, b: np.ndarray, card_b: int, space: int) -> np.ndarray:
    return np.bincount(a * (card_b + 1) + b, minlength=space).astype(np.float64)


def cramers_v(table: np.ndarray) -> float:
    """Cramér's V of a two-way table of counts (empty rows and columns left out)."""
    t = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    n = t.sum()
    if n == 0 or min(t.shape) < 2:
        return math.nan
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / n
    chi2 = float(((t - expected) ** 2 / expected).sum())
    return math.sqrt(chi2 / n / (min(t.shape) - 1))


def contingency_similarity(
    real: tuple[np.ndarray, np.ndarray],
    synth: tuple[np.ndarray, np.ndarray],
    cards: tuple[int, int],
    threshold: float = 0.0,
) -> dict[str, float]:
    """1 − TVD between the real and synthetic two-way tables of two coded columns.

    Codes run 0..card on both sides (0 may be "missing", a category like any other). With
    a ``threshold``, NaN unless the real table's Cramér's V exceeds it.
    """
    ca, cb = cards
    space = (ca + 1) * (cb + 1)
    tr = _pair_table(real[0], real[1], cb, space)
    ts = _pair_table(synth[0], synth[1], cb, space)
    out = {"score": math.nan, "association": math.nan}
    if threshold > 0:
        out["association"] = cramers_v(tr.reshape(ca + 1, cb + 1))
        if not out["association"] > threshold:
            return out
    if tr.sum() == 0 or ts.sum() == 0:
        return out
    out["score"] = float(1.0 - 0.5 * np.abs(tr / tr.sum() - ts / ts.sum()).sum())
    return out


def _bins(values: np.ndarray) -> tuple[np.ndarray, int]:
    """sdmetrics' discretisation for pair trends: 10 equal-width bins over the column's own
    range, ``np.digitize`` codes (the maximum and missing values both get code 11)."""
    observed = values[~np.isnan(values)]
    edges = np.histogram_bin_edges(observed, bins=PAIR_BINS)
    return np.digitize(values, edges).astype(np.int64), PAIR_BINS + 1


def _floats(s: pl.Series) -> np.ndarray:
    return s.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64)


# -- the quality report -----------------------------------------------------------------------


def quality(
    real: pl.DataFrame,
    synth: pl.DataFrame,
    kinds: Mapping[str, str],
    *,
    correlation_threshold: float = CORRELATION_THRESHOLD,
    association_threshold: float = ASSOCIATION_THRESHOLD,
) -> dict[str, Any]:
    """sdmetrics-style quality: column shapes, column pair trends and their mean.

    Differences from sdmetrics 0.32, on purpose: no random subsample of the pairs' rows above
    50 000 rows (we use all), and no 1e-6 pseudo-count for categories only the synthetic
    data has (it changes the score by less than 1e-9).
    """
    names = [n for n in real.columns if kinds.get(n) in (*CONTINUOUS, "categorical")]
    columns: list[dict[str, Any]] = []
    coded: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    floats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in names:
        r, s = real.get_column(name), synth.get_column(name)
        if kinds[name] in CONTINUOUS:
            fr, fs = _floats(r), _floats(s)
            floats[name] = (fr, fs)
            score = ks_complement(fr, fs)
            (br, card), (bs, _) = _bins(fr), _bins(fs)
            coded[name] = (br, bs, card)
            metric = "KSComplement"
        else:
            jc = joint_codes(r, s)
            coded[name] = (jc.before, jc.after, jc.card)
            score = tv_complement(jc)
            metric = "TVComplement"
        columns.append({"column": name, "kind": kinds[name], "metric": metric, "score": _nan_to_none(score)})

    pairs: list[dict[str, Any]] = []
    for a, b in combinations(names, 2):
        continuous = (kinds[a] in CONTINUOUS, kinds[b] in CONTINUOUS)
        if all(continuous):
            res = correlation_similarity(
                (floats[a][0], floats[b][0]), (floats[a][1], floats[b][1]), correlation_threshold
            )
            counted = correlation_threshold <= 0 or abs(res["real"]) > correlation_threshold
            pairs.append(
                {
                    "columns": [a, b],
                    "metric": "CorrelationSimilarity",
                    "score": _nan_to_none(res["score"]),
                    "real": _nan_to_none(res["real"]),
                    "synth": _nan_to_none(res["synth"]),
                    "association": None,
                    "counted": counted,
                }
            )
        else:
            (ra, sa, ca), (rb, sb, cb) = coded[a], coded[b]
            res = contingency_similarity((ra, rb), (sa, sb), (ca, cb), association_threshold)
            counted = association_threshold <= 0 or res["association"] > association_threshold
            pairs.append(
                {
                    "columns": [a, b],
                    "metric": "ContingencySimilarity",
                    "score": _nan_to_none(res["score"]),
                    "real": None,
                    "synth": None,
                    "association": _nan_to_none(res["association"]),
                    "counted": counted,
                }
            )

    shape_scores = [c["score"] for c in columns if c["score"] is not None]
    pair_scores = [p["score"] for p in pairs if p["counted"] and p["score"] is not None]
    shapes = float(np.mean(shape_scores)) if shape_scores else None
    trends = float(np.mean(pair_scores)) if pair_scores else None
    parts = [x for x in (shapes, trends) if x is not None]
    return {
        "score": float(np.mean(parts)) if parts else None,
        "column_shapes": shapes,
        "column_pair_trends": trends,
        "pairs_counted": len(pair_scores),
        "pairs_total": len(pairs),
        "correlation_threshold": correlation_threshold,
        "association_threshold": association_threshold,
        "columns": columns,
        "pairs": pairs,
    }
