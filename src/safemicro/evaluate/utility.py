"""Utility of synthetic data: how closely it reproduces the real distributions and models.

* :func:`quality` — sdmetrics' QualityReport, re-implemented from its definitions so our
  number is comparable with theirs: *column shapes* (KSComplement for numbers and dates,
  TVComplement for categoricals) and *column pair trends* (CorrelationSimilarity between two
  numbers, ContingencySimilarity otherwise, a number binned into 10 equal-width bins),
  each pair counted only when the real data shows a relation (|Pearson r| > 0.5,
  Cramér's V > 0.3, the QualityReport defaults); overall = mean of the two.
* :func:`pmse` — propensity-score mean squared error of a classifier telling real from
  synthetic rows, and its ratio to the value expected when both come from one distribution.
* :func:`k_marginal` — the NIST CRC (SDNist 2.4) k-marginal score.
* :func:`tstr` — train on synthetic, test on real, against train on real.

Every function takes Polars frames of *analysis series* (see :mod:`.columns`) and a dict of
column kinds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.keys import dense_ids
from safemicro.methods.base import rng_for
from safemicro.synth.safeguards import encode_together
from safemicro.utility.tables import JointCodes, joint_codes

__all__ = [
    "ks_complement",
    "tv_complement",
    "correlation_similarity",
    "contingency_similarity",
    "cramers_v",
    "quality",
    "pmse",
    "k_marginal",
    "NIST_CRC",
    "tstr",
]

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
            res = correlation_similarity((floats[a][0], floats[b][0]), (floats[a][1], floats[b][1]),
                                         correlation_threshold)
            counted = correlation_threshold <= 0 or abs(res["real"]) > correlation_threshold
            pairs.append({"columns": [a, b], "metric": "CorrelationSimilarity",
                          "score": _nan_to_none(res["score"]), "real": _nan_to_none(res["real"]),
                          "synth": _nan_to_none(res["synth"]), "association": None, "counted": counted})
        else:
            (ra, sa, ca), (rb, sb, cb) = coded[a], coded[b]
            res = contingency_similarity((ra, rb), (sa, sb), (ca, cb), association_threshold)
            counted = association_threshold <= 0 or res["association"] > association_threshold
            pairs.append({"columns": [a, b], "metric": "ContingencySimilarity",
                          "score": _nan_to_none(res["score"]), "real": None, "synth": None,
                          "association": _nan_to_none(res["association"]), "counted": counted})

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


# -- features for the classifiers ------------------------------------------------------------


def _features(frames: Sequence[pl.DataFrame], kinds: Mapping[str, str], columns: Sequence[str]):
    """One float matrix per frame (codes shared by all frames for categoricals, NaN for a
    missing number) and the mask of categorical features."""
    sizes = [f.height for f in frames]
    cols, categorical = [], []
    for name in columns:
        parts = [f.get_column(name) for f in frames]
        if kinds[name] in CONTINUOUS:
            cols.append(np.concatenate([_floats(p) for p in parts]))
            categorical.append(False)
        else:
            codes = _joint(parts)
            cols.append(codes.astype(np.float64))
            categorical.append(True)
    x = np.column_stack(cols) if cols else np.zeros((sum(sizes), 0))
    return np.split(x, np.cumsum(sizes)[:-1]), np.array(categorical, dtype=bool)


def _joint(parts: Sequence[pl.Series]) -> np.ndarray:
    """Codes 0..card of one column across several frames (0 = missing), in one code space."""
    return np.concatenate(encode_together(list(parts))[0])


# -- propensity score ------------------------------------------------------------------------


def _pmse_value(p: np.ndarray, c: float) -> float:
    return float(np.mean((p - c) ** 2))


def pmse(
    real: pl.DataFrame,
    synth: pl.DataFrame,
    kinds: Mapping[str, str],
    *,
    n_perm: int = 10,
    max_depth: int = 6,
    min_leaf: int = 20,
    seed: int | None = None,
) -> dict[str, Any]:
    """Propensity-score mean squared error (Woo et al. 2009; Snoke et al. 2018).

    A classification tree (depth ≤ ``max_depth``, leaves of at least ``min_leaf`` rows, so
    it sees interactions as well as single columns) predicts, for the stacked real and
    synthetic rows, the probability p that a row is synthetic; pMSE = mean (p − c)², with c
    the share of synthetic rows: 0 when the tree cannot tell the two apart, c(1 − c) (0.25
    for equal sizes) when it always can. ``null`` is its expectation when both come from one
    distribution — the mean pMSE over ``n_perm`` refits with the labels permuted (synthpop's
    method for trees) — and ``ratio`` = pMSE / null is about 1 for good synthetic data. Well
    below 1, the synthetic records follow the training sample more closely than an
    independent sample would (usual for synthesizers that resample it; with a Q_δ signal,
    a sign of copying).
    """
    from sklearn.tree import DecisionTreeClassifier

    names = [n for n in real.columns if kinds.get(n) in (*CONTINUOUS, "categorical")]
    (xr, xs), _ = _features([real, synth], kinds, names)  # categories enter as their codes
    x = np.vstack([xr, xs])
    y = np.r_[np.zeros(len(xr)), np.ones(len(xs))]
    c = len(xs) / len(y)
    rng, seed = rng_for(seed)
    out: dict[str, Any] = {"method": "cart", "n_real": len(xr), "n_synth": len(xs), "seed": seed}
    if len(xr) == 0 or len(xs) == 0 or x.shape[1] == 0:
        return out | {"pmse": None, "null": None, "ratio": None}

    def fit(labels: np.ndarray) -> float:
        tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=min_leaf,
                                      random_state=int(rng.integers(2**31)))
        return _pmse_value(tree.fit(x, labels).predict_proba(x)[:, 1], c)

    value = fit(y)
    nulls = np.array([fit(rng.permutation(y)) for _ in range(n_perm)])
    null = float(nulls.mean())
    return out | {
        "pmse": value,
        "null": null,
        "ratio": value / null if null > 0 else None,
        "standardized": (value - null) / float(nulls.std(ddof=1)) if n_perm > 1 and nulls.std() > 0 else None,
        "n_perm": n_perm,
        "max_depth": max_depth,
        "min_leaf": min_leaf,
    }


# -- NIST CRC k-marginal ------------------------------------------------------------------------


def _percentile_bins(real: np.ndarray, synth: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """SDNist 2.4's binning of a number: real values by percentile rank, bin = ⌊n_bins·rank/n⌋
    (average rank of ties; the top value in the last bin); synthetic values into the real bin
    whose largest value is the first at least as large, above the last but one into the last.
    Missing values get bin −1."""
    r_ok, s_ok = ~np.isnan(real), ~np.isnan(synth)
    r_bins = np.full(len(real), -1, dtype=np.int64)
    s_bins = np.full(len(synth), -1, dtype=np.int64)
    values = real[r_ok]
    if len(values) == 0:
        return r_bins, s_bins
    from scipy.stats import rankdata

    pct = rankdata(values, method="average") / len(values)
    b = np.where(pct < 1, np.floor(n_bins * pct), n_bins - 1).astype(np.int64)
    r_bins[r_ok] = b
    labels = np.unique(b)
    upper = np.array([values[b == lab].max() for lab in labels])  # one per bin, not per record
    pos = np.searchsorted(upper[:-1], synth[s_ok], side="left")
    s_bins[s_ok] = labels[pos]
    return r_bins, s_bins


def _nist_density_edges(top: float = 52864.7) -> list[float]:
    """SDNist 2.4's DENSITY bins: 20 log-spaced bins from 10 to max + 500, the lowest eight
    replaced by [0, 150]."""
    logs = np.logspace(1.0, math.log10(top + 500), 21)
    return [0.0, 150.0, *map(float, logs[8:])]


NIST_CRC = {"group": "PUMA", "exclude": ("INDP",), "edges": {"DENSITY": _nist_density_edges()}}


def k_marginal(
    real: pl.DataFrame,
    synth: pl.DataFrame,
    kinds: Mapping[str, str],
    *,
    group: str | None = None,
    exclude: Sequence[str] = (),
    n_bins: int = 20,
    edges: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any]:
    """The NIST CRC k-marginal score as SDNist 2.4 computes it (our own code).

    Numbers with more than ``n_bins`` distinct values are binned by their percentile rank in
    the real data (:func:`_percentile_bins`), or into the intervals (e_i, e_i+1] of
    ``edges[column]`` when given (values beyond them go to the end bins); other columns are
    taken as they are, missing as a category. For every pair of columns (all pairs, ``group`` and ``exclude`` left out)
    the real and synthetic shares of the cells of the (group ×) pair table are compared:
    score = 1000 · (1 − mean over pairs of TVD), TVD = ½·Σ|real share − synthetic share|.
    With ``group`` (SDNist: PUMA) the marginals are 3-way and ``groups`` gives each group's
    score, its TVD capped at the group's real share and scaled by it, as SDNist does.
    SDNist reports ``int(score)``; for NIST CRC data pass ``**NIST_CRC`` (PUMA groups, INDP
    left out, DENSITY on SDNist's log scale).
    """
    for name in [group, *exclude]:
        if name is not None and name not in real.columns:
            raise SafemicroError("the real data has no such column", column=name)
    names = [n for n in real.columns if n != group and n not in exclude and kinds.get(n) != "id"]
    cols: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    binned = []
    for name in names + ([group] if group else []):
        r, s = real.get_column(name), synth.get_column(name)
        fr = _floats(r) if kinds.get(name) in CONTINUOUS else None
        if fr is not None and edges and name in edges:
            cuts = np.asarray(edges[name], dtype=np.float64)
            r, s = (pl.Series(np.clip(np.searchsorted(cuts, x, side="left") - 1, 0, len(cuts) - 2))
                    .set(pl.Series(np.isnan(x)), None) for x in (fr, _floats(s)))
            binned.append(name)
        elif fr is not None and len(np.unique(fr[~np.isnan(fr)])) > n_bins:
            rb, sb = _percentile_bins(fr, _floats(s), n_bins)
            r, s = pl.Series(rb), pl.Series(sb)
            binned.append(name)
        (cr, cs), card = encode_together([r, s])
        cols[name] = (cr, cs, card)
    if group:
        gr, gs, gcard = cols[group]
    else:
        gr, gs, gcard = np.zeros(real.height, np.int64), np.zeros(synth.height, np.int64), 0
    pairs = list(combinations(names, 2)) if len(names) > 1 else [(names[0], names[0])] if names else []
    if not pairs or real.height == 0 or synth.height == 0:
        return {"score": None, "pairs": len(pairs), "group": group, "groups": None}
    n_groups = gcard + 1
    g_real = np.bincount(gr, minlength=n_groups) / real.height
    total, group_sum = 0.0, np.zeros(n_groups)
    for a, b in pairs:
        (ra, sa, ca), (rb, sb, cb) = cols[a], cols[b]
        cell_r = (gr * (ca + 1) + ra) * (cb + 1) + rb
        cell_s = (gs * (ca + 1) + sa) * (cb + 1) + sb
        ids, _ = dense_ids(np.concatenate([cell_r, cell_s]), n_groups * (ca + 1) * (cb + 1))
        size = int(ids.max()) + 1
        tr = np.bincount(ids[: len(cell_r)], minlength=size) / real.height
        ts = np.bincount(ids[len(cell_r) :], minlength=size) / synth.height
        diff = np.abs(tr - ts)
        total += diff.sum()
        if group:
            cell_group = np.zeros(size, np.int64)
            cell_group[ids] = np.concatenate([gr, gs])
            group_sum += np.minimum(np.bincount(cell_group, weights=diff, minlength=n_groups), g_real)
    mean = total / len(pairs)
    out: dict[str, Any] = {"score": float((2 - mean) * 500), "pairs": len(pairs), "group": group,
                           "groups": None, "binned": binned}
    if group:
        present, first = np.unique(gr, return_index=True)  # groups of the real data
        labels = real.get_column(group).cast(pl.String).gather(first).to_list()
        out["groups"] = {str(lab): float((1 - group_sum[g] / g_real[g] / len(pairs)) * 1000)
                         for g, lab in zip(present, labels)}
    return out


# -- train on synthetic, test on real ---------------------------------------------------------------


def tstr(
    train: pl.DataFrame,
    synth: pl.DataFrame,
    test: pl.DataFrame,
    kinds: Mapping[str, str],
    target: str,
    *,
    seed: int | None = None,
) -> dict[str, Any]:
    """Train a gradient-boosted model on the synthetic data and on the real training data,
    and score both on the real ``test`` data.

    A categorical target gives accuracy and macro-F1 with the majority-class accuracy as the
    floor; a numeric one R² (0 = predicting the training mean). Rows with a missing target
    are left out; every other column (ids aside) is a predictor, missing values included.
    The models run on one thread: the same result on any machine, and no OpenMP spinning
    on a busy one.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import accuracy_score, f1_score, r2_score
    from threadpoolctl import threadpool_limits

    if target not in train.columns:
        raise SafemicroError("the target is not a column of the data", column=target)
    kind = kinds.get(target)
    if kind not in (*CONTINUOUS, "categorical"):
        raise SafemicroError(f"the target must be categorical or numeric, this one is {kind}", column=target)
    _, seed = rng_for(seed)
    predictors = [n for n in train.columns if n != target and kinds.get(n) in (*CONTINUOUS, "categorical")]
    frames = [train, synth, test]
    (x_tr, x_sy, x_te), categorical = _features(frames, kinds, predictors)
    stacked = np.vstack([x_tr, x_sy, x_te])
    # constant and all-missing columns predict nothing (and the boosting cannot bin them)
    lo = np.fmin.reduce(stacked, axis=0, initial=np.inf)
    hi = np.fmax.reduce(stacked, axis=0, initial=-np.inf)
    varies = hi > lo
    x_tr, x_sy, x_te = x_tr[:, varies], x_sy[:, varies], x_te[:, varies]
    # the boosting takes at most 255 categories per column; more stay ordered codes
    categorical = categorical[varies] & (stacked[:, varies].max(axis=0, initial=0) < 250)
    if kind == "categorical":
        y_tr, y_sy, y_te = np.split(_joint([f.get_column(target) for f in frames]),
                                    np.cumsum([f.height for f in frames])[:-1])
        ok = [y > 0 for y in (y_tr, y_sy, y_te)]
    else:
        y_tr, y_sy, y_te = (_floats(f.get_column(target)) for f in frames)
        ok = [~np.isnan(y) for y in (y_tr, y_sy, y_te)]
    out: dict[str, Any] = {"target": target, "kind": "classification" if kind == "categorical" else "regression",
                           "n_train": int(ok[0].sum()), "n_synth": int(ok[1].sum()), "n_test": int(ok[2].sum())}
    if min(out["n_train"], out["n_synth"], out["n_test"]) == 0:
        return out | {"note": "a side has no rows with the target observed"}
    model = HistGradientBoostingClassifier if kind == "categorical" else HistGradientBoostingRegressor
    cat = categorical if categorical.any() else None
    yt = y_te[ok[2]]
    scores = {}
    for side, x, y, keep in (("real", x_tr, y_tr, ok[0]), ("synthetic", x_sy, y_sy, ok[1])):
        if len(np.unique(y[keep])) < 2:
            pred = np.full(len(yt), y[keep][0])
        else:
            with threadpool_limits(1):
                fitted = model(categorical_features=cat, random_state=seed).fit(x[keep], y[keep])
                pred = fitted.predict(x_te[ok[2]])
        if kind == "categorical":
            scores[side] = {"accuracy": float(accuracy_score(yt, pred)),
                            "macro_f1": float(f1_score(yt, pred, average="macro", zero_division=0))}
        else:
            scores[side] = {"r2": float(r2_score(yt, pred))}
    if kind == "categorical":
        out["baseline_accuracy"] = float(np.mean(yt == np.bincount(y_tr[ok[0]]).argmax()))
    out["train_real"], out["train_synthetic"] = scores["real"], scores["synthetic"]
    return out
