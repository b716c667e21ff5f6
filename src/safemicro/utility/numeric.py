"""Information loss on continuous variables (sdcMicro's ``dUtility`` measures and more).

Every function takes the original and the released values of the same records in the same
order, as a vector (one variable) or an (n, p) matrix, with NaN for missing values. Cells
missing on either side carry no information about the loss and are left out.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from safemicro.errors import SafemicroError
from safemicro.risk.numeric import interval_disclosure

__all__ = [
    "QUANTILE_PROBS",
    "correlation_max_diff",
    "eigen",
    "il1",
    "il1s",
    "numeric_loss",
    "quantiles",
]

QUANTILE_PROBS = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


def _pair(x, x_released) -> tuple[np.ndarray, np.ndarray]:
    try:
        a = np.asarray(x, dtype=np.float64)
        b = np.asarray(x_released, dtype=np.float64)
    except (TypeError, ValueError):
        raise SafemicroError("information loss needs numeric values") from None
    a = a.reshape(-1, 1) if a.ndim == 1 else a
    b = b.reshape(-1, 1) if b.ndim == 1 else b
    if a.ndim != 2 or a.shape != b.shape:
        raise SafemicroError(f"original and released values must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def _finite_sum(terms: np.ndarray) -> float:
    return float(terms[np.isfinite(terms)].sum())


def il1s(x, x_released) -> float:
    """Σ_ij |x_ij − x'_ij| / (sd_j·√2), sd of the original (n−1): a sum, as sdcMicro's IL1s.

    Columns without spread in the original (sd 0) contribute nothing.
    """
    a, b = _pair(x, x_released)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fewer than 2 observed values: sd NaN
        sd = np.nanstd(a, axis=0, ddof=1)
        return _finite_sum(np.abs(a - b) / (sd * math.sqrt(2.0)))


def il1(x, x_released) -> float:
    """Σ_ij 100·|x_ij − x'_ij| / |x_ij|, cells with an original 0 left out (sdcMicro's IL1)."""
    a, b = _pair(x, x_released)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _finite_sum(100.0 * np.abs(a - b) / np.abs(a))


def _complete(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = ~(np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1))
    return a[ok], b[ok]


def _correlations(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Correlation matrices of complete records (None: not defined)."""
    if len(a) < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        ca = np.atleast_2d(np.corrcoef(a, rowvar=False))
        cb = np.atleast_2d(np.corrcoef(b, rowvar=False))
    if not (np.isfinite(ca).all() and np.isfinite(cb).all()):
        return None  # a constant column
    return ca, cb


def _eigen(corr: tuple[np.ndarray, np.ndarray] | None) -> float:
    if corr is None:
        return math.nan
    la = np.sort(np.linalg.eigvalsh(corr[0]))[::-1]
    lb = np.sort(np.linalg.eigvalsh(corr[1]))[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(np.abs(la - lb) / la))


def _max_diff(corr: tuple[np.ndarray, np.ndarray] | None) -> float:
    return math.nan if corr is None else float(np.max(np.abs(corr[0] - corr[1])))


def eigen(x, x_released) -> float:
    """Σ_j |λ_j − λ'_j| / λ_j over the eigenvalues (largest first) of the correlation matrices.

    Computed on the records complete on both sides; NaN when a correlation is undefined
    (a constant column, fewer than 2 complete records).
    """
    return _eigen(_correlations(*_complete(*_pair(x, x_released))))


def correlation_max_diff(x, x_released) -> float:
    """Largest absolute change of a pairwise correlation (NaN when undefined)."""
    return _max_diff(_correlations(*_complete(*_pair(x, x_released))))


def quantiles(x, probs=QUANTILE_PROBS) -> list[float | None]:
    """Quantiles of the observed values (None when nothing is observed)."""
    v = np.asarray(x, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return [None] * len(probs)
    return [float(q) for q in np.quantile(v, probs)]


def numeric_loss(x, x_released, *, k: float = 0.05) -> dict[str, float | None]:
    """All record-level measures at once: IL1, IL1s, eigen, interval disclosure, correlations.

    ``interval_disclosure`` is sdcMicro's dRisk (share of records whose original values all
    lie within released ± k·sd), computed on the records complete on both sides.
    """
    a, b = _pair(x, x_released)
    ca, cb = _complete(a, b)
    corr = _correlations(ca, cb)
    out = {
        "il1": il1(a, b),
        "il1s": il1s(a, b),
        "eigen": _eigen(corr),
        "interval_disclosure": interval_disclosure(ca, cb, k=k) if len(ca) else math.nan,
        "correlation_max_diff": _max_diff(corr),
        "records_used": int(len(ca)),
    }
    return {key: (None if isinstance(v, float) and not math.isfinite(v) else v) for key, v in out.items()}
