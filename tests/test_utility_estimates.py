"""Design-based estimates and regressions against textbook formulas computed by hand.

The references here are written independently of safemicro's vectorised code: plain loops
over strata and PSUs of the with-replacement ultimate-cluster variance
v = Σ_h n_h/(n_h−1) Σ_i (u_hi − ū_h)², u_hi = Σ_{j∈PSU hi} w_j z_j, with the usual
linearised scores z (ratio mean: d(y − R)/Σwd; total: d·y; regression: A⁻¹ x e), plus the
closed form s²/n of simple random sampling and a direct likelihood maximisation for the
logistic model. (samplics/statsmodels would pull heavy dependencies into the test extra;
the formulas are short enough to state here.)
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from scipy.optimize import minimize

from safemicro.utility import estimate, fit_regression, make_design

Z95 = 1.959963984540054


def _design_data(seed: int = 7, n: int = 240):
    rng = np.random.default_rng(seed)
    strata = rng.integers(1, 4, n)
    clusters = rng.integers(1, 6, n)  # cluster ids repeat across strata: nested
    w = rng.uniform(1, 20, n)
    y = rng.normal(50, 10, n) + 5 * strata
    y[rng.random(n) < 0.05] = np.nan
    dom = rng.integers(0, 3, n)  # 0 = outside every domain
    cat = rng.integers(1, 4, n)
    cat[rng.random(n) < 0.05] = 0
    return strata, clusters, w, y, dom, cat


def _textbook_var(scores, w, strata, clusters) -> float:
    """Σ_h n_h/(n_h−1) Σ_i (u_hi − ū_h)² with explicit loops."""
    totals: dict[tuple, float] = defaultdict(float)
    for z, wj, h, c in zip(scores, w, strata, clusters):
        totals[(h, c)] += wj * z
    by_stratum: dict = defaultdict(list)
    for (h, _), t in totals.items():
        by_stratum[h].append(t)
    v = 0.0
    for ts in by_stratum.values():
        n_h = len(ts)
        if n_h > 1:
            mean = sum(ts) / n_h
            v += n_h / (n_h - 1) * sum((t - mean) ** 2 for t in ts)
    return v


def test_domain_means_match_textbook_linearisation():
    strata, clusters, w, y, dom, _ = _design_data()
    design = make_design(w, strata, clusters)
    est = estimate(y, design, kind="mean", domain=dom)
    for d in (1, 2):
        inside = (dom == d) & ~np.isnan(y)
        W = w[inside].sum()
        R = (w[inside] * y[inside]).sum() / W
        z = np.where(inside, (np.nan_to_num(y) - R) / W, 0.0)  # zero outside, PSUs still count
        se = np.sqrt(_textbook_var(z, w, strata, clusters))
        assert est["estimate"][d - 1] == pytest.approx(R, rel=1e-12)
        assert est["se"][d - 1] == pytest.approx(se, rel=1e-9)
        assert est["lower"][d - 1] == pytest.approx(R - Z95 * se, rel=1e-9)
        assert est["upper"][d - 1] == pytest.approx(R + Z95 * se, rel=1e-9)
        assert est["n"][d - 1] == inside.sum()


def test_totals_and_proportions_match_textbook():
    strata, clusters, w, y, dom, cat = _design_data(seed=11)
    design = make_design(w, strata, clusters)
    tot = estimate(y, design, kind="total")
    ok = ~np.isnan(y)
    assert tot["estimate"][0] == pytest.approx((w[ok] * y[ok]).sum(), rel=1e-12)
    assert tot["se"][0] == pytest.approx(
        np.sqrt(_textbook_var(np.where(ok, np.nan_to_num(y), 0), w, strata, clusters)), rel=1e-9
    )
    prop = estimate(cat, design, kind="proportion", domain=dom, n_categories=3)
    assert prop["estimate"].shape == (2, 3)
    for d in (1, 2):
        inside = (dom == d) & (cat > 0)
        W = w[inside].sum()
        for c in (1, 2, 3):
            p = w[inside & (cat == c)].sum() / W
            z = np.where(inside, ((cat == c) - p) / W, 0.0)
            assert prop["estimate"][d - 1, c - 1] == pytest.approx(p, rel=1e-12)
            assert prop["se"][d - 1, c - 1] == pytest.approx(np.sqrt(_textbook_var(z, w, strata, clusters)), rel=1e-9)
        assert prop["estimate"][d - 1].sum() == pytest.approx(1.0)


def test_simple_random_sample_closed_form():
    """No weights, strata or clusters: the variance of the mean is s²/n."""
    rng = np.random.default_rng(2)
    y = rng.normal(3, 2, 500)
    est = estimate(y, make_design(n=len(y)))
    assert est["estimate"][0] == pytest.approx(y.mean())
    assert est["se"][0] == pytest.approx(y.std(ddof=1) / np.sqrt(len(y)), rel=1e-10)
    # a proportion: p(1-p)/(n-1)
    x = (y > 3).astype(int) + 1
    p = (x == 2).mean()
    prop = estimate(x, make_design(n=len(y)), kind="proportion")
    assert prop["se"][0, 1] == pytest.approx(np.sqrt(p * (1 - p) / (len(y) - 1)), rel=1e-10)


def test_single_psu_strata_add_nothing():
    w = np.ones(6)
    design = make_design(w, strata=np.array([1, 1, 1, 2, 3, 3]), clusters=np.array([1, 2, 3, 1, 1, 2]))
    assert design.single_psu_strata == 1
    y = np.array([1.0, 2, 3, 100, 5, 5])
    # stratum 2 (one PSU) adds nothing, stratum 3 has equal PSU totals: only stratum 1 counts
    assert estimate(y, design, kind="total")["se"][0] == pytest.approx(np.sqrt(1.5 * 2.0))


def test_linear_regression_sandwich():
    rng = np.random.default_rng(5)
    n = 300
    x = rng.normal(0, 1, n)
    y = 1 + 2 * x + rng.normal(0, 1 + np.abs(x), n)
    X = np.column_stack([np.ones(n), x])
    fit = fit_regression(y, X, make_design(n=n))
    slope, intercept = np.polyfit(x, y, 1)
    assert fit["coef"] == pytest.approx([intercept, slope], rel=1e-10)
    bread = np.linalg.inv(X.T @ X)
    e = y - X @ fit["coef"]
    meat = sum(np.outer(X[i], X[i]) * e[i] ** 2 for i in range(n))
    assert fit["cov"] == pytest.approx(n / (n - 1) * bread @ meat @ bread, rel=1e-9)

    # weighted, stratified and clustered: bread · Σ_h n_h/(n_h−1) Σ_i (u_hi − ū_h)(..)' · bread
    strata, clusters, w, _, _, _ = _design_data(seed=3, n=n)
    design = make_design(w, strata, clusters)
    fit = fit_regression(y, X, design)
    W = np.diag(w)
    beta = np.linalg.solve(X.T @ W @ X, X.T @ W @ y)
    assert fit["coef"] == pytest.approx(beta, rel=1e-10)
    bread = np.linalg.inv(X.T @ W @ X)
    e = y - X @ beta
    cov = np.zeros((2, 2))
    for j in range(2):
        for k in range(2):
            zj, zk = (X @ bread)[:, j] * e, (X @ bread)[:, k] * e
            # the covariance by polarisation of the textbook variance
            cov[j, k] = (_textbook_var(zj + zk, w, strata, clusters) - _textbook_var(zj - zk, w, strata, clusters)) / 4
    assert fit["cov"] == pytest.approx(cov, rel=1e-8)


def test_logistic_regression_maximises_the_weighted_likelihood():
    rng = np.random.default_rng(9)
    n = 400
    x = rng.normal(0, 1, n)
    g = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(-0.5 + 1.2 * x - 0.8 * g)))
    y = (rng.random(n) < p).astype(float)
    w = rng.uniform(1, 5, n)
    X = np.column_stack([np.ones(n), x, g])
    fit = fit_regression(y, X, make_design(w), kind="logistic")

    def nll(b):
        eta = X @ b
        return -np.sum(w * (y * eta - np.logaddexp(0, eta)))

    ref = minimize(nll, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    assert fit["converged"] and fit["coef"] == pytest.approx(ref, abs=1e-5)
    mu = 1 / (1 + np.exp(-X @ fit["coef"]))
    bread = np.linalg.inv((X * (w * mu * (1 - mu))[:, None]).T @ X)
    u = X * (w * (y - mu))[:, None]
    meat = n / (n - 1) * (u - u.mean(axis=0)).T @ (u - u.mean(axis=0))
    assert fit["cov"] == pytest.approx(bread @ meat @ bread, rel=1e-7)


def test_regression_drops_unestimable_columns():
    n = 50
    x = np.arange(n, dtype=float)
    X = np.column_stack([np.ones(n), x, np.zeros(n), 2 * x])  # absent dummy, duplicate column
    fit = fit_regression(3 + 0.5 * x, X, make_design(n=n))
    assert fit["coef"][:2] == pytest.approx([3, 0.5])
    assert np.isnan(fit["coef"][2:]).all() and np.isnan(fit["cov"][2:, 2:]).all()
