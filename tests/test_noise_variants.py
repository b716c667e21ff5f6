"""Restricted noise, ROMM and outlier-aware noise.

References: the algebraic properties that define them, checked exactly on small cases —
restricted noise and ROMM keep the sample mean vector and covariance matrix exactly (a
property of the definitions: the affine correction; AᵀA = I and A·1 = 1); a ROMM block
matrix is orthogonal and fixes 1 (checked numerically on a hand-sized 5×5 case); the
outliers that outdect perturbs are those of the rule re-derived here from scikit-learn's
MinCovDet, scipy's χ² quantile and the median/MAD (an independent computation of the
definition).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import chi2, norm
from sklearn.covariance import MinCovDet

from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.methods.base import STEPS
from safemicro.methods.perturb import add_noise
from safemicro.methods.perturb_noise import romm_blocks, romm_matrix, romm_rotations
from safemicro.pipeline import prepare_steps, run_steps
from safemicro.plan import Plan


def _data(n: int = 500, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(np.zeros(3), [[1, 0.8, 0.3], [0.8, 1, 0.5], [0.3, 0.5, 1]], size=n)
    return Dataset(pl.DataFrame({"a": 1000 + 100 * z[:, 0], "b": 50 + 10 * z[:, 1], "c": np.exp(z[:, 2])}))


def _moments(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    x = frame.select("a", "b", "c").to_numpy()
    return x.mean(axis=0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("method", ["restricted", "romm"])
@pytest.mark.parametrize("n", [7, 500])
def test_mean_and_covariance_kept_exactly(method, n):
    ds = _data(n)
    res = add_noise(ds, variables=["a", "b", "c"], amount=0.05, method=method, block=5, seed=2)
    m0, c0 = _moments(ds.frame)
    m1, c1 = _moments(res.dataset.frame)
    np.testing.assert_allclose(m1, m0, rtol=1e-12)
    np.testing.assert_allclose(c1, c0, rtol=1e-9, atol=1e-9 * np.abs(c0).max())
    assert res.change.changed == {"a": n, "b": n, "c": n}
    rel = res.change.details["noise_sd_relative"]
    assert all(0.05 < r < 0.6 for r in rel.values())  # √0.05 ≈ 0.22 in expectation


def test_restricted_noise_close_to_correlated_noise_size():
    ds = _data(20000, seed=1)
    res = add_noise(ds, variables=["a", "b", "c"], amount=0.04, method="restricted", seed=3)
    for r in res.change.details["noise_sd_relative"].values():
        assert r == pytest.approx(0.2, rel=0.05)  # sd of the noise ≈ √amount·sd


def test_romm_matrix_orthogonal_and_fixes_ones():
    rng = np.random.default_rng(0)
    a = romm_matrix(5, romm_rotations(5, 1, 0.3, rng)[0])
    np.testing.assert_allclose(a @ a.T, np.eye(5), atol=1e-14)
    np.testing.assert_allclose(a @ np.ones(5), np.ones(5), atol=1e-14)
    np.testing.assert_allclose(a.T @ np.ones(5), np.ones(5), atol=1e-14)
    near = romm_matrix(5, romm_rotations(5, 1, 1e-6, rng)[0])
    np.testing.assert_allclose(near, np.eye(5), atol=1e-5)  # a small ρ: close to the identity


def test_romm_blocks_partition_rows():
    blocks = romm_blocks(1234, 50, np.random.default_rng(1))
    assert np.array_equal(np.sort(np.concatenate(blocks)), np.arange(1234))
    assert all(50 <= len(b) < 100 for b in blocks)
    assert [len(b) for b in romm_blocks(30, 50, np.random.default_rng(1))] == [30]


@pytest.mark.parametrize("method", ["restricted", "romm"])
def test_partly_missing_records_get_marginal_noise(method):
    ds = _data(200)
    frame = ds.frame.with_columns(pl.when(pl.int_range(pl.len()) < 5).then(None).otherwise(pl.col("a")).alias("a"))
    res = add_noise(Dataset(frame), variables=["a", "b", "c"], amount=0.05, method=method, seed=1)
    out = res.dataset.frame
    assert out["a"].null_count() == 5
    assert res.change.details["records_missing_a_variable"] == 5
    assert (out["b"][:5] != frame["b"][:5]).all()
    full = out[5:].select("a", "b", "c").to_numpy()
    np.testing.assert_allclose(full.mean(axis=0), frame[5:].select("a", "b", "c").to_numpy().mean(axis=0))


def test_outdect_perturbs_exactly_the_outliers_of_the_rule():
    rng = np.random.default_rng(4)
    n = 300
    x = rng.multivariate_normal([100, 50], [[100, 60], [60, 100]], size=n)
    x[0] = [130, 20]  # ordinary on each variable, rare in the pair
    x[1] = [400, 55]  # a univariate outlier
    ds = Dataset(pl.DataFrame({"a": x[:, 0], "b": x[:, 1]}))
    res = add_noise(ds, variables=["a", "b"], amount=0.0, outlier_amount=0.05, method="outdect", alpha=0.99, seed=9)
    mcd = MinCovDet(random_state=9).fit(x)
    multi = mcd.mahalanobis(x) > chi2.ppf(0.99, 2)
    med = np.median(x, axis=0)
    mad = 1.4826 * np.median(np.abs(x - med), axis=0)
    uni = (np.abs(x - med) > norm.ppf(0.995) * mad).any(axis=1)
    want = multi | uni
    changed = (res.dataset.frame.to_numpy() != x).any(axis=1)
    assert want[0] and want[1] and not want.all()
    np.testing.assert_array_equal(changed, want)
    d = res.change.details
    assert d["outliers"] == want.sum() and d["multivariate_outliers"] == multi.sum() and d["mcd_fitted"]
    assert res.change.params["outlier_amount"] == 0.05


def test_outdect_default_outlier_amount_and_noise_everywhere():
    ds = _data(300)
    res = add_noise(ds, variables=["a", "b", "c"], amount=0.01, method="outdect", seed=1)
    assert res.change.params["outlier_amount"] == pytest.approx(0.05)
    assert res.change.records_touched == 300


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "romm", "block": 1}, "block must be"),
        ({"method": "outdect", "alpha": 1.0}, "alpha must"),
        ({"method": "outdect", "outlier_amount": -1.0}, "outlier_amount"),
        ({"method": "bogus"}, "method must be one of"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(SafemicroError, match=message):
        add_noise(_data(20), variables=["a", "b"], **kwargs)


def test_too_few_complete_records():
    frame = pl.DataFrame({"a": [1.0, None, 3.0], "b": [None, 2.0, 5.0]})
    with pytest.raises(SafemicroError, match="at least 2 records"):
        add_noise(Dataset(frame), variables=["a", "b"], method="romm", seed=1)


@pytest.mark.parametrize(
    "step, words",
    [
        ("{method: restricted, amount: 0.02}", "exactly those of the original"),
        ("{method: romm, amount: 0.02, block: 20}", "random orthogonal matrix masking"),
        ("{method: outdect, amount: 0.0, outlier_amount: 0.05}", "robust outlier detection"),
    ],
)
def test_plan_steps(testdata, step, words):
    plan = Plan.from_yaml(f"roles: {{numeric_keys: [expend, income, savings]}}\nsteps:\n  - noise: {step}\nseed: 3\n")
    steps = prepare_steps(plan, testdata.columns, seed=3)
    out, changes = run_steps(Dataset(testdata), steps)
    text = STEPS["noise"].describe(steps[0].params, changes[0])
    assert words in text and str(changes[0].seed) not in text
    again, _ = run_steps(Dataset(testdata), prepare_steps(plan, testdata.columns, seed=3))
    assert again.frame.equals(out.frame)  # the seed reproduces it


@pytest.mark.parametrize("method", ["restricted", "romm", "outdect"])
def test_household_level_variables_stay_constant(method):
    rng = np.random.default_rng(2)
    size = rng.integers(1, 5, size=200)
    hh = np.repeat(np.arange(200), size)
    frame = pl.DataFrame({"hh": hh, "cash": rng.lognormal(4, 0.6, 200)[hh], "rent": rng.lognormal(3, 0.4, 200)[hh]})
    res = add_noise(Dataset(frame), variables=["cash", "rent"], amount=0.02, method=method, household="hh", seed=1)
    out = res.dataset.frame
    assert out.group_by("hh").agg(pl.col("cash").n_unique())["cash"].max() == 1
    assert res.change.details["households"] == 200
    if method != "outdect":  # per household: the households' means are kept exactly
        first = out.unique("hh", keep="first", maintain_order=True)["cash"].to_numpy()
        np.testing.assert_allclose(first.mean(), frame.unique("hh", keep="first", maintain_order=True)["cash"].mean())


@pytest.mark.parametrize("method", ["restricted", "romm", "outdect"])
def test_zero_amount_changes_nothing(method):
    ds = _data(60)
    frame = ds.frame.with_columns(pl.Series("i", np.arange(60) % 7, dtype=pl.Int32))
    res = add_noise(Dataset(frame), variables=["a", "b", "i"], amount=0.0, method=method, seed=1)
    assert res.dataset.frame.equals(frame) and res.change.records_touched == 0
