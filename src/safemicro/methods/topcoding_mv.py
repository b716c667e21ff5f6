"""Multivariate top coding (sdcMicro ``mvTopCoding``): outliers pulled onto the tolerance ellipsoid.

Univariate top coding misses a record that is ordinary on each variable and rare in the
combination. Here the robust centre c and covariance S (MCD, scikit-learn ``MinCovDet``)
define squared distances d² = (x − c)ᵀ S⁻¹ (x − c); every record with d² above
q = χ²(p) quantile ``alpha`` is moved along the ray from c to itself onto the ellipsoid
d² = q: x' = c + (x − c)·√(q / d²). Records inside it, and records with a missing value,
are left as they are. Definition: sdcMicro's ``mvTopCoding`` documentation (Templ 2017).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import Field

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods.base import Change, MethodResult, calls, numeric_matrix, register
from safemicro.methods.numeric_step import NumericVariablesParams
from safemicro.risk.numeric_robust import robust_distances

_STEP = "mv_topcoding"


def mv_top_code(ds: Dataset, *, variables: list[str], alpha: float = 0.99, seed: int = 0) -> MethodResult:
    """Project the multivariate outliers of ``variables`` onto the ``alpha`` tolerance ellipsoid.

    ``seed`` fixes the MCD's random subsets (the result is then reproducible).
    """
    from scipy.stats import chi2

    if not 0.0 < alpha < 1.0:
        raise SafemicroError(f"alpha must lie strictly between 0 and 1, got {alpha}", step=_STEP)
    x = numeric_matrix(ds, variables, _STEP)
    try:
        center, _, d2 = robust_distances(x, seed=seed)
    except ValueError as e:
        raise SafemicroError(f"mv_topcoding: {e}", column=", ".join(variables), step=_STEP) from None
    q = float(chi2.ppf(alpha, len(variables)))
    hit = np.nan_to_num(d2, nan=-1.0) > q
    new = x.copy()
    new[hit] = center + (x[hit] - center) * np.sqrt(q / d2[hit])[:, None]
    cols, retyped = [], []
    for j, name in enumerate(variables):
        col = ds.frame.get_column(name)
        values = pl.Series(name, new[:, j])
        cols.append(
            pl.select(pl.when(pl.Series(hit)).then(values).otherwise(col.cast(pl.Float64))).to_series().alias(name)
        )
        if col.dtype != pl.Float64 and hit.any():
            retyped.append(name)
    out = ds.with_frame(ds.frame.with_columns(cols if hit.any() else []))
    notes = (
        [f"{', '.join(retyped)}: stored as Float64 (values on the ellipsoid are not whole numbers)"] if retyped else []
    )
    change = Change.measured(
        ds.frame,
        out.frame,
        variables,
        method=_STEP,
        params={"variables": variables, "alpha": alpha},
        seed=seed,
        details={"n_coded": int(hit.sum()), "chi2_quantile": q, "center": [float(c) for c in center]},
        notes=notes,
    )
    return MethodResult(out, change)


class MvTopCodingParams(NumericVariablesParams):
    """Pull multivariate outliers (robust MCD distance) onto the tolerance ellipsoid (sdcMicro mvTopCoding); variables default to the numeric keys."""

    alpha: float = Field(0.99, gt=0.0, lt=1.0, description="χ² quantile of the ellipsoid (sdcMicro maxAlpha)")
    seed: int | None = None


def _describe(params: MvTopCodingParams, change: Change) -> str:
    n = change.details.get("n_coded", 0)
    names = ", ".join(change.params["variables"])
    if not n:
        return (
            f"No record of {names} lay outside the {change.params['alpha']:g} tolerance ellipsoid; nothing was changed."
        )
    return (
        f"{n} records whose combination of {names} was a multivariate outlier (robust Mahalanobis distance) "
        f"were pulled towards the centre onto the {change.params['alpha']:g} tolerance ellipsoid; "
        "other records are unchanged."
    )


register(_STEP, MvTopCodingParams, _describe)(calls(mv_top_code))
