"""The robust grouping of ``microaggregation(method="rmd")`` and weighted group means.

**rmd** (sdcMicro's recommended method: "MDAV with multivariate distances based on robust
methods"; Templ & Meindl 2008, *Robust statistics meets SDC*, PSD 2008; Templ 2017, §5).
safemicro's reading of that definition, exactly:

1. a robust centre c and scatter S of the complete records: the MCD
   (:func:`safemicro.risk.numeric_robust.robust_distances`, seeded). When the MCD cannot be
   fitted (too few records, or a singular scatter because most records share a value, as
   with incomes that are mostly 0), c = the coordinate-wise median and S = diag(s²) with
   s = 1.4826·MAD (the standard deviation where the MAD is 0, 1 where that is 0 too); the
   change record says which (``robust_fit``);
2. every distance is the robust Mahalanobis distance d²(x, y) = (x − y)ᵀ S⁻¹ (x − y),
   computed as the squared Euclidean distance of the whitened records z = (x − c)·S^(−1/2)
   (rounded to float32 like the MDAV kernel's);
3. MDAV with the robust centre in place of the moving centroid: while at least 2k records
   remain, r = the remaining record farthest from c (first in row order on ties) and its
   group = r and its k − 1 nearest remaining records (higher row first on ties); s = the
   remaining record farthest from r, found before r's group leaves, gets its group the same
   way (only r's group once fewer than 3k remain); the last < 2k records form one group.

Outliers are therefore grouped first, with each other and with the records nearest to them
in the robust metric, and the scatter that defines "near" is not inflated by them.
Records missing some variables then join groups as they do with MDAV (nearest centroid on
the variables they have), and with strata each stratum gets its own robust fit.

**Weighted means** (sdcMicro's ``weights``: "a weighted version of the aggregation measure,
e.g. the weighted mean"): groups are formed as without weights; each value becomes
Σ_g w·x / Σ_g w over the members g of its group observed on that variable. Weighted totals
and weighted means of every aggregated variable are then kept exactly (Σ w·x' = Σ w·x).
"""

from __future__ import annotations

import numpy as np

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods.aggregation_kernels import _jit
from safemicro.methods.base import numeric_matrix

__all__ = ["robust_whitening", "rmd_groups", "sampling_weights", "weighted_group_means"]


def robust_whitening(x: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """The whitened complete rows z = (x − c)·S^(−1/2) and which robust fit gave c and S."""
    from safemicro.risk.numeric_robust import robust_distances

    try:
        center, cov, _ = robust_distances(x, seed=seed)
        fit = "mcd"
    except ValueError:
        center = np.median(x, axis=0)
        mad = 1.4826 * np.median(np.abs(x - center), axis=0)
        sd = x.std(axis=0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1])
        scale = np.where(mad > 0, mad, np.where(sd > 0, sd, 1.0))
        cov = np.diag(scale**2)
        fit = "median/mad"
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    inv_root = (vecs / np.sqrt(np.clip(vals, 1e-300, None))) @ vecs.T
    return np.ascontiguousarray((x - center) @ inv_root), fit


def rmd_groups(x: np.ndarray, k: int, seed: int, leaf: int) -> tuple[np.ndarray, np.ndarray, str]:
    """rmd on complete rows ``x``: positions in group-formation order, group sizes, the fit."""
    z, fit = robust_whitening(x, seed)
    d = np.zeros(len(z))
    for j in range(z.shape[1]):  # float32 distances to the centre, as the kernel rounds its own
        d = d + z[:, j] * z[:, j]
    far = np.lexsort((np.arange(len(z)), -d.astype(np.float32).astype(np.float64)))
    order, sizes = _jit()["_mdav_core"](z, np.ones(z.shape[1]), k, leaf, far.astype(np.int64))
    return order, sizes, fit


def sampling_weights(
    ds: Dataset, name: str, *, excluded: list[str], used: np.ndarray, step: str, what: str = "a variable"
) -> np.ndarray:
    """The sampling weights ``name`` for weighted group means: present and > 0 on the records
    ``used`` (else an error naming the row), and not one of ``excluded`` (``what`` they are)."""
    if name in excluded:
        raise SafemicroError(f"the weight cannot also be {what}", column=name, step=step)
    w = numeric_matrix(ds, [name], step)[:, 0]
    bad = np.flatnonzero(used & ~(w > 0))  # NaN compares False: missing weights are bad too
    if len(bad):
        raise SafemicroError(
            f"weight must be present and > 0, got {w[bad[0]]!r}", column=name, row=int(bad[0]) + 1, step=step
        )
    return w


def weighted_group_means(x: np.ndarray, w: np.ndarray, members: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``x`` with each group's observed cells replaced by their weighted group mean."""
    label = np.empty(len(x), dtype=np.int64)
    label[members] = np.repeat(np.arange(len(sizes)), sizes)
    rows = members  # only grouped rows change
    out = x.copy()
    for j in range(x.shape[1]):
        v = x[rows, j]
        ok = ~np.isnan(v)
        num = np.bincount(label[rows][ok], weights=w[rows][ok] * v[ok], minlength=len(sizes))
        den = np.bincount(label[rows][ok], weights=w[rows][ok], minlength=len(sizes))
        mean = num / np.where(den > 0, den, 1.0)
        out[rows[ok], j] = mean[label[rows][ok]]
    return out
