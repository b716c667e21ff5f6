"""Re-identification risk of records: individual, global, household (sdcMicro definitions).

Individual risk follows Benedetti & Franconi (1998) as sdcMicro's ``measure_risk`` computes
it ("approx" method); global risk is the expected number of re-identifications; household
risk is the probability that at least one member of the household is re-identified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def individual_risk(fk: np.ndarray, Fk: np.ndarray, *, weighted: bool = True) -> np.ndarray:
    """Risk per key from its sample frequency ``fk`` and weighted frequency ``Fk``.

    Unweighted: 1/fk. Weighted, with pk = fk/Fk:
    fk = 1: pk/(1-pk)·log(1/pk); fk = 2: pk/(1-pk) - (pk/(1-pk))²·log(1/pk);
    fk > 2: pk/(fk - (1-pk)); other (fractional) fk: 0. Where fk == Fk the risk is 1/fk.
    Where Fk < fk the weights cannot be inverse inclusion probabilities (normalised
    weights, say) and the estimate is undefined; those keys get the sample risk 1/fk.
    """
    fk = np.asarray(fk, dtype=np.float64)
    Fk = np.asarray(Fk, dtype=np.float64)
    if not weighted:
        return 1.0 / fk
    with np.errstate(divide="ignore", invalid="ignore"):
        pk = fk / Fk
        odds = pk / (1.0 - pk)
        log_inv = np.log(1.0 / pk)
        risk = np.select(
            [fk == 1, fk == 2, fk > 2],
            [odds * log_inv, odds - odds**2 * log_inv, pk / (fk - (1.0 - pk))],
            default=0.0,
        )
        risk = np.where((fk == Fk) | (Fk < fk), 1.0 / fk, risk)
    return risk


@dataclass(frozen=True)
class GlobalRisk:
    mean: float
    expected_reidentifications: float
    percent: float


def global_risk(record_risk: np.ndarray) -> GlobalRisk:
    """Expected re-identifications (sum of record risks), its mean and percentage."""
    er = float(np.sum(record_risk))
    n = len(record_risk)
    mean = er / n if n else 0.0
    return GlobalRisk(mean=mean, expected_reidentifications=er, percent=100.0 * mean)


def record_threshold(risk: np.ndarray, max_global_risk: float = 0.01, counts: np.ndarray | None = None) -> float | None:
    """Individual-risk threshold that brings the file to ``max_global_risk``.

    With record risks sorted in decreasing order r(1) >= r(2) >= ..., the threshold is the
    first r(j) such that capping the j-1 records above it at r(j) leaves an expected number
    of re-identifications of at most ``max_global_risk · n``:
    (j-1)·r(j) + Σ_{i>=j} r(i) <= target. ``None`` when the file already meets the target.

    ``risk`` may be given per key with ``counts`` records each: the left side is constant
    among records of equal risk, so the first qualifying record always starts a key.
    """
    r = np.asarray(risk, dtype=np.float64)
    c = np.ones(len(r)) if counts is None else np.asarray(counts, dtype=np.float64)
    order = np.argsort(-r, kind="stable")
    r, c = r[order], c[order]
    n = c.sum()
    target = max_global_risk * n
    contribution = r * c
    if len(r) == 0 or contribution.sum() <= target:
        return None
    above = np.cumsum(c) - c  # records strictly before each key
    tail = np.cumsum(contribution[::-1])[::-1]
    ok = above * r + tail <= target
    if not ok.any():
        return None
    return float(r[np.argmax(ok)])


def household_risk(record_risk: np.ndarray, household_ids: np.ndarray) -> np.ndarray:
    """Per record: 1 - Π(1 - r_j) over the members j of the record's household.

    ``household_ids`` are dense integer ids 0..H-1 (see :func:`safemicro.keys.dense_ids`).
    """
    with np.errstate(divide="ignore"):
        log_keep = np.log1p(-np.asarray(record_risk, dtype=np.float64))
    per_household = np.bincount(household_ids, weights=log_keep)
    return -np.expm1(per_household)[household_ids]


def k_anonymity_violations(record_fk: np.ndarray, ks=(2, 3, 5), counts: np.ndarray | None = None) -> dict[int, int]:
    """Number of records whose key is shared by fewer than k records, for each k.

    ``record_fk`` may be given per key with ``counts`` records each (the key table)."""
    fk = np.asarray(record_fk)
    if counts is None:
        return {int(k): int(np.count_nonzero(fk < k)) for k in ks}
    return {int(k): int(np.asarray(counts)[fk < k].sum()) for k in ks}


def weighted_median(values: np.ndarray, counts: np.ndarray | None = None) -> float:
    """``np.median`` of ``values`` each repeated ``counts`` times, without repeating them:
    the middle record (the mean of the two middle ones when their number is even)."""
    v = np.asarray(values, dtype=np.float64)
    if counts is None:
        return float(np.median(v))
    order = np.argsort(v, kind="stable")
    v = v[order]
    cum = np.cumsum(np.rint(np.asarray(counts, dtype=np.float64)[order]).astype(np.int64))
    n = int(cum[-1])
    middle = v[np.searchsorted(cum, [(n - 1) // 2, n // 2], side="right")]
    return float(middle[0]) if n % 2 else float(np.mean(middle))


def risky_records(record_risk: np.ndarray, *, floor: float = 0.1, counts: np.ndarray | None = None) -> np.ndarray:
    """sdcMicro's "risky records" rule: r > median(r) + 2·MAD(r) and r > floor.

    MAD is the normal-consistent median absolute deviation (×1.4826), as R's ``mad``.
    ``record_risk`` may be given per key with ``counts`` records each; the answer is then per key.
    """
    r = np.asarray(record_risk, dtype=np.float64)
    if len(r) == 0:
        return np.zeros(0, dtype=bool)
    med = weighted_median(r, counts)
    mad = 1.4826 * weighted_median(np.abs(r - med), counts)
    return (r > med + 2 * mad) & (r > floor)


RISK_EDGES = np.geomspace(1e-6, 1.0, 6 * 8 + 1)  # 8 bins per decade: comparable before/after


def risk_histogram(risk: np.ndarray, counts: np.ndarray | None = None) -> dict[str, list]:
    """Counts of individual risks on fixed log bins (1e-6 ... 1; lower risks in the first bin),
    so distributions before and after anonymization can be overlaid. ``risk`` may be given
    per key with ``counts`` records each."""
    x = np.asarray(risk, dtype=np.float64)
    finite = np.isfinite(x)
    x = np.clip(x[finite], RISK_EDGES[0], RISK_EDGES[-1])
    weights = None if counts is None else np.asarray(counts, dtype=np.float64)[finite]
    hist, _ = np.histogram(x, bins=RISK_EDGES, weights=weights)
    return {"edges": [float(e) for e in RISK_EDGES], "counts": [int(round(c)) for c in hist]}
