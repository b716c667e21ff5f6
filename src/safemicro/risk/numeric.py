"""Risk for continuous key variables: outliers and interval / linkage disclosure.

Continuous keys (income, expenditure, assistance amounts) make records identifiable through
extreme values, and after perturbation through values that stay close to the original.
"""

from __future__ import annotations

import numpy as np


def outliers(x: np.ndarray, *, cutoff: float = 3.5) -> np.ndarray:
    """Robust univariate outliers: modified z-score 0.6745·|x - median| / MAD above ``cutoff``.

    Iglewicz & Hoaglin's rule; when the MAD is 0 (more than half the values equal), values
    outside 1.5 IQR beyond the quartiles are flagged instead, and with a zero IQR any value
    different from the median. Missing values are never outliers.
    """
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    flags = np.zeros(len(x), dtype=bool)
    if not ok.any():
        return flags
    v = x[ok]
    med = np.median(v)
    mad = np.median(np.abs(v - med))
    if mad > 0:
        flags[ok] = 0.6745 * np.abs(v - med) / mad > cutoff
        return flags
    q1, q3 = np.percentile(v, [25, 75])
    iqr = q3 - q1
    flags[ok] = (v < q1 - 1.5 * iqr) | (v > q3 + 1.5 * iqr) if iqr > 0 else v != med
    return flags


def _matrix(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(-1, 1) if a.ndim == 1 else a


def interval_disclosure(original, masked, *, k: float = 0.05) -> float:
    """Share of records whose original values all lie within masked ± k·sd(masked).

    sdcMicro's ``dRisk``: the sd is taken per column of the masked data (n-1 divisor).
    On unperturbed data it is 1: every record is disclosed.
    """
    x, xm = _matrix(original), _matrix(masked)
    sd = np.nanstd(xm, axis=0, ddof=1)
    inside = np.abs(x - xm) <= k * sd
    return float(np.mean(np.all(inside, axis=1)))


def linkage_disclosure(original, masked) -> float:
    """Share of masked records whose nearest original record (standardised distance) is itself.

    Distance-based record linkage as an intruder holding the original values would do it.
    Columns are scaled by the original's standard deviation; rows with missing values are
    left out. Ties count as a correct link only if the own record is among the nearest.
    """
    x, xm = _matrix(original), _matrix(masked)
    ok = ~(np.isnan(x).any(axis=1) | np.isnan(xm).any(axis=1))
    from scipy.spatial import cKDTree  # imported here: scipy is heavy to load

    x, xm = x[ok], xm[ok]
    if len(x) == 0:
        return 0.0
    sd = x.std(axis=0, ddof=1)
    sd[~(sd > 0)] = 1.0
    tree = cKDTree(x / sd)
    own = np.sqrt((((xm - x) / sd) ** 2).sum(axis=1))
    nearest, _ = tree.query(xm / sd, k=1)
    return float(np.mean(own <= nearest + 1e-12 * np.maximum(1.0, nearest)))
