"""Global recoding and top/bottom coding: sdcMicro parity, labels, missing codes, plan steps."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import KV7
from safemicro.assess import assess
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.io.dataset import Codebook, VariableMeta
from safemicro.keys import build_key_table
from safemicro.methods import STEPS, global_recode, top_bottom_code
from safemicro.methods.base import StepContext
from safemicro.methods.recode import Bands, resolve_bands
from safemicro.plan import Roles, Targets


def label_table(ds: Dataset, variable: str) -> dict[str, int]:
    """Counts per value label ("NA" for missing), as R's table(..., useNA) would print."""
    labels = ds.codebook.meta(variable).value_labels
    col = ds.frame.get_column(variable)
    text = col.replace_strict({k: v for k, v in labels.items()}, default=None, return_dtype=pl.String)
    counts = text.fill_null("NA").value_counts()
    return dict(zip(counts[variable].to_list(), counts["count"].to_list()))


def ctx_for(ds: Dataset, **roles) -> StepContext:
    return StepContext(roles=Roles(**roles), targets=Targets(), alpha=1.0, seed=1, index=1, columns=tuple(ds.columns))


# -- sdcMicro parity ---------------------------------------------------------------------------


def test_explicit_breaks_match_sdcmicro(testdata, reference):
    ref = reference["globalRecode"]["age_explicit_breaks"]["table"]
    res = global_recode(Dataset(testdata), variable="age", breaks=[0, 14, 24, 34, 44, 54, 64, 100], labels="interval")
    assert label_table(res.dataset, "age") == ref
    assert res.change.details["outside"] == ref["NA"] == 98
    assert res.change.suppressed == {"age": 98}
    assert any("98 value(s)" in n for n in res.change.notes)
    assert res.dataset.frame["age"].dtype.is_integer()


def test_equal_width_breaks_match_sdcmicro(testdata, reference):
    ref = reference["globalRecode"]["age_breaks6_equidistant"]["table"]
    res = global_recode(Dataset(testdata), variable="age", breaks=6, labels="interval")
    assert label_table(res.dataset, "age") == ref
    assert res.change.details["breaks"] == [-1, 15, 31, 48, 64, 80, 96]
    # the default labels for whole numbers are plain ranges over the same bands
    plain = global_recode(Dataset(testdata), variable="age", breaks=6)
    assert [b["label"] for b in plain.change.details["bands"]] == [
        "-1 to 15",
        "16-31",
        "32-48",
        "49-64",
        "65-80",
        "81-96",
    ]
    assert (plain.dataset.frame["age"] == res.dataset.frame["age"]).all()


def test_log_equal_width_rejects_zero_like_sdcmicro(testdata, reference):
    assert reference["globalRecode"]["age_breaks6_logEqui"]["result"].startswith("ERROR")
    with pytest.raises(SafemicroError, match="above 0"):
        global_recode(Dataset(testdata), variable="age", breaks=6, method="log_equal_width")
    res = global_recode(Dataset(testdata), variable="income", breaks=4, method="log_equal_width")
    assert res.dataset.frame["income"].null_count() == 0
    assert len(res.change.details["bands"]) == 4


def test_water_breaks3_table_and_risk_after(testdata, reference):
    ref = reference["globalRecode"]["sdcObj_water_breaks3"]
    res = global_recode(Dataset(testdata), variable="water", breaks=3, labels="interval")
    assert label_table(res.dataset, "water") == ref["table"]
    a = assess(res.dataset, keys=KV7, weight="sampling_weight", household="ori_hid")
    g, h = a.summary["global_risk"], a.summary["household_risk"]
    np.testing.assert_allclose(g["mean"], ref["risk_after"]["risk"], rtol=1e-12)
    np.testing.assert_allclose(g["expected_reidentifications"], ref["risk_after"]["risk_ER"], rtol=1e-12)
    np.testing.assert_allclose(h["mean"], ref["risk_after"]["hier_risk"], rtol=1e-10)
    kt = build_key_table(res.dataset.frame, KV7)
    assert int((kt.record_fk() == 1).sum()) == ref["n_fk_eq1_after"]


def test_top_bottom_coding_match_sdcmicro(testdata, reference):
    ref = reference["topBotCoding"]
    ds = Dataset(testdata)
    top = top_bottom_code(ds, variable="age", value=80, replacement=81)
    assert top.change.details["n_coded"] == ref["age_top80"]["n_changed"]
    age = top.dataset.frame["age"]
    assert [age.min(), age.max()] == ref["age_top80"]["range_after"]
    bottom = top_bottom_code(ds, variable="income", value=1e6, kind="bottom")
    assert bottom.change.details["n_coded"] == bottom.change.changed["income"] == ref["income_bottom1e6"]["n_changed"]
    assert bottom.dataset.frame["income"].min() == ref["income_bottom1e6"]["min_after"]
    big = top_bottom_code(ds, variable="income", value=500000, replacement=1000)
    assert big.change.changed["income"] == ref["sdcObj_income_top500000"]["n_changed"]
    assert big.change.records_touched == 4545


# -- bands ---------------------------------------------------------------------------------


def test_right_open_bands_with_range_labels_and_lower_codes():
    ds = Dataset(pl.DataFrame({"age": pl.Series([0, 4, 5, 17, 18, 59, 60, 120], dtype=pl.Int32)}))
    breaks = [0, 5, 10, 15, 18, 25, 35, 45, 60, 200]
    res = global_recode(ds, variable="age", breaks=breaks, right=False)
    labels = [b["label"] for b in res.change.details["bands"]]
    assert labels == ["0-4", "5-9", "10-14", "15-17", "18-24", "25-34", "35-44", "45-59", "60-199"]
    assert res.dataset.frame["age"].to_list() == [1, 1, 2, 4, 5, 8, 9, 9]
    assert res.dataset.frame["age"].dtype == pl.Int32  # integer type kept
    assert res.dataset.codebook.meta("age").value_labels[4] == "15-17"
    low = global_recode(ds, variable="age", breaks=breaks, right=False, codes="lower")
    assert low.dataset.frame["age"].to_list() == [0, 0, 5, 15, 18, 45, 60, 60]
    assert low.dataset.codebook.meta("age").value_labels[60] == "60-199"
    assert (
        global_recode(ds, variable="age", breaks=breaks, right=False, labels="interval").change.details["bands"][0][
            "label"
        ]
        == "[0,5)"
    )


def test_explicit_labels_and_infinite_breaks():
    ds = Dataset(pl.DataFrame({"x": [0.5, 1.5, 2.5, 1e9]}))
    res = global_recode(ds, variable="x", breaks=[float("-inf"), 1, 2, float("inf")])
    assert [b["label"] for b in res.change.details["bands"]] == ["(-Inf,1]", "(1,2]", "(2,Inf]"]
    assert res.dataset.frame["x"].to_list() == [1, 2, 3, 3]
    named = global_recode(ds, variable="x", breaks=[0, 1, 2, 1e10], labels=["low", "mid", "high"])
    assert named.dataset.codebook.meta("x").value_labels == {1: "low", 2: "mid", 3: "high"}
    whole = Dataset(pl.DataFrame({"n": [1, 5, 12]}))
    res = global_recode(whole, variable="n", breaks=[0, 9, float("inf")], labels={2: "10 or more"})
    assert res.dataset.codebook.meta("n").value_labels == {1: "1-9", 2: "10 or more"}


def test_quantile_bands_merge_coinciding_breaks():
    ds = Dataset(pl.DataFrame({"x": [1] * 8 + [2, 3]}))
    res = global_recode(ds, variable="x", breaks=4, method="quantile")
    assert len(res.change.details["bands"]) < 4
    assert any("coincided" in n for n in res.change.notes)
    assert res.dataset.frame["x"].null_count() == 0  # include_lowest keeps the minimum
    again = global_recode(ds, variable="x", breaks=4, method="quantile")
    assert again.dataset.frame.equals(res.dataset.frame)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.integers(-20, 20), min_size=1, max_size=30),
    breaks=st.lists(st.integers(-25, 25), min_size=2, max_size=6, unique=True),
    right=st.booleans(),
    include_lowest=st.booleans(),
)
def test_band_assignment_is_cut(values, breaks, right, include_lowest):
    bands = Bands(tuple(float(b) for b in sorted(breaks)), right, include_lowest)
    got = bands.assign(np.asarray(values, dtype=float))
    br = sorted(breaks)
    for x, band in zip(values, got):
        expect = 0
        for i in range(1, len(br)):
            a, b = br[i - 1], br[i]
            if right:
                inside = a < x <= b or (include_lowest and i == 1 and x == a)
            else:
                inside = a <= x < b or (include_lowest and i == len(br) - 1 and x == b)
            if inside:
                expect = i
        assert band == expect
    # range labels describe exactly the whole numbers of each band
    ranges = bands.whole_ranges()
    if ranges is not None:
        for x, band in zip(values, got):
            if band:
                lo, hi = ranges[band - 1]
                assert lo <= x <= hi


def test_resolve_bands_rejects_bad_breaks():
    with pytest.raises(SafemicroError, match="distinct"):
        resolve_bands(np.array([1.0]), [1, 2, 2])
    with pytest.raises(SafemicroError, match="at least two"):
        resolve_bands(np.array([1.0]), [1])
    with pytest.raises(SafemicroError, match="number of bands"):
        resolve_bands(np.array([1.0]), [1, 2], method="quantile")


# -- missing values, purity, labels --------------------------------------------------------


def labelled() -> Dataset:
    frame = pl.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "hh_size": pl.Series([2, 11, 99, None, 14, 10], dtype=pl.Int32),
            "origin": [1, 6, 7, 8, 98, None],
            "z": ["a", "b", "c", "d", "e", "f"],
        }
    )
    cb = Codebook(
        variables={
            "hh_size": VariableMeta("hh_size", missing_values=[99], value_labels={99: "Don't know", 10: "10"}),
            "origin": VariableMeta(
                "origin",
                missing_values=[98],
                value_labels={1: "South Sudan", 6: "Eritrea", 7: "Rwanda", 8: "Ethiopia", 98: "Refused"},
            ),
        }
    )
    return Dataset(frame, cb)


def test_user_missing_codes_are_not_recoded_and_input_is_untouched():
    ds = labelled()
    before_frame = ds.frame.clone()
    before_cb = copy.deepcopy(ds.codebook)
    res = top_bottom_code(ds, variable="hh_size", value=10)
    assert res.dataset.frame["hh_size"].to_list() == [2, 10, 99, None, 10, 10]
    assert res.dataset.frame["hh_size"].dtype == pl.Int32
    assert res.change.changed == {"hh_size": 2} and res.change.details["n_coded"] == 2
    assert res.dataset.codebook.meta("hh_size").value_labels == {99: "Don't know", 10: "10 or more"}
    bands = global_recode(ds, variable="hh_size", breaks=[0, 5, 50])
    assert bands.dataset.frame["hh_size"].to_list() == [1, 2, 99, None, 2, 2]
    assert bands.dataset.codebook.meta("hh_size").value_labels == {1: "1-5", 2: "6-50", 99: "Don't know"}
    merged = global_recode(ds, variable="origin", map={6: 9, 7: 9, 8: 9}, labels={9: "Other"})
    assert merged.dataset.frame["origin"].to_list() == [1, 9, 9, 9, 98, None]
    assert merged.dataset.codebook.meta("origin").value_labels == {1: "South Sudan", 9: "Other", 98: "Refused"}
    for r in (res, bands, merged):
        assert r.dataset.columns == ds.columns
        assert r.dataset.frame.select("id", "z").equals(ds.frame.select("id", "z"))
    assert ds.frame.equals(before_frame)
    assert ds.codebook == before_cb


def test_map_default_labels_and_errors():
    ds = labelled()
    merged = global_recode(ds, variable="origin", map={6: 9, 7: 9, 8: 9})
    assert merged.dataset.codebook.meta("origin").value_labels[9] == "Eritrea / Rwanda / Ethiopia"
    assert merged.change.details["merges"] == [{"into": 9, "from": [6, 7, 8], "label": "Eritrea / Rwanda / Ethiopia"}]
    into_existing = global_recode(ds, variable="origin", map={"7": "1"})  # JSON-style text keys
    assert into_existing.dataset.frame["origin"].to_list() == [1, 6, 1, 8, 98, None]
    assert into_existing.dataset.codebook.meta("origin").value_labels[1] == "South Sudan"
    assert 7 not in into_existing.dataset.codebook.meta("origin").value_labels
    with pytest.raises(SafemicroError, match="user-missing"):
        global_recode(ds, variable="origin", map={98: 9})
    with pytest.raises(SafemicroError, match="user-missing"):
        global_recode(ds, variable="origin", map={6: 98})
    with pytest.raises(SafemicroError, match="exactly one"):
        global_recode(ds, variable="origin", map={6: 9}, breaks=[0, 10])
    with pytest.raises(SafemicroError, match="no column"):
        global_recode(ds, variable="nope", breaks=[0, 1])
    with pytest.raises(SafemicroError, match="numeric"):
        global_recode(ds, variable="z", breaks=[0, 1])
    with pytest.raises(SafemicroError, match="text"):
        global_recode(ds, variable="origin", map={6: "other"})
    with pytest.raises(SafemicroError, match="user-missing"):
        top_bottom_code(ds, variable="hh_size", value=50, replacement=99)
    unused = global_recode(ds, variable="origin", map={5: 9})
    assert unused.change.changed == {"origin": 0} and unused.change.notes


def test_hierarchy_from_mapping_and_arx_csv(tmp_path):
    ds = labelled()
    table = {1: ["East", "*"], 6: ["Horn", "*"], 7: ["East", "*"], 8: ["Horn", "*"]}
    res = global_recode(ds, variable="origin", hierarchy=table, level=1)
    assert res.dataset.frame["origin"].to_list() == [1, 2, 1, 2, 98, None]
    assert res.dataset.codebook.meta("origin").value_labels == {1: "East", 2: "Horn", 98: "Refused"}
    assert res.change.details["categories"] == 2
    path = tmp_path / "origin.csv"
    path.write_text("1;East;*\n6;Horn;*\n7;East;*\n8;Horn;*\n")
    top = global_recode(ds, variable="origin", hierarchy=str(path), level=2)
    assert top.dataset.frame["origin"].to_list() == [1, 1, 1, 1, 98, None]
    numeric = global_recode(ds, variable="origin", hierarchy={1: 10, 6: 20, 7: 10, 8: 20})
    assert numeric.dataset.frame["origin"].to_list() == [10, 20, 10, 20, 98, None]
    text = Dataset(pl.DataFrame({"s": ["a", "b", None]}))
    assert global_recode(text, variable="s", hierarchy={"a": "ab", "b": "ab"}).dataset.frame["s"].to_list() == [
        "ab",
        "ab",
        None,
    ]
    with pytest.raises(SafemicroError, match="no row"):
        global_recode(ds, variable="origin", hierarchy={1: "x"})
    with pytest.raises(SafemicroError, match="level"):
        global_recode(ds, variable="origin", hierarchy=table, level=3)


# -- plan steps ----------------------------------------------------------------------------


def test_example_plan_spellings_run_as_steps():
    from safemicro.examples import generate_survey

    ds = generate_survey(n_households=200, seed=3)
    ctx = ctx_for(ds)
    steps = [
        ("recode", {"variable": "age", "breaks": [0, 5, 10, 15, 18, 25, 35, 45, 60, 200], "right": False}),
        ("topcode", {"variable": "hh_size", "value": 10}),
        (
            "recode",
            {"variable": "origin", "map": {6: 9, 7: 9, 8: 9}, "labels": {9: "Other (Eritrea, Rwanda, Ethiopia)"}},
        ),
    ]
    current = ds
    for name, raw in steps:
        spec = STEPS[name]
        params = spec.params.model_validate(raw)
        params.check(ctx)
        assert params.reads(ctx) == [raw["variable"]]
        res = spec.run(current, params, ctx)
        text = spec.describe(params, res.change)
        assert raw["variable"] in text and "seed" not in text
        current = res.dataset
    f = current.frame
    assert f["age"].max() <= 9 and f["age"].null_count() == 0
    assert f["hh_size"].max() == 10
    assert set(f["origin"].unique()) <= {1, 2, 3, 4, 5, 9}
    assert current.codebook.meta("origin").value_labels[9].startswith("Other")
    assert current.codebook.meta("age").value_labels[1] == "0-4"


def test_step_parameters_are_checked():
    from pydantic import ValidationError

    spec = STEPS["recode"]
    with pytest.raises(ValidationError, match="exactly one"):
        spec.params.model_validate({"variable": "age"})
    with pytest.raises(ValidationError):
        spec.params.model_validate({"variable": "age", "breaks": [0, 1], "brakes": 3})
    with pytest.raises(ValidationError, match="labels must be a mapping"):
        spec.params.model_validate({"variable": "o", "map": {1: 2}, "labels": "interval"})
    p = spec.params.model_validate({"variable": "age", "breaks": 6})
    assert p.breaks == 6
    assert STEPS["bottomcode"].params.model_validate({"variable": "x", "value": 3}).replacement is None


def test_describe_bands_and_merges(testdata):
    ds = Dataset(testdata)
    params = STEPS["recode"].params.model_validate({"variable": "age", "breaks": [0, 14, 24, 100]})
    res = STEPS["recode"].run(ds, params, ctx_for(ds))
    text = STEPS["recode"].describe(params, res.change)
    assert "3 bands" in text and "1-14" in text and "98 values outside" in text
    tb = STEPS["topcode"].params.model_validate({"variable": "age", "value": 80})
    res = STEPS["topcode"].run(ds, tb, ctx_for(ds))
    assert STEPS["topcode"].describe(tb, res.change) == "Values of age above 80 were set to 80 (top coding; 8 records)."


def test_lock_plan_round_trip_gives_the_same_output():
    """Resolved parameters are dumped as JSON (text keys); reloaded they recode the same."""
    ds = labelled()
    spec = STEPS["recode"]
    params = spec.params.model_validate({"variable": "origin", "map": {6: 9, 7: 9, 8: 9}, "labels": {9: "Other"}})
    again = spec.params.model_validate(params.model_dump(mode="json"))
    a, b = spec.run(ds, params, ctx_for(ds)), spec.run(ds, again, ctx_for(ds))
    assert a.dataset.frame.equals(b.dataset.frame)
    assert a.dataset.codebook.meta("origin").value_labels == b.dataset.codebook.meta("origin").value_labels
