"""Utility measures: sdcMicro parity (IL1, IL1s, eigen, dRisk), distances and compare()."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ref_csv
from safemicro.errors import SafemicroError
from safemicro.io.dataset import Codebook, Dataset, VariableMeta
from safemicro.methods.base import ROW_ID
from safemicro.plan import Indicator, Regression, Roles, Utility
from safemicro.utility import (
    ci_overlap,
    compare,
    correlation_max_diff,
    eigen,
    hellinger,
    il1,
    il1s,
    interval_disclosure,
    numeric_loss,
    tvd,
)

NV = ["expend", "income", "savings"]


# -- sdcMicro parity --------------------------------------------------------------------


def _top_coded(testdata: pl.DataFrame) -> pl.DataFrame:
    return testdata.with_columns(
        pl.when(pl.col("income") > 500000).then(1000).otherwise(pl.col("income")).alias("income")
    )


def test_mdav_parity(testdata, reference):
    x = testdata.select(NV).to_numpy()
    xm = ref_csv("testdata_mdav_aggr3.csv").select(NV).to_numpy()
    exp = reference["microaggregation"]
    assert il1(x, xm) == pytest.approx(exp["utility"]["il1"], rel=1e-12)
    assert il1s(x, xm) == pytest.approx(exp["utility"]["il1s"], rel=1e-12)
    assert eigen(x, xm) == pytest.approx(exp["utility"]["eigen"], rel=1e-9)
    assert interval_disclosure(x, xm) == pytest.approx(exp["risk_numeric_dRisk"], rel=1e-12)


def test_top_coding_parity(testdata, reference):
    top = _top_coded(testdata)
    exp = reference["topBotCoding"]["sdcObj_income_top500000"]
    assert int((top["income"] != testdata["income"]).sum()) == exp["n_changed"]
    loss = numeric_loss(testdata.select(NV).to_numpy(), top.select(NV).to_numpy())
    assert loss["il1"] == pytest.approx(exp["utility_after"]["il1"], rel=1e-12)
    assert loss["il1s"] == pytest.approx(exp["utility_after"]["il1s"], rel=1e-12)
    assert loss["eigen"] == pytest.approx(exp["utility_after"]["eigen"], rel=1e-9)
    assert loss["interval_disclosure"] == pytest.approx(exp["risk_numeric_after"], rel=1e-12)
    assert loss["records_used"] == testdata.height


def test_compare_numeric_section_matches_sdcmicro(testdata, reference):
    """The same numbers come out of compare() on Datasets, with the row id in play."""
    orig = Dataset(testdata.with_row_index(ROW_ID))
    mdav = ref_csv("testdata_mdav_aggr3.csv")
    released = orig.with_frame(orig.frame.with_columns(mdav.select(NV)))
    roles = Roles(keys=["urbrur", "roof", "sex"], numeric_keys=NV, weight="sampling_weight")
    out = compare(orig, released, roles=roles)
    exp = reference["microaggregation"]
    num = out["numeric"]
    assert num["variables"] == NV
    assert num["il1s"] == pytest.approx(exp["utility"]["il1s"], rel=1e-12)
    assert num["il1"] == pytest.approx(exp["utility"]["il1"], rel=1e-12)
    assert num["eigen"] == pytest.approx(exp["utility"]["eigen"], rel=1e-9)
    assert num["interval_disclosure"] == pytest.approx(exp["risk_numeric_dRisk"], rel=1e-12)
    rows = {v["variable"]: v for v in out["variables"]}
    assert rows["urbrur"]["changed"] == 0 and rows["urbrur"]["tvd"] == 0.0
    assert rows["income"]["changed"] == int((mdav["income"] != testdata["income"].cast(pl.Float64)).sum())
    assert out["rows"] == {
        "original": 4580,
        "released": 4580,
        "aligned_by": "row id",
        "records_changed": out["rows"]["records_changed"],
    }
    # microaggregation leaves the group means, so the mean of each variable is unchanged
    assert rows["income"]["mean_after"] == pytest.approx(rows["income"]["mean_before"], rel=1e-12)


def test_numeric_edge_cases():
    x = np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 1.0], [0.0, 5.0]])
    assert il1(x, x) == 0 and il1s(x, x) == 0 and eigen(x, x) == 0
    # the original 0 (division by zero) and the missing cell are left out of IL1
    y = x + 1
    assert il1(x, y) == pytest.approx(100 * (1 + 1 / 2 + 1 / 3 + 1 / 2 + 1 + 1 / 5))
    assert il1s(x, y) == pytest.approx(
        sum(np.sum(~np.isnan(x[:, j])) / (np.nanstd(x[:, j], ddof=1) * math.sqrt(2)) for j in range(2))
    )
    assert math.isnan(eigen(np.ones((5, 2)), np.ones((5, 2))))  # constant columns: undefined
    assert correlation_max_diff(x[:, 0], x[:, 0] * 2) == 0.0
    with pytest.raises(SafemicroError, match="same shape"):
        il1(x, x[:2])


# -- distances --------------------------------------------------------------------------


def test_tvd_and_hellinger_known_values():
    assert tvd([3, 0], [0, 7]) == 1.0 and hellinger([3, 0], [0, 7]) == pytest.approx(1.0)
    assert tvd([1, 1], [1, 0]) == 0.5
    assert hellinger([1, 1], [1, 0]) == pytest.approx(math.sqrt(1 - math.sqrt(0.5)))
    assert tvd([2, 4, 6], [1, 2, 3]) == 0.0
    assert math.isnan(tvd([0, 0], [1, 1]))


def test_ci_overlap():
    assert ci_overlap(0, 2, 0, 2) == 1.0
    assert ci_overlap(0, 2, 2, 4) == 0.0  # touching
    assert ci_overlap(0, 2, 1, 3) == pytest.approx(0.5)
    assert ci_overlap(0, 4, 1, 2) == pytest.approx(0.5 * (1 / 4 + 1))  # nested
    assert ci_overlap(0, 1, 3, 4) == pytest.approx(-2.0)  # apart: negative
    assert ci_overlap(1, 1, 0, 2) is None  # no width
    assert ci_overlap(1, 1, 1, 1) == 1.0


# -- compare() --------------------------------------------------------------------------


def _survey(n: int = 600, seed: int = 3) -> Dataset:
    """A small labelled survey with a user-missing code, weights, strata and clusters."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(1, 13, n)
    frame = pl.DataFrame(
        {
            "region": (cluster - 1) // 4 + 1,
            "cluster": cluster,
            "sex": rng.integers(1, 3, n),
            "age": rng.integers(0, 90, n),
            "hhsize": rng.integers(1, 9, n),
            "work": np.where(rng.random(n) < 0.05, 99, rng.integers(0, 2, n)),
            "income": np.round(rng.lognormal(4, 1, n), 2),
            "w": rng.uniform(1, 50, n),
        }
    )
    frame = frame.with_columns((pl.col("income") * (1 + 0.02 * pl.col("age"))).alias("income"))
    cb = Codebook(
        variables={
            "sex": VariableMeta("sex", value_labels={1: "male", 2: "female"}),
            "work": VariableMeta("work", value_labels={0: "no", 1: "yes", 99: "refused"}, missing_values=[99]),
        }
    )
    return Dataset(frame.with_row_index(ROW_ID), cb)


ROLES = Roles(
    keys=["region", "sex", "age", "hhsize"], numeric_keys=["income"], weight="w", strata="region", cluster="cluster"
)
UTIL = Utility(
    indicators=[
        Indicator(variable="income", kind="mean", by="region"),
        Indicator(variable="work", kind="proportion", value="yes"),
        Indicator(variable="sex", kind="proportion"),
        Indicator(variable="income", kind="total"),
    ],
    regressions=[
        Regression(outcome="income", predictors=["age", "sex"]),
        Regression(outcome="work", predictors=["age", "hhsize"], kind="logistic"),
    ],
    tables=[["sex", "work"]],
)


def test_identical_release_has_no_loss():
    ds = _survey()
    out = compare(ds, ds.with_frame(ds.frame.clone()), roles=ROLES, utility=UTIL)
    assert out["rows"]["records_changed"] == 0
    for row in out["variables"]:
        assert row["changed"] == 0 and row["suppressed"] == 0
        if row["kind"] == "categorical":
            assert row["tvd"] == 0 and row["hellinger"] == 0 and row["tvd_weighted"] == 0
    assert out["numeric"]["il1"] == 0 and out["numeric"]["il1s"] == 0 and out["numeric"]["eigen"] == 0
    assert out["numeric"]["interval_disclosure"] == 1.0
    assert all(t["tvd"] == 0 and t["tvd_weighted"] == 0 for t in out["tables"])
    assert len(out["indicators"]) == 3 + 1 + 2 + 1
    for ind in out["indicators"]:
        assert ind["difference"] == 0 and ind["ci_overlap"] == 1.0 and ind["before"]["se"] > 0
    for reg in out["regressions"]:
        assert all(c["difference"] == 0 and c["ci_overlap"] == 1.0 for c in reg["coefficients"])
    # user-missing code 99 of work is missing, not a category
    work = next(v for v in out["variables"] if v["variable"] == "work")
    assert work["missing_before"] == int((ds.frame["work"] == 99).sum()) and work["categories_before"] == 2
    assert out["notes"] == []


def _close(a, b) -> bool:
    """Equal JSON-like structures, floats up to summation order."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_close, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.floats(0.5, 10)), min_size=3, max_size=40), st.integers(0, 2**31 - 1))
def test_compare_properties(cells, seed):
    """Identical data: no loss; a shuffled release aligned by row id: the same result."""
    frame = pl.DataFrame({"k": [c[0] for c in cells], "w": [c[1] for c in cells]}).with_row_index(ROW_ID)
    ds = Dataset(frame)
    roles = Roles(keys=["k"], weight="w")
    util = Utility(indicators=[Indicator(variable="k", kind="proportion")])
    same = compare(ds, ds, roles=roles, utility=util)
    row = same["variables"][0]
    assert row["tvd"] == 0 and row["hellinger_weighted"] == 0 and row["changed"] == 0
    assert all(i["ci_overlap"] in (1.0, None) and i["difference"] == 0 for i in same["indicators"])
    perm = np.random.default_rng(seed).permutation(frame.height)
    changed = frame.with_columns(pl.when(pl.col(ROW_ID) % 3 == 0).then(None).otherwise(pl.col("k")).alias("k"))
    aligned = compare(ds, ds.with_frame(changed), roles=roles, utility=util)
    shuffled = compare(ds, ds.with_frame(changed[perm]), roles=roles, utility=util)
    assert _close(shuffled, aligned)
    assert aligned["variables"][0]["suppressed"] == (frame.height + 2) // 3


def test_reordered_subsample_aligned_by_row_id():
    ds = _survey()
    rng = np.random.default_rng(0)
    keep = rng.choice(ds.n, 400, replace=False)  # a shuffled subsample
    frame = ds.frame[keep]
    suppress = frame[ROW_ID] % 10 == 0  # cells to suppress, known by row id
    released = ds.with_frame(
        frame.with_columns(pl.when(suppress).then(None).otherwise(pl.col("age")).alias("age")).drop("hhsize")
    )
    out = compare(ds, released, roles=ROLES, utility=UTIL)
    assert out["rows"]["original"] == 600 and out["rows"]["released"] == 400
    rows = {v["variable"]: v for v in out["variables"]}
    assert rows["hhsize"]["status"] == "removed"
    assert rows["age"]["suppressed"] == rows["age"]["changed"] == int(suppress.sum())
    assert rows["sex"]["changed"] == 0 and rows["income"]["changed"] == 0
    assert out["numeric"]["il1s"] == 0  # matched rows: the subsample did not perturb values
    assert out["rows"]["records_changed"] == int(suppress.sum())
    # distributions compare the whole original with the whole release: sampling shows
    assert rows["sex"]["tvd"] > 0
    assert {tuple(t["variables"]) for t in out["tables"] if t["status"] == "removed"} == {
        ("region", "hhsize"),
        ("sex", "hhsize"),
        ("age", "hhsize"),
    }
    # a released row id the original lacks
    bad = released.frame.with_columns(pl.col(ROW_ID).cast(pl.Int64) + 10_000)
    with pytest.raises(SafemicroError, match="row id"):
        compare(ds, ds.with_frame(bad), roles=ROLES)
    # without row ids the rows must correspond one to one
    with pytest.raises(SafemicroError, match="400 rows and the original 600"):
        compare(Dataset(ds.frame.drop(ROW_ID)), Dataset(released.frame.drop(ROW_ID)), roles=ROLES)


def test_suppressed_cells_are_a_category():
    """Suppressing 10% of a variable moves 10% of the mass to 'missing': TVD 0.1."""
    frame = pl.DataFrame({"a": [1, 2] * 50, "b": [1, 1, 2, 2] * 25})
    released = frame.with_columns(pl.when(pl.int_range(100) < 10).then(None).otherwise(pl.col("a")).alias("a"))
    out = compare(Dataset(frame), Dataset(released), roles=Roles(keys=["a", "b"]))
    a = out["variables"][0]
    assert a["tvd"] == pytest.approx(0.1) and a["suppressed"] == 10 and a["tvd_weighted"] is None
    missing = next(m for m in a["marginal"] if m["kind"] == "missing")
    assert missing["share_before"] == 0 and missing["share_after"] == pytest.approx(0.1)
    assert out["tables"][0]["variables"] == ["a", "b"] and out["tables"][0]["tvd"] == pytest.approx(0.1)


def test_recoded_variable_is_noted_and_input_untouched():
    ds = _survey()
    before = ds.frame.clone()
    released = ds.with_frame(
        ds.frame.with_columns(pl.when(pl.col("age") < 18).then(pl.lit("0-17")).otherwise(pl.lit("18+")).alias("age"))
    )
    out = compare(ds, released, roles=ROLES, utility=UTIL)
    age = next(v for v in out["variables"] if v["variable"] == "age")
    assert age["changed"] == ds.n and age["categories_differ"] and age["categories_after"] == 2
    assert any(n.startswith("age: the categories differ") for n in out["notes"])
    # the regression on age is fitted on both sides as a categorical predictor
    reg = out["regressions"][0]
    terms = {c["term"]: c for c in reg["coefficients"]}
    assert terms["age=1"]["before"]["estimate"] is not None and terms["age=1"]["after"]["estimate"] is None
    assert terms["age=0-17"]["before"]["estimate"] is None and terms["age=0-17"]["after"]["estimate"] is not None
    assert terms["age=0-17"]["ci_overlap"] is None
    assert any("age has other categories in the release" in n for n in out["notes"])
    assert ds.frame.equals(before)


def test_compare_user_errors():
    ds = _survey()
    with pytest.raises(SafemicroError, match="'sexx', which is not a column"):
        compare(ds, ds, roles=ROLES, utility=Utility(indicators=[Indicator(variable="sexx")]))
    text = ds.with_frame(ds.frame.with_columns(pl.col("sex").cast(pl.String).alias("sex")))
    with pytest.raises(SafemicroError, match="needs a numeric variable"):
        compare(text, text, roles=ROLES, utility=Utility(indicators=[Indicator(variable="sex", kind="mean")]))
    with pytest.raises(SafemicroError, match="not a value"):
        compare(
            ds, ds, roles=ROLES, utility=Utility(indicators=[Indicator(variable="sex", kind="proportion", value=7)])
        )
    with pytest.raises(SafemicroError, match="two values"):
        compare(
            ds,
            ds,
            roles=ROLES,
            utility=Utility(regressions=[Regression(outcome="hhsize", predictors=["age"], kind="logistic")]),
        )
    negative = ds.with_frame(
        ds.frame.with_columns(pl.when(pl.col(ROW_ID) == 5).then(-1.0).otherwise(pl.col("w")).alias("w"))
    )
    with pytest.raises(SafemicroError, match="non-negative") as err:
        compare(negative, negative, roles=ROLES)
    assert err.value.row == 6 and err.value.column == "w"


def test_marginal_keeps_top_categories_for_plots():
    frame = pl.DataFrame({"k": list(range(20)) * 5 + [0] * 10, "w": [2.0] * 110}).with_row_index(ROW_ID)
    released = frame.with_columns(pl.when(pl.col("k") >= 18).then(99).otherwise(pl.col("k")).alias("k"))
    out = compare(Dataset(frame), Dataset(released), roles=Roles(keys=["k"], weight="w"), top=3)
    (row,) = [v for v in out["variables"] if v["variable"] != "w"]
    assert [m["kind"] for m in row["marginal"]] == ["value", "value", "value", "other"]
    assert [m["value"] for m in row["marginal"][:2]] == [0, 99]  # largest share on either side
    other = row["marginal"][-1]
    assert other["label"] == "18 other categories"
    assert sum(m["count_before"] for m in row["marginal"]) == 110
    assert sum(m["share_weighted_after"] for m in row["marginal"]) == pytest.approx(1.0)
    assert row["tvd"] == pytest.approx(10 / 110) and row["changed"] == 10


def test_new_household_ids_alone_do_not_change_records():
    ds = _survey()
    roles = ROLES.model_copy(update={"household": "hh"})
    frame = ds.frame.with_columns((pl.col(ROW_ID) // 3).alias("hh"))
    ds = ds.with_frame(frame)
    renumbered = ds.with_frame(frame.with_columns((pl.col("hh") + 1000).alias("hh")))
    out = compare(ds, renumbered, roles=roles)
    hh = next(v for v in out["variables"] if v["variable"] == "hh")
    assert hh["kind"] == "id" and hh["changed"] == ds.n and "tvd" not in hh
    assert out["rows"]["records_changed"] == 0
