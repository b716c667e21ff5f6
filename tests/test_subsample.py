"""Subsampling: sizes, whole households, proportional allocation, weights, errors, plan step."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SDC_DATA
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.io.dataset import Codebook, VariableMeta
from safemicro.methods.base import ROW_ID, STEPS, StepContext
from safemicro.methods.sampling import _allocate, subsample
from safemicro.plan import Roles, Targets


@pytest.fixture(scope="module")
def testdata() -> Dataset:
    df = pl.read_csv(SDC_DATA / "testdata.csv").with_columns(pl.int_range(pl.len()).alias(ROW_ID))
    return Dataset(df)


def _census(n_households=400, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    size = rng.integers(1, 8, size=n_households)
    hh = np.repeat(np.arange(1, n_households + 1), size)
    region = rng.integers(1, 5, size=n_households)[hh - 1]
    frame = pl.DataFrame(
        {
            "hh": hh,
            "region": region,
            "age": rng.integers(0, 90, size=len(hh)),
            ROW_ID: np.arange(len(hh)),
        }
    )
    return Dataset(frame)


# -- allocation ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=20), st.floats(0.0, 1.0))
def test_allocation_is_proportional_and_adds_up(pop, share):
    pop = np.array(pop)
    total = max(1, round(share * pop.sum()))
    take = _allocate(total, pop)
    assert take.sum() == total
    assert (take <= pop).all() and (take >= 0).all()
    quota = total * pop / pop.sum()
    assert (np.abs(take - quota) < 1).all()  # largest remainder: within one unit of the quota


# -- records ---------------------------------------------------------------------------------


def test_simple_random_sample_of_records(testdata):
    res = subsample(testdata, fraction=0.05, weight="sampling_weight", seed=1)
    out = res.dataset.frame
    assert out.height == round(0.05 * testdata.n) == 229
    assert out.columns == testdata.columns
    rows = out[ROW_ID].to_numpy()
    assert (np.diff(rows) > 0).all()  # original order kept
    # every kept row is the original row, only the weight changed (100 * 4580 / 229 = 2000)
    orig = testdata.frame[rows.tolist()]
    assert out.drop("sampling_weight").equals(orig.drop("sampling_weight"))
    assert out["sampling_weight"].dtype == pl.Float64
    np.testing.assert_allclose(out["sampling_weight"].to_numpy(), 100 * 4580 / 229)
    assert res.change.changed == {"sampling_weight": 229}
    assert res.change.details["records_removed"] == 4580 - 229
    assert res.change.details["unit"] == "record"


def test_integer_weight_becomes_float_without_integer_format():
    frame = pl.DataFrame({"w": [3, 3, 3, 3]})
    ds = Dataset(frame, Codebook({"w": VariableMeta("w", format="%8.0g", label="Weight")}))
    out = subsample(ds, n=3, weight="w", seed=0).dataset
    np.testing.assert_allclose(out.frame["w"], 4.0)
    assert out.codebook.meta("w").format is None and out.codebook.meta("w").label == "Weight"


def test_n_and_new_weight_column_and_determinism():
    ds = _census()
    a = subsample(ds, n=100, seed=3)
    b = subsample(ds, n=100, seed=3)
    c = subsample(ds, n=100, seed=4)
    assert a.dataset.frame.equals(b.dataset.frame) and a.change.seed == 3
    assert not a.dataset.frame.equals(c.dataset.frame)
    out = a.dataset.frame
    assert out.height == 100 and out.columns == [*ds.columns, "weight"]
    np.testing.assert_allclose(out["weight"].to_numpy(), ds.n / 100)
    assert a.dataset.codebook.meta("weight").label.startswith("Sampling weight")
    assert a.change.details["weight_created"]


# -- households and strata ------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.02, 0.1, 0.5, 1.0]))
def test_whole_households_within_strata(seed, fraction):
    ds = _census(seed=seed % 7)
    res = subsample(ds, fraction=fraction, by="hh", strata="region", seed=seed)
    out = res.dataset.frame
    full = ds.frame.group_by("hh").len()
    kept = out.group_by("hh").len().join(full, on="hh", suffix="_full")
    assert (kept["len"] == kept["len_full"]).all()  # every sampled household is complete
    # per region: n_h as allocated; the new weights N_h / n_h sum to N_h households
    pop = ds.frame.group_by("region").agg(pl.col("hh").n_unique().alias("N")).sort("region")
    take = _allocate(round(fraction * ds.frame["hh"].n_unique()), pop["N"].to_numpy())
    got = out.group_by("region").agg(pl.col("hh").n_unique().alias("n"), pl.col("weight").first())
    got = pop.join(got, on="region", how="left").fill_null(0)
    assert got["n"].to_list() == take.tolist()
    sampled = got.filter(pl.col("n") > 0)
    np.testing.assert_allclose(sampled["weight"], sampled["N"] / sampled["n"])
    hh_weight = out.group_by("hh").agg(pl.col("weight").first(), pl.col("region").first())
    totals = hh_weight.group_by("region").agg(pl.col("weight").sum()).sort("region")
    np.testing.assert_allclose(totals["weight"], sampled.sort("region")["N"])
    assert res.change.details["unit"] == "household"
    assert [s["sample_units"] for s in res.change.details["strata"]] == take.tolist()


def test_weighted_totals_are_unbiased():
    """Horvitz-Thompson: the average estimated total over 300 samples equals the census total."""
    ds = _census(seed=2)
    frame = ds.frame.with_columns(pl.Series("w", np.full(ds.n, 2.0)))
    ds = Dataset(frame)
    truth = float((frame["age"] * frame["w"]).sum())
    est = []
    for s in range(300):
        out = subsample(ds, fraction=0.1, by="hh", strata="region", weight="w", seed=s).dataset
        est.append(float((out.frame["age"] * out.frame["w"]).sum()))
    est = np.array(est)
    assert abs(est.mean() - truth) < 3.5 * est.std(ddof=1) / np.sqrt(len(est))


def test_missing_household_ids_are_single_units_and_missing_weights_stay():
    frame = pl.DataFrame(
        {
            "hh": [1, 1, None, None, 2, 2, 3],
            "w": [10.0, 10.0, None, -9.0, 5.0, 5.0, 1.0],
        }
    )
    ds = Dataset(frame, Codebook({"w": VariableMeta("w", missing_values=[-9.0])}))
    res = subsample(ds, fraction=1.0, by="hh", weight="w", seed=0)
    assert res.dataset.frame.equals(frame)
    assert res.change.details["population_units"] == 5
    assert any("without a hh" in n for n in res.change.notes)
    res = subsample(ds, n=5, by="hh", weight="w", seed=0)  # all 5 units: factor 1
    assert res.dataset.frame["w"].to_list() == frame["w"].to_list()


@pytest.mark.parametrize("seed", range(5))
def test_extended_missing_codes_follow_their_rows(seed):
    frame = pl.DataFrame({"r": range(6), "x": [1, None, 3, None, 5, 6]})
    ds = Dataset(frame, Codebook(extended_missing={"x": {1: "a", 3: "b"}}))
    res = subsample(ds, n=3, seed=seed)
    kept = res.dataset.frame["r"].to_list()
    expected = {i: {1: "a", 3: "b"}[r] for i, r in enumerate(kept) if r in (1, 3)}
    assert res.dataset.codebook.extended_missing["x"] == expected
    assert ds.codebook.extended_missing["x"] == {1: "a", 3: "b"}  # input untouched


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one"),
        ({"fraction": 0.1, "n": 5}, "exactly one"),
        ({"fraction": 0.0}, "(0, 1]"),
        ({"fraction": 1.5}, "(0, 1]"),
        ({"fraction": "half"}, "number"),
        ({"fraction": 0.0001}, "empty sample"),
        ({"n": 0}, "positive whole"),
        ({"n": 2.5}, "positive whole"),
        ({"n": 10_000}, "only"),
        ({"n": 5, "by": "nope"}, "no such column"),
        ({"n": 5, "weight": "region_name"}, "numeric"),
        ({"n": 5, "weight_name": "age"}, "exists already"),
        ({"n": 5, "by": "hh", "strata": "age"}, "more than one stratum"),
    ],
)
def test_errors(kwargs, message):
    ds = _census()
    ds = Dataset(ds.frame.with_columns(pl.col("region").cast(pl.String).alias("region_name")))
    with pytest.raises(SafemicroError) as err:
        subsample(ds, **kwargs)
    assert message in str(err.value)


# -- plan step ------------------------------------------------------------------------------


def test_step_defaults_from_roles():
    ds = _census()
    ds = Dataset(ds.frame.with_columns(pl.lit(3.0).alias("wt")))
    spec = STEPS["subsample"]
    assert spec.random and spec.reorders
    ctx = StepContext(Roles(household="hh", strata="region", weight="wt"), Targets(), 1.0, 9, 1, tuple(ds.columns))
    params = spec.params.model_validate({"fraction": 0.05, "households": True})
    params.check(ctx)
    assert params.reads(ctx) == ["hh", "region", "wt"]
    res = spec.run(ds, params, ctx)
    assert res.change.seed == 9
    assert res.change.params["by"] == "hh" and res.change.params["strata"] == ["region"]
    assert res.dataset.columns == ds.columns  # existing weight reused, no new column
    text = spec.describe(params, res.change)
    assert "5 %" in text and "households" in text and "'wt'" in text
    no_strata = spec.run(ds, spec.params.model_validate({"n": 20, "strata": []}), ctx)
    assert no_strata.change.params["strata"] is None and no_strata.dataset.n == 20
    with pytest.raises(ValueError, match="exactly one"):
        spec.params.model_validate({}).check(ctx)
    bare = StepContext(Roles(), Targets(), 1.0, 9, 1, tuple(ds.columns))
    with pytest.raises(ValueError, match="roles.household"):
        spec.params.model_validate({"n": 5, "households": True}).check(bare)
    with pytest.raises(ValueError, match="already a column"):
        spec.params.model_validate({"n": 5, "weight_name": "age"}).check(bare)
