"""Robust numeric keys: dRiskRMD, multivariate outliers, mvTopCoding, optimal univariate microaggregation.

References (no sdcMicro outputs exist for these calls in tests/data/sdcmicro_reference):
- optimal univariate microaggregation (Hansen & Mukherjee 2003): its SSE equals the minimum
  over *every* partition of a small vector into groups of at least k (brute force over all
  set partitions, not only contiguous ones);
- mvTopCoding (sdcMicro documentation): every record flagged by scikit-learn's MinCovDet
  distance lies on the χ² ellipsoid afterwards, on the ray from the centre, others unchanged;
- dRiskRMD (sdcMicro documentation, RMDID1/RMDID1w/RMDID2): a 4-record case worked by hand.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy.stats import chi2
from sklearn.covariance import MinCovDet
from typer.testing import CliRunner

from safemicro.cli import app
from safemicro.io import from_frame
from safemicro.methods import STEPS, microaggregation_optimal, mv_top_code
from safemicro.methods.aggregation_optimal import optimal_groups
from safemicro.risk.numeric_robust import rmd_disclosure


def _partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _partitions(rest):
        for i in range(len(part)):
            yield part[:i] + [[first, *part[i]]] + part[i + 1 :]
        yield [[first], *part]


def _sse(v, groups):
    return sum(((v[g] - v[g].mean()) ** 2).sum() for g in groups)


@pytest.mark.parametrize("k", [2, 3])
def test_optimal_univariate_sse_is_the_brute_force_minimum(k):
    rng = np.random.default_rng(k)
    for _ in range(4):
        v = np.round(rng.lognormal(3, 1, 8), 1)
        best = min(_sse(v, [np.array(g) for g in p]) for p in _partitions(list(range(8))) if min(map(len, p)) >= k)
        labels = optimal_groups(v, k)
        got = _sse(v, [np.flatnonzero(labels == g) for g in np.unique(labels)])
        assert got == pytest.approx(best, rel=1e-9, abs=1e-9)
        assert np.bincount(labels).min() >= k and np.bincount(labels).max() <= 2 * k - 1


def test_optimal_microaggregation_method_keeps_missing_and_means():
    v = [1.0, 2.0, None, 10.0, 11.0, 12.0, 30.0]
    ds = from_frame(pl.DataFrame({"x": v, "y": [1, 2, 3, 4, 5, 6, 7]}))
    out, change = microaggregation_optimal(ds, variables=["x"], k=2)
    # the missing value is left out; the six others are grouped (SSE checked against brute force below)
    x = out.frame.get_column("x").to_list()
    assert x[2] is None and out.frame.get_column("y").to_list() == [1, 2, 3, 4, 5, 6, 7]
    assert sum(a for a in x if a is not None) == pytest.approx(66.0)  # means are kept
    vv = np.array([1.0, 2, 10, 11, 12, 30])
    best = min(_sse(vv, [np.array(g) for g in p]) for p in _partitions(list(range(6))) if min(map(len, p)) >= 2)
    assert change.details["sse"]["x"] == pytest.approx(best)


def test_mv_topcoding_puts_outliers_on_the_ellipsoid_and_leaves_the_rest():
    rng = np.random.default_rng(7)
    x = rng.multivariate_normal([10, 20], [[4, 3], [3, 9]], 400)
    x[:6] = [[25, 5], [0, 40], [30, 30], [-5, 0], [12, 60], [40, 10]]
    ds = from_frame(pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": np.arange(400)}))
    out, change = mv_top_code(ds, variables=["a", "b"], alpha=0.99, seed=3)
    mcd = MinCovDet(random_state=3).fit(x)
    q = chi2.ppf(0.99, 2)
    flagged = mcd.mahalanobis(x) > q
    assert flagged[:6].all() and change.details["n_coded"] == flagged.sum()
    new = out.frame.select("a", "b").to_numpy()
    assert np.array_equal(new[~flagged], x[~flagged])
    assert np.allclose(mcd.mahalanobis(new[flagged]), q)  # on the boundary
    u, w = x[flagged] - mcd.location_, new[flagged] - mcd.location_
    assert np.allclose(u[:, 0] * w[:, 1] - u[:, 1] * w[:, 0], 0, atol=1e-8) and ((u * w).sum(axis=1) > 0).all()
    assert out.frame.get_column("c").to_list() == list(range(400))


def test_rmd_disclosure_hand_checked():
    x = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    xm = x + np.array([[0.2, 0.1], [0.1, 0.0], [0.5, 0.0], [0.0, 0.05]])
    d2 = np.array([1.0, 1.0, 4.0, 1.0])  # median 1; record 2 is 4 times as outlying
    # sd of the masked columns by hand: a = [0.2, 1.1, 2.5, 3.0] -> sqrt(4.94/3) = 1.2832,
    # b = [0.1, 1.0, 2.0, 3.05] -> sqrt(4.857/3) = 1.2724
    assert np.std(xm, axis=0, ddof=1) == pytest.approx([1.2832, 1.2724], abs=1e-4)
    # k = 0.1: half-widths 0.128 (a), 0.127 (b); record 2's are 4 times wider, 0.513 and 0.509.
    # record 0 is outside on a (0.2 > 0.128); 1 and 3 inside; 2 inside only thanks to its RMD (0.5 < 0.513)
    r = rmd_disclosure(x, xm, d2, k=0.1, k2=0.01)
    assert r["unsafe"].tolist() == [False, True, True, True]
    assert r["risk1"] == 0.75 and r["wrisk1"] == pytest.approx(6 / 7)
    assert r["wrisk2"] == pytest.approx(6 / 7)  # no released neighbour within 1 % sd
    # k2 = 0.75: boxes ±0.962 (a), ±0.954 (b) around the released values: record 1 (1.1, 1.0) has
    # record 0 (0.2, 0.1) in its box and is safe again; 2 and 3 differ by 1.05 on b and stay unsafe
    assert rmd_disclosure(x, xm, d2, k=0.1, k2=0.75)["wrisk2"] == pytest.approx(5 / 7)
    # without the RMD widening (all d2 equal) record 2 would be safe: SDID's answer
    assert rmd_disclosure(x, xm, np.ones(4), k=0.1)["unsafe"].tolist() == [False, True, False, True]


def test_steps_in_a_plan_and_robust_measures_in_the_report(tmp_path):
    assert {"mv_topcoding", "microaggregation_optimal"} <= set(STEPS)
    rng = np.random.default_rng(1)
    x = rng.multivariate_normal([100, 50], [[400, 150], [150, 100]], 300)
    x[:3] = [[300, 10], [10, 150], [250, 200]]
    pl.DataFrame({"region": rng.integers(1, 4, 300), "income": x[:, 0], "aid": x[:, 1]}).write_csv(tmp_path / "d.csv")
    (tmp_path / "plan.yaml").write_text(
        "roles:\n  keys: [region]\n  numeric_keys: [income, aid]\ntargets:\n  k: 2\n  max_rmd_risk: 0.5\n"
        "steps:\n  - mv_topcoding: {alpha: 0.99}\n  - microaggregation_optimal: {k: 3}\nseed: 4\n"
    )
    run = CliRunner().invoke(
        app, ["anonymize", str(tmp_path / "d.csv"), "--plan", str(tmp_path / "plan.yaml"), "-o", str(tmp_path / "out")]
    )
    assert run.exit_code == 0, run.output
    listed = CliRunner().invoke(app, ["steps"])
    assert "mv_topcoding" in listed.output and "microaggregation_optimal" in listed.output
    res = CliRunner().invoke(
        app,
        [
            "assess",
            str(tmp_path / "d.csv"),
            "--plan",
            str(tmp_path / "plan.yaml"),
            "--json",
            str(tmp_path / "r.json"),
            "--html",
            str(tmp_path / "r.html"),
        ],
    )
    assert res.exit_code == 0, res.output
    nr = json.loads((tmp_path / "r.json").read_text())["numeric_risk"]
    assert nr["n_multivariate_outliers"] >= 3 and nr["rmd_wrisk1"] == 1.0  # unperturbed: every record inside
    assert "RMD interval disclosure" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("step", ["mv_topcoding", "microaggregation_optimal"])
def test_numeric_steps_take_the_numeric_keys_or_refuse(step):
    from safemicro.methods.base import StepContext
    from safemicro.plan import Roles, Targets

    with_keys = StepContext(Roles(keys=["r"], numeric_keys=["a", "b"]), Targets(), 1.0, 4, 1, ("r", "a", "b"))
    params = STEPS[step].params.model_validate({})
    assert params.arguments(with_keys)["variables"] == ["a", "b"]
    with pytest.raises(ValueError, match="needs variables"):
        params.check(StepContext(Roles(keys=["r"]), Targets(), 1.0, 4, 1, ("r", "a", "b")))
