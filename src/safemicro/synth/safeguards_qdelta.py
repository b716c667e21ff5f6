"""Q_δ: REaLTabFormer's test of whether synthetic records sit closer to the training records
than fresh real records do, its bootstrap null and threshold, and the release check."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from safemicro.errors import SafemicroError
from safemicro.methods.base import rng_for
from safemicro.synth.safeguards_common import Frame, _check_columns, _frame
from safemicro.synth.safeguards_dcr import _kinds, _Space

FRAC = 0.165  # REaLTabFormer's bootstrap sample fraction (k = frac·N synthetic stand-ins)
MULTIPLE = 4  # |O| = MULTIPLE·k
MAX_K = 10_000  # REaLTabFormer's frac_max_data
BLOCK = 4_000_000  # distance-matrix entries computed at a time
FULL_MATRIX = 5_000  # training sets up to this size keep their whole distance matrix


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
        raise SafemicroError(
            f"{n} training records are too few for the Q_δ bootstrap (it needs {multiple + 2} disjoint shares)"
        )
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


def q_delta_threshold(
    train: Frame, *, n_boot: int = 100, frac: float = FRAC, quantile: float = 0.95, seed: int | None = None, **kw: Any
) -> float:
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
