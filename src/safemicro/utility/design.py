"""Survey design and design-based variances by Taylor linearisation.

Variances are the with-replacement, ultimate-cluster approximation: each estimate is
linearised into per-record scores z, the weighted scores are summed per primary sampling
unit (PSU), and the variance of the estimated total Σ w·z is

    v = Σ_h n_h/(n_h − 1) · Σ_{i in h} (t_hi − t̄_h)²

over strata h with n_h PSUs and PSU totals t_hi. Without clusters every record is its own
PSU; without strata there is one stratum; without both this is the weighted simple random
sample (with replacement) variance. Strata with a single PSU contribute nothing (they are
counted in ``Design.single_psu_strata``).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.keys import BINCOUNT_LIMIT, combine_codes, dense_ids, encode_column

__all__ = ["Design", "make_design", "ratio_estimates", "z_value"]


@dataclass(frozen=True)
class Design:
    """Weights and the PSU/stratum structure of a sample."""

    weights: np.ndarray  # per record
    psu: np.ndarray | None  # record -> PSU id (None: every record is its own PSU)
    stratum: np.ndarray  # PSU -> stratum id 0..H-1
    n_psu: np.ndarray  # PSUs per stratum, length H

    @property
    def n(self) -> int:
        return len(self.weights)

    @property
    def single_psu_strata(self) -> int:
        return int((self.n_psu == 1).sum())

    @property
    def factor(self) -> np.ndarray:
        """n_h/(n_h − 1) per stratum, 0 for single-PSU strata."""
        nh = self.n_psu.astype(np.float64)
        return np.where(nh > 1, nh / np.maximum(nh - 1, 1), 0.0)

    def psu_of(self, rows: np.ndarray) -> np.ndarray:
        return rows if self.psu is None else self.psu[rows]

    @property
    def n_psus(self) -> int:
        return len(self.stratum)

    def covariance(self, scores: np.ndarray) -> np.ndarray:
        """Covariance matrix of the estimated totals Σ w·z for the columns of ``scores``."""
        z = np.asarray(scores, dtype=np.float64)
        z = z.reshape(-1, 1) if z.ndim == 1 else z
        wz = z * self.weights[:, None]
        if self.psu is None:
            t = wz
        else:
            t = np.column_stack([np.bincount(self.psu, wz[:, j], self.n_psus) for j in range(z.shape[1])])
        h, nh, f = self.stratum, self.n_psu, self.factor
        s = np.column_stack([np.bincount(h, t[:, j], len(nh)) for j in range(t.shape[1])])
        return (t * f[h][:, None]).T @ t - (s * (f / nh)[:, None]).T @ s


def _codes(values, what: str) -> np.ndarray:
    s = values if isinstance(values, pl.Series) else pl.Series(what, np.asarray(values))
    return encode_column(s)[0]


def make_design(weights=None, strata=None, clusters=None, *, n: int | None = None) -> Design:
    """A design from weights (None: all 1), strata and cluster ids (None: not used).

    Missing stratum or cluster values form a stratum / cluster of their own. Clusters are
    nested in strata (the same cluster id in two strata is two PSUs).
    """
    if weights is None:
        if n is None:
            raise ValueError("make_design needs weights or n")
        w = np.ones(n)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if not np.isfinite(w).all() or (w < 0).any():
            raise SafemicroError("weights must be finite and non-negative")
    n = len(w)
    s_codes = np.zeros(n, dtype=np.int64) if strata is None else _codes(strata, "strata")
    s_ids, _ = dense_ids(s_codes, int(s_codes.max()) + 1 if n else 1)
    if clusters is None:
        psu, stratum = None, s_ids
    else:
        c_codes = _codes(clusters, "clusters")
        combined, space = combine_codes([s_ids, c_codes], [int(s_ids.max(initial=0)), int(c_codes.max(initial=0))])
        psu, _ = dense_ids(combined, space)
        stratum = np.zeros(int(psu.max(initial=-1)) + 1, dtype=np.int64)
        stratum[psu] = s_ids
    n_psu = np.bincount(stratum, minlength=int(s_ids.max(initial=0)) + 1)
    return Design(weights=w, psu=psu, stratum=stratum, n_psu=n_psu)


def z_value(level: float) -> float:
    """The normal quantile for a two-sided interval at ``level``."""
    if not 0.0 < level < 1.0:
        raise SafemicroError(f"confidence level must lie between 0 and 1, got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def _psu_sums(design: Design, rows: np.ndarray, groups: np.ndarray, values: np.ndarray, n_groups: int):
    """Sparse (PSU, group) totals of ``values`` over the records ``rows``; PSU-major order."""
    if design.psu is None:  # one record per PSU: nothing to add up, rows are sorted
        return rows, groups, values
    key = design.psu[rows] * n_groups + groups
    space = design.n_psus * n_groups
    if space <= max(BINCOUNT_LIMIT, 4 * len(key)):
        present = np.flatnonzero(np.bincount(key, minlength=space))
        sums = np.bincount(key, weights=values, minlength=space)[present]
    else:
        present, inv = np.unique(key, return_inverse=True)
        sums = np.bincount(inv.ravel(), weights=values)
    return present // n_groups, present % n_groups, sums


def _by_stratum(design: Design, psu: np.ndarray, groups: np.ndarray, values: np.ndarray, n_groups: int):
    h = len(design.n_psu)
    idx = design.stratum[psu] * n_groups + groups
    return np.bincount(idx, weights=values, minlength=h * n_groups).reshape(h, n_groups)


def ratio_estimates(
    design: Design,
    rows: np.ndarray,
    numerator: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    domain_of_group: np.ndarray | None = None,
    domain: np.ndarray | None = None,
    n_domains: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted totals per group, or ratios to the weight total of the group's domain.

    For the records ``rows`` (sorted), ``numerator`` is each record's value and ``group``
    its group (0..n_groups-1). Without domains the estimates are totals Σ w·y per group;
    with ``domain`` (0..n_domains-1 per record) and ``domain_of_group`` they are ratios
    R_g = Σ_g w·y / Σ_d w, linearised as z = (y − R_g)/Σ_d w. Returns (estimates, variances).
    """
    w = design.weights[rows]
    pa, ga, ta = _psu_sums(design, rows, group, w * numerator, n_groups)
    sa = _by_stratum(design, pa, ga, ta, n_groups)
    sa2 = _by_stratum(design, pa, ga, ta * ta, n_groups)
    f, nh = design.factor[:, None], np.maximum(design.n_psu, 1)[:, None]
    total = sa.sum(axis=0)
    if domain is None:
        return total, np.maximum((f * (sa2 - sa * sa / nh)).sum(axis=0), 0.0)
    pb, db, tb = _psu_sums(design, rows, domain, w, n_domains)
    sb = _by_stratum(design, pb, db, tb, n_domains)[:, domain_of_group]
    sb2 = _by_stratum(design, pb, db, tb * tb, n_domains)[:, domain_of_group]
    pos = np.searchsorted(pb * n_domains + db, pa * n_domains + domain_of_group[ga])
    sab = _by_stratum(design, pa, ga, ta * tb[pos], n_groups)
    x = sb.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = total / x
        s2 = sa2 - 2 * r * sab + r * r * sb2
        s1 = sa - r * sb
        var = (f * (s2 - s1 * s1 / nh)).sum(axis=0) / (x * x)
    return r, np.maximum(var, 0.0)
