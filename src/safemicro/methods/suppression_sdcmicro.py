"""Local suppression as sdcMicro 5.8.1's ``localSuppression`` does it, cell for cell.

Same default importance, the same data reduction, the same record order, distance and
candidate rule (definitions in ``SDCMICRO_SEMANTICS.md``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from safemicro.errors import SafemicroError
from safemicro.methods.suppression_input import (
    _EPS,
    Importance,
    _group,
    _Input,
    _masked,
    _record_fk,
    _spread,
)


def _importance_ranks(importance: Importance, keys: list[str], codes: np.ndarray) -> np.ndarray:
    """sdcMicro importance ranks (1 = most important = suppressed last).

    Default: fewest distinct observed values first, ties in column order. A list gives the
    order (unlisted keys after, in column order); a dict ranks by decreasing weight
    (unlisted keys weigh 1, as in :func:`_importance_costs`).
    """
    m = len(keys)
    if importance is None:
        distinct = np.array([len(np.unique(c[c != 0])) for c in codes.T])
        order = np.lexsort((np.arange(m), distinct))
    elif isinstance(importance, Mapping):
        weight = np.array([float(importance.get(k, 1.0)) for k in keys])
        order = np.lexsort((np.arange(m), -weight))
    else:
        listed = [keys.index(k) for k in importance]
        order = np.array(listed + [j for j in range(m) if j not in listed])
    ranks = np.empty(m, dtype=np.int64)
    ranks[order] = np.arange(1, m + 1)
    return ranks


def _sdcmicro_masks(codes: np.ndarray, k: int, alpha: float, ranks: np.ndarray) -> np.ndarray:
    """Suppression masks per record as sdcMicro 5.8.1's localSuppression sets them.

    Works on the reduced data (the first k records of each group of identical keys, with
    missing values filled by the column's first value for the grouping only); passes over
    the records with fk < k in order of increasing fk, suppressing for each the most
    expendable variable in which a nearest record (smallest positive distance) differs.
    """
    n, m = codes.shape
    filled = np.where(codes == 0, codes[0], codes)
    gid, _ = _group(filled)
    order = np.argsort(gid, kind="stable")
    g = gid[order]
    start = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    rank_in_group = np.arange(n) - np.repeat(start, np.diff(np.r_[start, n]))
    kept = np.sort(order[rank_in_group < k])
    x = codes[kept].copy()
    var_order = np.argsort(-ranks, kind="stable")  # largest importance number first
    while True:
        fk, _ = _record_fk(x, np.ones(len(x)), alpha)
        problems = np.flatnonzero(fk < k - _EPS)
        if len(problems) == 0:
            break
        problems = problems[np.argsort(fk[problems], kind="stable")]
        for i in problems:
            xi = x[i]
            differ = (x != xi) & (x != 0) & (xi != 0)
            dist = differ.sum(axis=1)
            positive = dist[dist > 0]
            if len(positive):
                allowed = differ[dist == positive.min()].any(axis=0)
            else:  # every record is compatible: any observed value of i
                allowed = xi != 0
            pick = [j for j in var_order if allowed[j]]
            if not pick:
                raise SafemicroError(
                    f"record cannot reach k={k}: all its key values are already missing "
                    f"and the data has too few records (sdcMicro would loop forever here)",
                    row=int(kept[i]) + 1,
                )
            x[i, pick[0]] = 0
    suppressed = (x == 0) & (codes[kept] != 0)
    masks = np.zeros(n, dtype=np.int64)
    masks[kept] = suppressed @ (np.int64(1) << np.arange(m, dtype=np.int64))
    return masks


def _sdcmicro(inp: _Input, k: int, alpha: float, ranks: np.ndarray) -> np.ndarray:
    masks = _sdcmicro_masks(inp.codes, k, alpha, ranks)
    while inp.household_bits:
        spread = _spread(masks, inp)
        if np.array_equal(spread, masks):
            break
        masks = spread | _sdcmicro_masks(_masked(inp.codes, spread), k, alpha, ranks)
    return masks
