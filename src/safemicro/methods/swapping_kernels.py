"""The vectorised parts of targeted record swapping: household risk per geographic level,
weighted selection of households within areas, and donor matching.

Everything works on one row per household (``h`` households); the callers in
:mod:`safemicro.methods.swapping` broadcast back to records.
"""

from __future__ import annotations

import numpy as np

from safemicro.keys import combine_codes, dense_ids

__all__ = ["area_ids", "level_risk", "priority_keys", "select_in_areas", "allocate", "match_donors"]

# Rounds of donor matching per similarity profile before a sampled household is reported
# as having no donor. Each round widens the window of candidate donors (doubling), so the
# last rounds consider every remaining household of the profile.
MATCH_ROUNDS = 24


def area_ids(level_codes: list[np.ndarray], cards: list[int]) -> list[np.ndarray]:
    """Dense area ids per level: level ``l`` is the combination of hierarchy levels 0..l,
    so an area is nested in its parent (block 3 of camp 1 differs from block 3 of camp 2)."""
    out = []
    for level in range(len(level_codes)):
        combined, space = combine_codes(level_codes[: level + 1], cards[: level + 1])
        out.append(dense_ids(combined, space)[0])
    return out


def level_risk(
    area: np.ndarray, risk_codes: np.ndarray, household: np.ndarray, n_households: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per household at one level: the sampling weight ``max over members of 1/count`` and
    whether a member's count is below ``k`` (risky).

    ``count`` is the number of records in the member's area sharing its values of the risk
    variables (sdcMicro ``recordSwap``: ``r_{i,h} = 1/counts``, ``p_{y,h} = max_i r_{i,h}``;
    a household is risky when ``counts < k_anonymity``). ``risk_codes`` is one combined
    code per record (all zero without risk variables: the count is the area's size).
    """
    combined, space = combine_codes([area, risk_codes], [int(area.max(initial=0)), int(risk_codes.max(initial=0))])
    cell, _ = dense_ids(combined, space)
    count = np.bincount(cell)[cell]
    prob = np.zeros(n_households)
    np.maximum.at(prob, household, 1.0 / count)
    smallest = np.full(n_households, np.iinfo(np.int64).max)
    np.minimum.at(smallest, household, count)
    return prob, (smallest < k) if k > 0 else np.zeros(n_households, dtype=bool)


def priority_keys(weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Efraimidis–Spirakis keys ``log(u)/w``: taking the largest keys is weighted sampling
    without replacement with probabilities proportional to ``w``."""
    u = rng.random(len(weight))
    with np.errstate(divide="ignore"):
        return np.log(np.maximum(u, np.finfo(float).tiny)) / np.maximum(weight, 1e-300)


def select_in_areas(area: np.ndarray, eligible: np.ndarray, keys: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Mask of the ``need[a]`` eligible households of largest key in every area ``a``."""
    rows = np.flatnonzero(eligible)
    order = rows[np.lexsort((-keys[rows], area[rows]))]
    a = area[order]
    start = np.searchsorted(a, a, side="left")
    rank = np.arange(len(order)) - start
    chosen = np.zeros(len(area), dtype=bool)
    chosen[order[rank < need[a]]] = True
    return chosen


def allocate(share: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integers summing to ``total`` in proportion to ``share`` (random systematic rounding:
    each part is the floor or the ceiling of its exact share)."""
    share = np.asarray(share, dtype=np.float64)
    if total <= 0 or share.sum() <= 0:
        return np.zeros(len(share), dtype=np.int64)
    cum = np.concatenate([[0.0], np.cumsum(share / share.sum() * total)])
    points = rng.random() + np.arange(total)
    return np.diff(np.searchsorted(points, cum, side="left")).astype(np.int64)


def match_donors(
    samplers: np.ndarray,
    candidates: np.ndarray,
    area: np.ndarray,
    profile: np.ndarray,
    keys: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Pair each sampled household with a donor of the same similarity ``profile`` in
    another ``area``, donors drawn by largest priority ``keys`` (weighted sampling).

    Returns ``(sampler, donor)`` arrays of the pairs made; a sampler left out has no
    donor. Each round pairs the i-th unmatched sampler of a profile with the candidate at
    position ``(i + shift) mod W`` among the profile's remaining candidates in key order,
    ``W`` a window of at least twice the samplers (doubling every round) and ``shift``
    random; pairs in the same area are refused and retried in the next round.
    """
    s = samplers[np.lexsort((rng.random(len(samplers)), profile[samplers]))]
    c = candidates[np.lexsort((-keys[candidates], profile[candidates]))]
    out_s, out_d = [], []
    for r in range(MATCH_ROUNDS):
        if not len(s) or not len(c):
            break
        ps, pc = profile[s], profile[c]
        profiles = np.union1d(ps, pc)
        m = np.searchsorted(ps, profiles, side="right") - np.searchsorted(ps, profiles, side="left")
        c_start = np.searchsorted(pc, profiles, side="left")
        n_c = np.searchsorted(pc, profiles, side="right") - c_start
        window = np.minimum(n_c, np.maximum(m, 1) * (2 << r))
        shift = (rng.random(len(profiles)) * np.maximum(window, 1)).astype(np.int64)
        p = np.searchsorted(profiles, ps)
        rank = np.arange(len(s)) - np.searchsorted(ps, ps, side="left")
        ok = rank < window[p]
        pos = c_start[p] + (rank + shift[p]) % np.maximum(window[p], 1)
        ok &= area[c[np.where(ok, pos, 0)]] != area[s]
        out_s.append(s[ok])
        out_d.append(c[pos[ok]])
        taken = np.zeros(len(c), dtype=bool)
        taken[pos[ok]] = True
        s, c = s[~ok], c[~taken]
    if not out_s:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(out_s), np.concatenate(out_d)
