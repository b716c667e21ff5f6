"""Copy safeguards for synthetic data: replicated uniques, distance to closest record, Q_δ.

A synthesizer must not hand back real records. Three checks, all deterministic given a seed:

* **Replicated uniques** (:func:`replicated_uniques`): synthetic records equal to a training
  record on the key variables where that key combination is unique in the training data.
  Such a record re-creates a unique (and so identifiable) person; the synthesizer drops or
  resamples it (:func:`drop_replicated_uniques`).
* **Distance to closest record** (DCR, :func:`nearest_distances`): records are embedded as
  REaLTabFormer does — categoricals one-hot (missing is a category), numerics standard-scaled
  on the original data with missing values at the column mean, and a TruncatedSVD (exact,
  uncentred, fitted on the original) to max(5, ⌈√d⌉) components when the encoding is 20 or
  more columns wide — and compared with the L1 distance (SciPy ``cKDTree``).
* **Q_δ** (:func:`q_delta`): REaLTabFormer's test of whether synthetic records sit closer to
  the training records than fresh real records do, with a bootstrap threshold
  (:func:`q_delta_threshold`) from real rows standing in for the synthetic ones, and the
  release check :func:`q_delta_check` that draws equal-sized samples for both.

Exact-match rates (:func:`exact_match_rates`) complete the picture: synthetic rows equal to a
training row, against the natural rate of holdout rows equal to a training row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import combine_codes, dense_ids, encode_column
from safemicro.methods.base import rng_for
from safemicro.utility.tables import common_dtypes

__all__ = [
    "encode_together",
    "replicated_uniques",
    "drop_replicated_uniques",
    "exact_match_rates",
    "distance_kinds",
    "nearest_distances",
    "q_delta",
    "q_delta_null",
    "q_delta_threshold",
    "q_delta_check",
]

SVD_MIN_WIDTH = 20  # REaLTabFormer's max_col_nums: reduce the encoding from this width on
FRAC = 0.165  # REaLTabFormer's bootstrap sample fraction (k = frac·N synthetic stand-ins)
MULTIPLE = 4  # |O| = MULTIPLE·k
MAX_K = 10_000  # REaLTabFormer's frac_max_data
BLOCK = 4_000_000  # distance-matrix entries computed at a time
FULL_MATRIX = 5_000  # training sets up to this size keep their whole distance matrix


Frame = pl.DataFrame | Dataset


def _frame(data: Frame) -> pl.DataFrame:
    return data.frame if isinstance(data, Dataset) else data


def _check_columns(columns: Sequence[str], **frames: pl.DataFrame) -> None:
    for what, frame in frames.items():
        for name in columns:
            if name not in frame.columns:
                raise SafemicroError(f"the {what} data has no such column", column=name)


# -- shared encoding of several frames ------------------------------------------------------



def encode_together(parts: list[pl.Series]) -> tuple[list[np.ndarray], int]:
    """Codes 1..card of one column taken from several frames (0 = missing), one code space."""
    aligned = common_dtypes(parts)
    codes, card = encode_column(pl.concat([p.rename("v") for p in aligned]))
    return np.split(codes, np.cumsum([len(p) for p in parts])[:-1]), card


def _joint_row_ids(frames: list[pl.DataFrame], columns: Sequence[str]) -> list[np.ndarray]:
    """One integer per row and frame: equal ids ⇔ equal values on ``columns`` (missing = missing)."""
    sizes = [f.height for f in frames]
    codes, cards = [], []
    for name in columns:
        parts, card = encode_together([f.get_column(name) for f in frames])
        codes.append(np.concatenate(parts))
        cards.append(card)
    combined, space = combine_codes(codes, cards)
    ids, _ = dense_ids(combined, space)
    return np.split(ids, np.cumsum(sizes)[:-1])


# -- replicated uniques -----------------------------------------------------------------------


def replicated_uniques(train: Frame, synth: Frame, keys: Sequence[str]) -> np.ndarray:
    """Boolean mask over the synthetic rows: equal on ``keys`` to a training record whose key
    combination is unique in the training data.

    Values are compared exactly (a missing value equals a missing value), after both frames
    are encoded together so that 1 and 1.0 match.
    """
    train, synth = _frame(train), _frame(synth)
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise SafemicroError("replicated uniques need at least one key variable")
    _check_columns(keys, training=train, synthetic=synth)
    t_ids, s_ids = _joint_row_ids([train, synth], keys)
    space = int(max(t_ids.max(initial=-1), s_ids.max(initial=-1))) + 1
    train_count = np.bincount(t_ids, minlength=space)
    return train_count[s_ids] == 1


def drop_replicated_uniques(train: Frame, synth: Frame, keys: Sequence[str]) -> Frame:
    """The synthetic data without its replicated uniques (a Dataset stays a Dataset)."""
    mask = replicated_uniques(train, synth, keys)
    if isinstance(synth, Dataset):
        from safemicro.methods.base import take_rows

        return take_rows(synth, np.flatnonzero(~mask))
    return synth.filter(pl.Series(~mask))


# -- exact matches ------------------------------------------------------------------------------


def exact_match_rates(
    synth: Frame, train: Frame, holdout: Frame | None = None, *, columns: Sequence[str] | None = None
) -> dict[str, float | int | None]:
    """Shares of records that repeat another file's record exactly on every column.

    * ``synth_in_train``: synthetic rows equal to some training row;
    * ``holdout_in_train``: the natural rate — holdout rows equal to some training row;
    * ``synth_in_holdout``: synthetic rows equal to some holdout row;
    * ``unique_exact_match``: training records unique in the training data that appear in
      the synthetic data (SDNist's "unique exact match" share), and
      ``holdout_unique_exact_match`` the same for the holdout as a reference.
    Missing values match missing values. Rates are None when a file is absent or empty.
    """
    synth, train = _frame(synth), _frame(train)
    hold = None if holdout is None else _frame(holdout)
    columns = list(columns) if columns is not None else train.columns
    frames = {"training": train, "synthetic": synth}
    if hold is not None:
        frames["holdout"] = hold
    _check_columns(columns, **frames)
    ids = _joint_row_ids(list(frames.values()), columns)
    t_ids, s_ids = ids[0], ids[1]
    h_ids = ids[2] if hold is not None else None
    space = int(max(i.max(initial=-1) for i in ids)) + 1
    t_count = np.bincount(t_ids, minlength=space)
    s_count = np.bincount(s_ids, minlength=space)
    unique = t_count == 1

    def share(mask: np.ndarray) -> float | None:
        return float(mask.mean()) if len(mask) else None

    out: dict[str, float | int | None] = {
        "synth_in_train": share(t_count[s_ids] > 0),
        "train_uniques": int(unique.sum()),
        "unique_exact_match": float((unique & (s_count > 0)).sum() / unique.sum()) if unique.any() else None,
        "holdout_in_train": None,
        "synth_in_holdout": None,
        "holdout_unique_exact_match": None,
    }
    if h_ids is not None:
        h_count = np.bincount(h_ids, minlength=space)
        out["holdout_in_train"] = share(t_count[h_ids] > 0)
        out["synth_in_holdout"] = share(h_count[s_ids] > 0)
        if unique.any():
            out["holdout_unique_exact_match"] = float((unique & (h_count > 0)).sum() / unique.sum())
    return out


# -- distance to closest record -------------------------------------------------------------------


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


def nearest_distances(
    reference: Frame, *queries: Frame, kinds: Mapping[str, str] | None = None
) -> list[np.ndarray]:
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


# -- Q_δ -------------------------------------------------------------------------------------------


def _q_delta(d_os, d_oh, d_so, d_ho, delta: float, m: int) -> float:
    """Q_δ from the four nearest-distance vectors (O→S, O→H, S→O, H→O)."""
    keep = ~((d_os == 0) & (d_oh == 0))  # natural duplicates present in both samples
    d_s = np.sort(np.concatenate([d_os[keep], d_so]))
    d_h = np.concatenate([d_oh[keep], d_ho])
    if len(d_s) == 0 or len(d_h) == 0:
        return math.nan
    qs = np.linspace(0.0, delta, m)
    cut = np.quantile(d_h, qs)
    share = np.searchsorted(d_s, cut, side="right") / len(d_s)
    return float(np.mean(share - qs))


def _cross_min(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest L1 distances both ways between the rows of ``a`` and ``b`` (a→b, b→a).

    One distance matrix serves both directions; it is built in blocks of rows of ``a``.
    """
    if len(a) == 0 or len(b) == 0:
        return np.full(len(a), np.inf), np.full(len(b), np.inf)
    a_min = np.empty(len(a))
    b_min = np.full(len(b), np.inf)
    step = max(1, BLOCK // len(b))
    for i in range(0, len(a), step):
        d = cdist(a[i : i + step], b, "cityblock")
        a_min[i : i + step] = d.min(axis=1)
        np.minimum(b_min, d.min(axis=0), out=b_min)
    return a_min, b_min


def _q_delta_space(space: _Space, o, s, h, delta: float, m: int) -> float:
    eo, es, eh = space.embed(o, [o, s, h])
    d_os, d_so = _cross_min(eo, es)
    d_oh, d_ho = _cross_min(eo, eh)
    return _q_delta(d_os, d_oh, d_so, d_ho, delta, m)


class _TrainDistances:
    """Distances among the training rows in one embedding (fitted once on all of them).

    Small training sets keep the whole distance matrix, so a bootstrap draw only indexes it.
    """

    def __init__(self, emb: np.ndarray) -> None:
        self.emb = emb
        self.full = cdist(emb, emb, "cityblock").astype(np.float32) if len(emb) <= FULL_MATRIX else None

    def cross_min(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.full is None:
            return _cross_min(self.emb[a], self.emb[b])
        d = self.full[np.ix_(a, b)]
        return d.min(axis=1).astype(np.float64), d.min(axis=0).astype(np.float64)

    def q_delta(self, o, s, h, delta: float, m: int) -> float:
        d_os, d_so = self.cross_min(o, s)
        d_oh, d_ho = self.cross_min(o, h)
        return _q_delta(d_os, d_oh, d_so, d_ho, delta, m)


def _check_delta(delta: float, m: int) -> None:
    if not 0 < delta <= 1:
        raise SafemicroError(f"delta must lie in (0, 1], got {delta}")
    if m < 2:
        raise SafemicroError(f"m must be at least 2, got {m}")


def q_delta(
    original: Frame,
    synthetic: Frame,
    holdout: Frame,
    delta: float = 0.05,
    m: int = 100,
    *,
    kinds: Mapping[str, str] | None = None,
) -> float:
    """REaLTabFormer's Q_δ: how much closer synthetic records sit to the original than fresh ones.

    With d(·,·) the embedded L1 distance, pool d_S = [min_s d(o,s) for o∈O] + [min_o d(s,o)
    for s∈S] and d_H likewise with the holdout H, dropping the o with both minima 0; then
    Q_δ = mean over q in linspace(0, δ, m) of (share of d_S ≤ quantile_q(d_H)) − q.
    About 0 when S is as far from O as fresh data, > 0 when S copies O.
    """
    _check_delta(delta, m)
    o, s, h = _frame(original), _frame(synthetic), _frame(holdout)
    kinds = _kinds(o, kinds)
    _check_columns(list(kinds), original=o, synthetic=s, holdout=h)
    space = _Space([o, s, h], kinds)
    return _q_delta_space(space, space.rows(0), space.rows(1), space.rows(2), delta, m)


def _k(n: int, frac: float, k: int | None, multiple: int) -> int:
    if k is None:
        k = min(int(frac * n), MAX_K)
    k = min(int(k), n // (multiple + 2))
    if k < 1:
        raise SafemicroError(f"{n} training records are too few for the Q_δ bootstrap "
                             f"(it needs {multiple + 2} disjoint shares)")
    return k


def _draw(rng: np.random.Generator, n: int, k: int, multiple: int):
    perm = rng.permutation(n)
    parts = perm[: multiple * k], perm[multiple * k : (multiple + 1) * k], perm[(multiple + 1) * k : (multiple + 2) * k]
    return tuple(np.sort(p) for p in parts)  # sorted rows: faster gathers, same distances


def _null(dist: _TrainDistances, k: int, multiple: int, n_boot: int, rng, delta: float, m: int) -> np.ndarray:
    n = len(dist.emb)
    return np.array([dist.q_delta(*_draw(rng, n, k, multiple), delta, m) for _ in range(n_boot)])


def q_delta_null(
    train: Frame,
    *,
    n_boot: int = 100,
    frac: float = FRAC,
    k: int | None = None,
    multiple: int = MULTIPLE,
    delta: float = 0.05,
    m: int = 100,
    seed: int | None = None,
    kinds: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Q_δ with real rows standing in for the synthetic ones, ``n_boot`` times.

    Each round draws three disjoint sets from the training data: O (``multiple``·k rows),
    S* and H (k rows each), k = ``frac``·N (or ``k``), capped so the sets fit. The embedding
    is fitted once on all training rows (REaLTabFormer refits it on each O; the difference
    is sampling noise, and fitting once lets the draws share one distance matrix).
    REaLTabFormer runs 500 rounds; 100 (the default here) keep it to a second or two.
    """
    _check_delta(delta, m)
    t = _frame(train)
    kinds = _kinds(t, kinds)
    _check_columns(list(kinds), training=t)
    k = _k(t.height, frac, k, multiple)
    rng, _ = rng_for(seed)
    space = _Space([t], kinds)
    emb = space.embed(space.rows(0), [space.rows(0)])[0]
    return _null(_TrainDistances(emb), k, multiple, n_boot, rng, delta, m)


def q_delta_threshold(train: Frame, *, n_boot: int = 100, frac: float = FRAC, quantile: float = 0.95,
                      seed: int | None = None, **kw: Any) -> float:
    """τ: the ``quantile`` (95 %) of the bootstrap null of Q_δ (:func:`q_delta_null`)."""
    return float(np.quantile(q_delta_null(train, n_boot=n_boot, frac=frac, seed=seed, **kw), quantile))


def q_delta_check(
    train: Frame,
    synth: Frame,
    holdout: Frame | None = None,
    *,
    rounds: int = 5,
    n_boot: int = 100,
    max_k: int = 1000,
    multiple: int = MULTIPLE,
    delta: float = 0.05,
    m: int = 100,
    quantile: float = 0.95,
    seed: int | None = None,
    kinds: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Q_δ release check: mean Q_δ over ``rounds`` draws against its bootstrap threshold.

    Every draw takes k synthetic rows, k holdout rows (or, without a holdout, k training rows
    outside O, as REaLTabFormer's critic does) and O = ``multiple``·k training rows, with
    k = min(|S|, |H|, N/(multiple+2), ``max_k``) so that the bootstrap null (real training
    rows standing in for the synthetic ones, same sizes, same embedding fitted on the training
    data) is comparable; ``max_k`` bounds the cost of a round on large files.
    ``passed`` is True when the mean Q_δ is at most the threshold.
    """
    _check_delta(delta, m)
    t, s = _frame(train), _frame(synth)
    h = None if holdout is None else _frame(holdout)
    kinds = _kinds(t, kinds)
    frames = {"training": t, "synthetic": s} | ({} if h is None else {"holdout": h})
    _check_columns(list(kinds), **frames)
    limit = min(s.height, t.height // (multiple + 2), max_k)
    if h is not None:
        limit = min(limit, h.height)
    k = _k(t.height, 1.0, limit, multiple)
    rng, seed = rng_for(seed)
    space = _Space(list(frames.values()), kinds)
    embedded = space.embed(space.rows(0), [space.rows(i) for i in range(len(frames))])
    e_t, e_s = embedded[0], embedded[1]
    dist = _TrainDistances(e_t)
    values = []
    for _ in range(rounds):
        o, _s, h_rows = _draw(rng, t.height, k, multiple)
        eo = e_t[o]
        es = e_s[rng.choice(s.height, k, replace=False)]
        eh = e_t[h_rows] if h is None else embedded[2][rng.choice(h.height, k, replace=False)]
        d_os, d_so = _cross_min(eo, es)
        d_oh, d_ho = dist.cross_min(o, h_rows) if h is None else _cross_min(eo, eh)
        values.append(_q_delta(d_os, d_oh, d_so, d_ho, delta, m))
    null = _null(dist, k, multiple, n_boot, rng, delta, m)
    value = float(np.nanmean(values))
    threshold = float(np.quantile(null, quantile))
    return {
        "q_delta": value,
        "rounds": [float(v) for v in values],
        "threshold": threshold,
        "passed": bool(value <= threshold),
        "null_mean": float(null.mean()),
        "null": [float(v) for v in null],
        "k": k,
        "n_original": multiple * k,
        "n_boot": n_boot,
        "delta": delta,
        "m": m,
        "holdout": "holdout records" if h is not None else "training records outside O",
        "seed": seed,
    }
