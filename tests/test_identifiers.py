"""Removing identifiers and variables; new random ids and row order, households kept together."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safemicro.errors import SafemicroError
from safemicro.examples.survey import generate_survey
from safemicro.io import Dataset
from safemicro.io.dataset import Codebook, VariableMeta
from safemicro.methods.base import ROW_ID, STEPS, StepContext
from safemicro.methods.identifiers import new_ids, remove_variables
from safemicro.plan import Plan, Roles, Targets

EXAMPLE_PLAN = Plan.from_yaml(
    """
roles:
  direct_ids: [head_name, phone, gps_lat, gps_lon]
  household: hhid
"""
)


@pytest.fixture(scope="module")
def survey() -> Dataset:
    ds = generate_survey(n_households=120, seed=3)
    return Dataset(ds.frame.with_columns(pl.int_range(pl.len()).alias(ROW_ID)), ds.codebook)


def _ctx(ds: Dataset, roles: Roles) -> StepContext:
    return StepContext(roles, Targets(), 1.0, 13, 1, tuple(ds.columns))


# -- removing -------------------------------------------------------------------------------


def test_remove_direct_ids_step(survey):
    spec = STEPS["remove_direct_ids"]
    ctx = _ctx(survey, EXAMPLE_PLAN.roles)
    params = spec.params.model_validate({})
    direct = ["head_name", "phone", "gps_lat", "gps_lon"]
    assert params.reads(ctx) == direct and params.removes(ctx) == direct
    res = spec.run(survey, params, ctx)
    out = res.dataset
    assert not set(direct) & set(out.columns)
    assert not set(direct) & set(out.codebook.variables)
    assert out.columns == [c for c in survey.columns if c not in direct]
    assert out.frame.equals(survey.frame.drop(direct))
    assert survey.columns[1:3] == ["head_name", "phone"]  # input untouched
    assert res.change.method == "remove_direct_ids" and res.change.details["removed"] == direct
    assert spec.describe(params, res.change) == (
        "The direct identifiers head_name, phone, gps_lat, gps_lon were removed from the file."
    )
    # no direct ids named anywhere: nothing happens, the change says so
    empty = spec.run(survey, params, _ctx(survey, Roles()))
    assert empty.dataset.frame.equals(survey.frame) and empty.change.notes
    explicit = spec.params.model_validate({"variables": ["phone"]})
    assert spec.run(survey, explicit, ctx).dataset.columns == [c for c in survey.columns if c != "phone"]


def test_remove_variables(survey):
    res = remove_variables(survey, variables=["cluster", "income"])
    assert "cluster" not in res.dataset.columns and "income" not in res.dataset.columns
    assert res.dataset.codebook.meta("camp").value_labels == survey.codebook.meta("camp").value_labels
    spec = STEPS["remove_variables"]
    params = spec.params.model_validate({"variables": ["cluster"]})
    ctx = _ctx(survey, Roles())
    assert params.removes(ctx) == ["cluster"]
    assert "cluster" in spec.describe(params, spec.run(survey, params, ctx).change)
    with pytest.raises(ValueError):
        spec.params.model_validate({"variables": []})
    for bad, message in [("nope", "no such column"), (["age", "age"], "twice"), ([3], "names")]:
        with pytest.raises(SafemicroError, match=message):
            remove_variables(survey, variables=bad)


# -- new ids ----------------------------------------------------------------------------------


def _check_new_ids(before: pl.DataFrame, after: pl.DataFrame, hh: str) -> None:
    """Ids 1..H, one new id per old household, members adjacent in their original order."""
    n_households = before[hh].n_unique()
    assert sorted(after[hh].unique().to_list()) == list(range(1, n_households + 1))
    old = before[hh].to_numpy()[after[ROW_ID].to_numpy()]
    pairs = pl.DataFrame({"old": old, "new": after[hh]}).unique()
    assert pairs.height == n_households  # a bijection old <-> new
    new = after[hh].to_numpy()
    assert (np.diff(new) >= 0).all()  # households adjacent, ids running down the file
    rows = after[ROW_ID].to_numpy()
    same = new[1:] == new[:-1]
    assert (rows[1:][same] > rows[:-1][same]).all()  # original order within a household


def test_new_ids_on_the_survey(survey):
    res = new_ids(survey, household="hhid", seed=7)
    out = res.dataset.frame
    _check_new_ids(survey.frame, out, "hhid")
    assert out.schema == survey.frame.schema and out.columns == survey.columns
    # same rows apart from the id
    assert out.drop("hhid").sort(ROW_ID).equals(survey.frame.drop("hhid"))
    assert (out[ROW_ID].to_numpy() != np.arange(survey.n)).any()
    assert res.change.details["households"] == 120 and res.change.details["rows_shuffled"]
    assert res.change.changed["hhid"] > 0.9 * survey.n
    again = new_ids(survey, household="hhid", seed=7)
    other = new_ids(survey, household="hhid", seed=8)
    assert again.dataset.frame.equals(out) and not other.dataset.frame.equals(out)


households = st.lists(st.integers(1, 8), min_size=1, max_size=60)


@settings(max_examples=100, deadline=None)
@given(households, st.integers(0, 2**32 - 1))
def test_new_ids_property(hh_values, seed):
    frame = pl.DataFrame({"hh": hh_values, ROW_ID: range(len(hh_values)), "x": [v * 10 for v in hh_values]})
    ds = Dataset(frame)
    out = new_ids(ds, household="hh", seed=seed).dataset.frame
    _check_new_ids(frame, out, "hh")
    assert sorted(out.drop("hh").rows()) == sorted(frame.drop("hh").rows())  # same multiset
    kept = new_ids(ds, household="hh", shuffle_rows=False, seed=seed).dataset.frame
    assert kept[ROW_ID].to_list() == list(range(len(hh_values)))
    # consistent renumbering without moving rows
    assert pl.DataFrame({"a": frame["hh"], "b": kept["hh"]}).unique().height == frame["hh"].n_unique()


def test_record_ids_and_missing_household_ids():
    frame = pl.DataFrame(
        {
            "hh": [5, 5, None, 9, 9, 9, -1],
            "pid": ["a", "b", "c", "d", "e", "f", "g"],
            ROW_ID: range(7),
        }
    )
    cb = Codebook({"hh": VariableMeta("hh", value_labels={5: "five"}, missing_values=[-1])})
    ds = Dataset(frame, cb)
    res = new_ids(ds, household="hh", record="pid", seed=1)
    out = res.dataset.frame
    assert out["pid"].dtype == pl.Int64 and out["pid"].to_list() == list(range(1, 8))
    missing_rows = out.filter(pl.col(ROW_ID).is_in([2, 6]))
    assert missing_rows.sort(ROW_ID)["hh"].to_list() == [None, -1]  # missing stays missing
    assert sorted(out["hh"].drop_nulls().filter(out["hh"].drop_nulls() > 0).unique()) == [1, 2]
    assert res.dataset.codebook.meta("hh").value_labels == {}
    assert res.dataset.codebook.meta("hh").missing_values == [-1]
    assert out.schema["hh"] == frame.schema["hh"]
    assert res.change.details["households"] == 2
    # no household: rows shuffled individually, record ids follow the new order
    alone = new_ids(ds, record="pid", seed=2).dataset.frame
    assert alone["pid"].to_list() == list(range(1, 8))
    assert sorted(alone[ROW_ID]) == list(range(7))
    # ids renumbered in place without shuffling
    fixed = new_ids(ds, record="pid", shuffle_rows=False, seed=2).dataset.frame
    assert fixed[ROW_ID].to_list() == list(range(7)) and sorted(fixed["pid"]) == list(range(1, 8))


def test_text_household_ids_become_integers_and_extended_missing_moves():
    frame = pl.DataFrame({"hh": ["H-01", "H-01", "H-02", "H-03"], "x": [1.0, None, 2.0, None]})
    cb = Codebook({"hh": VariableMeta("hh", format="%5s")}, extended_missing={"x": {1: "a", 3: "b"}})
    ds = Dataset(frame, cb)
    res = new_ids(ds, household="hh", seed=4)
    out = res.dataset
    assert out.frame["hh"].dtype == pl.Int64 and out.codebook.meta("hh").format is None
    ext = out.codebook.extended_missing["x"]
    assert sorted(ext.values()) == ["a", "b"]
    assert all(out.frame["x"][i] is None for i in ext)
    assert ds.codebook.extended_missing["x"] == {1: "a", 3: "b"}


def test_categorical_household_ids():
    frame = pl.DataFrame({"hh": pl.Series(["b", "a", "b", None], dtype=pl.Categorical)})
    out = new_ids(Dataset(frame), household="hh", seed=0).dataset.frame
    assert out["hh"].dtype == pl.Int64
    ids = out["hh"].drop_nulls().to_list()
    assert set(ids) == {1, 2} and sorted(ids.count(i) for i in (1, 2)) == [1, 2]
    assert out["hh"].null_count() == 1


def test_new_ids_errors():
    ds = Dataset(pl.DataFrame({"hh": [1, 2], "x": [1, 2]}))
    with pytest.raises(SafemicroError, match="no such column"):
        new_ids(ds, household="nope")
    with pytest.raises(SafemicroError, match="different columns"):
        new_ids(ds, household="hh", record="hh")
    with pytest.raises(SafemicroError, match="nothing to do"):
        new_ids(ds, shuffle_rows=False)


def test_new_ids_step(survey):
    spec = STEPS["new_ids"]
    assert spec.random and spec.reorders and not spec.perturbative
    ctx = _ctx(survey, EXAMPLE_PLAN.roles)
    params = spec.params.model_validate({"variable": "hhid"})  # as in the example plan
    assert params.reads(ctx) == ["hhid"]
    assert spec.params.model_validate({}).reads(ctx) == ["hhid"]  # default: roles.household
    res = spec.run(survey, params, ctx)
    assert res.change.seed == 13
    _check_new_ids(survey.frame, res.dataset.frame, "hhid")
    text = spec.describe(params, res.change)
    assert "household ids (hhid)" in text and "random order" in text and "13" not in text
    with pytest.raises(ValueError, match="different"):
        spec.params.model_validate({"record": "hhid"}).check(ctx)
