"""Robust (rmd) and weighted microaggregation.

References: rmd groups against a brute-force implementation of the definition written
here (MDAV around a fixed MCD centre in the robust Mahalanobis metric, centre and scatter
from scikit-learn's MinCovDet fitted in the test); weighted means against hand-computed
values; the exact preservation of weighted totals is a property (Σw·x' = Σw·x follows
from the definition), as is that sdcMicro's mdav output stays equal with no weights.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from sklearn.covariance import MinCovDet
from typer.testing import CliRunner

from conftest import ref_csv
from safemicro.cli import app
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.methods.aggregation import microaggregation
from safemicro.methods.aggregation_optimal import microaggregation_optimal
from safemicro.methods.base import STEPS
from safemicro.pipeline import prepare_steps, run_steps
from safemicro.plan import Plan

NV = ["expend", "income", "savings"]


def brute_rmd(x: np.ndarray, k: int, center: np.ndarray, cov: np.ndarray) -> set[frozenset[int]]:
    """The rmd groups by brute force over the remaining rows, from the definition."""
    inv = np.linalg.inv(cov)

    def d2(rows, q):
        diff = x[rows] - q
        return np.einsum("ij,jk,ik->i", diff, inv, diff)

    alive = list(range(len(x)))
    groups = []

    def group(r):
        rows = np.array([a for a in alive if a != r])
        d = d2(rows, x[r])
        nearest = rows[np.lexsort((-rows, d))][: k - 1]
        return [r, *nearest.tolist()]

    while len(alive) >= 2 * k:
        d = d2(np.array(alive), center)
        r = alive[int(np.argmax(d))]
        two = len(alive) >= 3 * k
        s = None
        if two:
            others = [a for a in alive if a != r]
            s = others[int(np.argmax(d2(np.array(others), x[r])))]
        for c in [r, s] if two else [r]:
            g = group(c)
            groups.append(frozenset(g))
            alive = [a for a in alive if a not in g]
    if alive:
        groups.append(frozenset(alive))
    return set(groups)


def partition(values: np.ndarray) -> set[frozenset[int]]:
    groups: dict[tuple, set[int]] = {}
    for i, row in enumerate(map(tuple, values)):
        groups.setdefault(row, set()).add(i)
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rmd_groups_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 40
    x = rng.multivariate_normal([10, 20], [[4, 3], [3, 9]], size=n)
    x[:3] += [30, -25]  # three gross outliers the MCD ignores
    ds = Dataset(pl.DataFrame({"a": x[:, 0], "b": x[:, 1]}))
    res = microaggregation(ds, variables=["a", "b"], k=3, method="rmd", seed=5)
    assert res.change.details["robust_fit"] == ["mcd"] and res.change.seed == 5
    mcd = MinCovDet(random_state=5).fit(x)
    want = brute_rmd(x, 3, mcd.location_, mcd.covariance_)
    got = partition(res.dataset.frame.to_numpy())
    assert got == want
    assert {0, 1, 2} in [set(g) for g in want]  # the outliers form their own group here


def test_rmd_hand_case_outlier_grouped_first():
    """1-D hand case: with the robust centre the outlier's group is formed first from its
    nearest neighbours; means checked by hand."""
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 100.0])
    res = microaggregation(Dataset(pl.DataFrame({"x": x})), variables="x", k=3, method="rmd")
    # robust centre ≈ 4.5–5: r = 100 (farthest) with 8, 7 → 115/3; s = farthest from 100 = 1
    # with 2, 3 → 2; the rest 4, 5, 6 → 5 (< 2k remain: one group).
    np.testing.assert_allclose(res.dataset.frame["x"].to_numpy(), [2, 2, 2, 5, 5, 5, 115 / 3, 115 / 3, 115 / 3])


def test_rmd_falls_back_to_median_mad_when_mcd_singular():
    rng = np.random.default_rng(3)
    n = 60
    income = np.where(rng.random(n) < 0.7, 0.0, rng.lognormal(5, 1, n))  # mostly 0: singular MCD
    ds = Dataset(pl.DataFrame({"income": income, "spend": rng.lognormal(4, 0.5, n)}))
    res = microaggregation(ds, variables=["income", "spend"], k=3, method="rmd")
    assert res.change.details["robust_fit"] == ["median/mad"]
    assert any("median and MAD" in note for note in res.change.notes)
    assert min(len(g) for g in partition(res.dataset.frame.to_numpy())) >= 3


def test_rmd_on_testdata_groups_and_means(testdata):
    res = microaggregation(Dataset(testdata), variables=NV, k=3, method="rmd")
    out = res.dataset.frame.select(NV).to_numpy()
    sizes = [len(g) for g in partition(out)]
    assert min(sizes) >= 3 and sum(sizes) == testdata.height
    np.testing.assert_allclose(out.sum(axis=0), testdata.select(NV).to_numpy().sum(axis=0), rtol=1e-12)


# -- weights ------------------------------------------------------------------------------


def test_weighted_means_by_hand():
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 10.0, 11.0, 12.0], "w": [1.0, 1.0, 2.0, 3.0, 1.0, 1.0]})
    res = microaggregation(Dataset(frame), variables="x", k=3, weights="w")
    # groups {1,2,3} and {10,11,12}: (1+2+6)/4 = 2.25 and (30+11+12)/5 = 10.6
    assert res.dataset.frame["x"].to_list() == pytest.approx([2.25] * 3 + [10.6] * 3)
    assert res.change.params["weights"] == "w"


def test_weighted_mdav_same_groups_and_sdcmicro_unweighted(testdata, reference):
    """Weights change the means, never the groups; without weights sdcMicro's mdav output."""
    unweighted = microaggregation(Dataset(testdata), variables=NV, k=3).dataset.frame
    want = ref_csv("testdata_mdav_aggr3.csv")
    for v in NV:
        np.testing.assert_array_equal(unweighted[v].to_numpy(), want[v].to_numpy())
    rng = np.random.default_rng(1)
    frame = testdata.with_columns(pl.Series("w", rng.uniform(50, 300, testdata.height)))
    weighted = microaggregation(Dataset(frame), variables=NV, k=3, weights="w").dataset.frame
    assert partition(weighted.select(NV).to_numpy()) == partition(unweighted.select(NV).to_numpy())
    w = frame["w"].to_numpy()
    for v in NV:  # property: weighted totals kept exactly (to rounding)
        np.testing.assert_allclose((w * weighted[v].to_numpy()).sum(), (w * testdata[v].to_numpy()).sum(), rtol=1e-12)


def test_weighted_rmd_partly_missing_and_strata():
    rng = np.random.default_rng(7)
    n = 90
    x = rng.lognormal(5, 1, n)
    x[[4, 50]] = np.nan
    frame = pl.DataFrame({"x": x, "y": rng.lognormal(3, 1, n), "w": rng.uniform(1, 5, n), "s": [1, 2] * 45})
    res = microaggregation(Dataset(frame), variables=["x", "y"], k=3, method="rmd", weights="w", strata="s")
    out = res.dataset.frame
    assert out["x"].is_nan().sum() == 2 or out["x"].is_null().sum() == 2
    w = frame["w"].to_numpy()
    for s in (1, 2):
        m = frame["s"].to_numpy() == s
        np.testing.assert_allclose((w * out["y"].to_numpy())[m].sum(), (w * frame["y"].to_numpy())[m].sum())


@pytest.mark.parametrize(
    "weights, message",
    [([1.0, 0.0] * 5, "present and > 0"), ([1.0, None] * 5, "present and > 0")],
)
def test_weight_errors(weights, message):
    frame = pl.DataFrame({"x": np.arange(10.0), "w": weights})
    with pytest.raises(SafemicroError, match=message) as err:
        microaggregation(Dataset(frame), variables="x", weights="w")
    assert "row 2" in str(err.value) and "w" in str(err.value)
    with pytest.raises(SafemicroError, match="cannot also be"):
        microaggregation(Dataset(frame), variables=["x", "w"], weights="w")


def test_plan_step_rmd_weighted(testdata):
    plan = Plan.from_yaml(
        "roles: {numeric_keys: [expend, income, savings], weight: sampling_weight}\n"
        "steps:\n  - microaggregation: {k: 3, method: rmd, weights: sampling_weight}\n"
    )
    steps = prepare_steps(plan, testdata.columns, seed=1)
    assert "sampling_weight" in steps[0].params.reads(steps[0].ctx)
    out, changes = run_steps(Dataset(testdata), steps)
    assert changes[0].params["method"] == "rmd" and changes[0].seed is not None
    text = STEPS["microaggregation"].describe(steps[0].params, changes[0])
    assert "weighted average (by sampling_weight)" in text and "robustly" in text
    assert "seed" not in text


def test_weighted_optimal_univariate_by_hand():
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 10.0, 11.0, 12.0, None], "w": [1.0, 1.0, 2.0, 3.0, 1.0, 1.0, None]})
    res = microaggregation_optimal(Dataset(frame), variables=["x"], k=3, weights="w")
    assert res.dataset.frame["x"].to_list()[:6] == pytest.approx([2.25] * 3 + [10.6] * 3)
    assert res.dataset.frame["x"][6] is None  # a missing value: its missing weight is not needed
    assert res.change.params["weights"] == "w"
    with pytest.raises(SafemicroError, match="present and > 0"):
        microaggregation_optimal(Dataset(frame.with_columns(pl.lit(0.0).alias("w"))), variables=["x"], weights="w")


def test_cli_anonymize_rmd_weighted_and_restricted_noise(testdata, tmp_path):
    """A plan through ``safemicro anonymize``: weighted totals survive the whole release
    (property), the lock plan names the method, seeds stay in the internal report."""
    data = tmp_path / "testdata.csv"
    testdata.with_columns(pl.col("savings").cast(pl.Float64)).write_csv(data)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "roles: {keys: [urbrur, sex], numeric_keys: [expend, income, savings], weight: sampling_weight}\n"
        "steps:\n  - microaggregation: {variables: [expend, income], method: rmd, weights: sampling_weight}\n"
        "  - noise: {variables: [savings, age], method: restricted, amount: 0.05}\nseed: 4\n",
        encoding="utf-8",
    )
    out = tmp_path / "bundle"
    result = CliRunner().invoke(app, ["anonymize", str(data), "--plan", str(plan), "--out", str(out)])
    assert result.exit_code == 0, result.output
    released = pl.read_parquet(out / "testdata.parquet")
    w = testdata["sampling_weight"].to_numpy()
    for v in ("expend", "income"):
        np.testing.assert_allclose((w * released[v].to_numpy()).sum(), (w * testdata[v].to_numpy()).sum(), rtol=1e-12)
    np.testing.assert_allclose(released["savings"].mean(), testdata["savings"].mean(), rtol=1e-12)
    assert abs(released["age"].mean() - testdata["age"].mean()) < 0.5  # integers rounded back
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    first, second = report["steps"]
    assert first["params"]["method"] == "rmd" and first["details"]["robust_fit"] == ["mcd"]
    assert second["params"]["method"] == "restricted" and second["seed"] is not None
    assert report["utility"]["numeric"]["il1s"] > 0
    lock = (out / "plan.lock.yaml").read_text(encoding="utf-8")
    assert "method: rmd" in lock and "weights: sampling_weight" in lock and "method: restricted" in lock
    external = (out / "external_report.html").read_text(encoding="utf-8")
    assert "weighted average" in external and str(second["seed"]) not in external and str(first["seed"]) not in external
