"""Exact linkage: candidates agree on every shared column, missing values are wildcards.

Vectorised on the key codes: one join per pair of missing-value patterns.
"""

from __future__ import annotations

import numpy as np

from safemicro.attack.record_linkage.encoding import LinkOutcome, _Encoded
from safemicro.keys import project_codes as _project


def _pattern(codes: np.ndarray) -> np.ndarray:
    """Missing-value pattern of each row as a bit mask (bit j set: column j missing)."""
    m = codes.shape[1]
    return ((codes == 0) * (1 << np.arange(m, dtype=np.int64))).sum(axis=1)


def _compatible_rows(enc: _Encoded, truth: np.ndarray) -> np.ndarray:
    """Auxiliary rows whose true released record agrees with them wherever both are observed."""
    ok = np.zeros(len(truth), dtype=bool)
    has = truth >= 0
    a = enc.a_codes[has]
    r = enc.r_codes[truth[has]]
    ok[has] = ((a == 0) | (r == 0) | (a == r)).all(axis=1)
    return ok


def _exact(enc: _Encoded, truth: np.ndarray) -> LinkOutcome:
    n_a = len(enc.a_codes)
    m = enc.a_codes.shape[1]
    count = np.zeros(n_a, dtype=np.float64)
    claimed = np.full(n_a, -1, dtype=np.int64)
    pat_r, pat_a = _pattern(enc.r_codes), _pattern(enc.a_codes)
    rows_r = {int(p): np.flatnonzero(pat_r == p) for p in np.unique(pat_r)}
    rows_a = {int(p): np.flatnonzero(pat_a == p) for p in np.unique(pat_a)}
    bits = np.arange(m)
    for pa, ia in rows_a.items():
        for pr, ir in rows_r.items():
            both = bits[(((pa | pr) >> bits) & 1) == 0]
            proj_r = _project(enc.r_codes[ir], both, enc.cards)
            proj_a = _project(enc.a_codes[ia], both, enc.cards)
            uniq, first, cnt = np.unique(proj_r, return_index=True, return_counts=True)
            pos = np.minimum(np.searchsorted(uniq, proj_a), len(uniq) - 1)
            hit = uniq[pos] == proj_a
            count[ia] += np.where(hit, cnt[pos], 0)
            take = hit & (claimed[ia] < 0)
            claimed[ia[take]] = ir[first[pos[take]]]
    true_in = _compatible_rows(enc, truth)
    with np.errstate(divide="ignore"):
        conf = np.where(count > 0, 1.0 / count, 0.0)
    return LinkOutcome("exact", count, count.copy(), conf, true_in & (count > 0), truth >= 0, claimed)
