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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.evaluate.utility_kmarginal import NIST_CRC, k_marginal
from safemicro.evaluate.utility_quality import ASSOCIATION_THRESHOLD as ASSOCIATION_THRESHOLD
from safemicro.evaluate.utility_quality import (
    CONTINUOUS,
    _floats,
    contingency_similarity,
    correlation_similarity,
    cramers_v,
    ks_complement,
    quality,
    tv_complement,
)
from safemicro.evaluate.utility_quality import CORRELATION_THRESHOLD as CORRELATION_THRESHOLD
from safemicro.evaluate.utility_quality import KS_DECIMALS as KS_DECIMALS
from safemicro.evaluate.utility_quality import PAIR_BINS as PAIR_BINS
from safemicro.methods.base import rng_for
from safemicro.synth.safeguards import encode_together

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
        tree = DecisionTreeClassifier(
            max_depth=max_depth, min_samples_leaf=min_leaf, random_state=int(rng.integers(2**31))
        )
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
        y_tr, y_sy, y_te = np.split(
            _joint([f.get_column(target) for f in frames]), np.cumsum([f.height for f in frames])[:-1]
        )
        ok = [y > 0 for y in (y_tr, y_sy, y_te)]
    else:
        y_tr, y_sy, y_te = (_floats(f.get_column(target)) for f in frames)
        ok = [~np.isnan(y) for y in (y_tr, y_sy, y_te)]
    out: dict[str, Any] = {
        "target": target,
        "kind": "classification" if kind == "categorical" else "regression",
        "n_train": int(ok[0].sum()),
        "n_synth": int(ok[1].sum()),
        "n_test": int(ok[2].sum()),
    }
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
            scores[side] = {
                "accuracy": float(accuracy_score(yt, pred)),
                "macro_f1": float(f1_score(yt, pred, average="macro", zero_division=0)),
            }
        else:
            scores[side] = {"r2": float(r2_score(yt, pred))}
    if kind == "categorical":
        out["baseline_accuracy"] = float(np.mean(yt == np.bincount(y_tr[ok[0]]).argmax()))
    out["train_real"], out["train_synthetic"] = scores["real"], scores["synthetic"]
    return out
