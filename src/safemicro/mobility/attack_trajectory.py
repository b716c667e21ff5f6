"""Trajectory recovery from aggregate presence counts (Xu et al. 2017, simplified): test T-M7.

Scenario: an attacker holds every released presence table of one period (per time step,
the number of subscribers in each admin3 unit; suppressed cells unknown) and the public
geography (unit centroids), nothing about any individual. Following "Trajectory Recovery
From Ash" (Xu, Tu, Li, Zhang, Fu, Jin, WWW 2017), the attacker expands each step's counts
into one slot per subscriber and links consecutive steps by an assignment problem (Hungarian
method, :func:`scipy.optimize.linear_sum_assignment`): trajectory j is linked to a slot in
unit u at cost ``d(last_j, u) + d(modal_j, u)``, the great-circle distance from where j was
last seen (the paper's night-time / speed continuity) plus the distance from the unit j
visited most so far (the paper's across-day regularity, which it scores by information gain;
a distance is our simplification). Slots with no coordinates (``none``: not seen that step,
and ``?``: the subscribers whose cell was suppressed) cost ``gap_km`` from or to any unit.

Score (:func:`recovery`): the recovered trajectories are anonymous, so they are compared
with the true per-subscriber unit sequences as multisets (a true sequence is recovered as
often as it occurs among the recovered ones). Reported over all subscribers and over the
*individual* sequences, those shared by fewer than ``threshold`` subscribers: a sequence
that 500 residents share is what any released table says; one held by 1..15 is what the
threshold exists to hide. :func:`chance` is the same score for random linking (each step's
slots assigned by a random permutation): what the counts alone give.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment

R_KM = 6371.0088
UNKNOWN = "?"


def distances(units: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    """Unit pcodes and their centroid haversine distances (km) from ``units.csv`` columns
    admin3, lon_min, lon_max, lat_min, lat_max."""
    u = units.sort("admin3")
    lon = np.radians((u["lon_min"] + u["lon_max"]).to_numpy() / 2)
    lat = np.radians((u["lat_min"] + u["lat_max"]).to_numpy() / 2)
    a = (
        np.sin((lat[:, None] - lat[None]) / 2) ** 2
        + np.cos(lat[:, None]) * np.cos(lat[None]) * np.sin((lon[:, None] - lon[None]) / 2) ** 2
    )
    return u["admin3"].to_list(), 2 * R_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _slots(counts: dict[str, int], n: int, index: dict[str, int]) -> np.ndarray:
    """One unit index per subscriber of a step; the unaccounted rest in ``?``."""
    labels = [index[k] for k, v in sorted(counts.items()) for _ in range(int(v))]
    if len(labels) > n:
        raise ValueError(f"a step counts {len(labels)} subscribers out of {n}")
    return np.array(labels + [index[UNKNOWN]] * (n - len(labels)), dtype=np.int64)


def _rank(keys: np.ndarray) -> np.ndarray:
    """Each element's rank among the equal keys (stable order)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    ranks = np.empty_like(order)
    ranks[order] = np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
    return ranks


def _assign(stay: np.ndarray, slots: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Slot index of each trajectory (``cost``: trajectory x label). Trajectories staying
    put (``stay`` = the unit where last and modal agree, else -1) take a slot of that unit
    at zero cost first (optimal when the costs obey the triangle inequality); the rest are
    assigned by the Hungarian method."""
    n_labels = cost.shape[1]
    quota = np.minimum(np.bincount(stay[stay >= 0], minlength=n_labels), np.bincount(slots, minlength=n_labels))
    t_rank, s_rank = _rank(stay), _rank(slots)
    t_pre = (stay >= 0) & (t_rank < quota[np.maximum(stay, 0)])
    s_pre = s_rank < quota[slots]
    chosen = np.empty(len(slots), dtype=np.int64)
    # both sides hold quota[u] items of each unit u: sorted by (unit, rank) they pair up
    t_idx, s_idx = np.flatnonzero(t_pre), np.flatnonzero(s_pre)
    t_idx = t_idx[np.lexsort((t_rank[t_idx], stay[t_idx]))]
    s_idx = s_idx[np.lexsort((s_rank[s_idx], slots[s_idx]))]
    chosen[t_idx] = s_idx
    rest_t, rest_s = np.flatnonzero(~t_pre), np.flatnonzero(~s_pre)
    if len(rest_t):
        _, col = linear_sum_assignment(cost[rest_t][:, slots[rest_s]])
        chosen[rest_t] = rest_s[col]
    return chosen


def link(
    steps: list[dict[str, int]],
    n: int,
    pcodes: list[str],
    dist_km: np.ndarray,
    *,
    gap_km: float = 50.0,
    rng: np.random.Generator | None = None,
) -> list[tuple[str, ...]]:
    """The attacker's ``n`` trajectories from per-step counts ``{unit: subscribers}``.

    With ``rng`` the steps are linked by random permutations instead (the chance baseline).
    """
    labels = sorted({k for s in steps for k in s} | {UNKNOWN})
    index = {k: i for i, k in enumerate(labels)}
    geo = {p: i for i, p in enumerate(pcodes)}
    # cost between labels: distance between units, gap_km to or from a non-unit label
    where = np.array([geo.get(k, -1) for k in labels])
    known = where >= 0
    cost = np.full((len(labels), len(labels)), gap_km)
    cost[np.ix_(known, known)] = dist_km[np.ix_(where[known], where[known])]
    np.fill_diagonal(cost, 0.0)
    path = np.empty((n, len(steps)), dtype=np.int64)
    path[:, 0] = _slots(steps[0], n, index)
    visits = np.zeros((n, len(labels)), dtype=np.int64)
    visits[np.arange(n), path[:, 0]] += 1
    last = path[:, 0].copy()
    for t in range(1, len(steps)):
        slots = _slots(steps[t], n, index)
        if rng is not None:
            chosen = rng.permutation(n)
        else:
            geo_visits = np.where(known[None], visits, -1)
            modal = np.where(geo_visits.max(1) > 0, geo_visits.argmax(1), last)
            chosen = _assign(np.where(last == modal, last, -1), slots, cost[last] + cost[modal])
        path[:, t] = slots[chosen]
        visits[np.arange(n), path[:, t]] += 1
        last = np.where(known[path[:, t]], path[:, t], last)
    return [tuple(labels[i] for i in row) for row in path]


def recovery(
    true: list[tuple[str, ...]], recovered: list[tuple[str, ...]], threshold: int = 16, span: int | None = None
) -> dict:
    """Share of true sequences recovered (multiset match), overall and for the individual
    sequences (shared by fewer than ``threshold`` subscribers). With ``span``, the sequences
    are the runs of ``span`` consecutive steps, matched start by start."""
    steps = len(true[0]) if true else 0
    span = steps if span is None else span
    frames = []
    for start in range(steps - span + 1):
        cut = slice(start, start + span)
        t = pl.DataFrame({"seq": ["|".join(s[cut]) for s in true]}).group_by("seq").len("n_true")
        r = pl.DataFrame({"seq": ["|".join(s[cut]) for s in recovered]}).group_by("seq").len("n_rec")
        frames.append(t.join(r, on="seq", how="left"))
    m = pl.concat(frames).with_columns(
        hit=pl.min_horizontal("n_true", pl.col("n_rec").fill_null(0)), small=pl.col("n_true") < threshold
    )
    small = m.filter("small")
    n_small = int(small["n_true"].sum())
    return {
        "subscribers": len(true),
        "steps": steps,
        "span": span,
        "recovered": float(m["hit"].sum() / m["n_true"].sum()),
        "individual_sequences": n_small,
        "individual_recovered": float(small["hit"].sum() / n_small) if n_small else 0.0,
    }


def chance(
    true: list[tuple[str, ...]],
    steps: list[dict[str, int]],
    pcodes: list[str],
    dist_km: np.ndarray,
    *,
    repeats: int = 5,
    seed: int = 0,
    threshold: int = 16,
    span: int | None = None,
) -> dict:
    """:func:`recovery` of random linking, averaged over ``repeats`` draws."""
    rng = np.random.default_rng(seed)
    runs = [recovery(true, link(steps, len(true), pcodes, dist_km, rng=rng), threshold, span) for _ in range(repeats)]
    return {k: (float(np.mean([r[k] for r in runs])) if isinstance(v, float) else v) for k, v in runs[0].items()}


def counts_from_columns(table: pl.DataFrame, columns: list[str]) -> list[dict[str, int]]:
    """The unprotected per-step counts of a per-subscriber table (the baseline's input)."""
    return [dict(table.group_by(c).len().iter_rows()) for c in columns]


def sequences(table: pl.DataFrame, columns: list[str]) -> list[tuple[str, ...]]:
    """The true per-subscriber sequences over ``columns``."""
    return list(table.select(columns).iter_rows())
