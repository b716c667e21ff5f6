"""Risk measures against sdcMicro 5.8.1's own outputs on testdata (carried in tests/data/sdcmicro_reference)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import KV5, KV7, PRACTICE_GUIDE, ref_csv
from safemicro.assess import assess
from safemicro.io import Dataset
from safemicro.keys import build_key_table


def close(actual, expected, rtol=1e-12):
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=0)


def test_freqcalc_7keys(testdata, reference):
    ref = ref_csv("testdata_freqCalc_7keys.csv")
    kt = build_key_table(testdata, KV7, testdata["sampling_weight"].to_numpy())
    fk, Fk = kt.record_fk(), kt.record_Fk()
    np.testing.assert_array_equal(fk, ref["fk"].to_numpy())
    np.testing.assert_array_equal(Fk, ref["Fk"].to_numpy())
    scal = reference["freqCalc"]
    assert kt.n_keys == scal["n_distinct_keys"]
    assert (fk == 1).sum() == scal["n_fk_eq1"]
    assert (fk == 2).sum() == scal["n2_reported"]
    assert (fk < 3).sum() == scal["n_fk_lt3"] and (fk < 5).sum() == scal["n_fk_lt5"]
    assert Fk.sum() == scal["sum_Fk"] and fk.max() == scal["max_fk"]


def test_measure_risk_7keys_weighted_household(testdata, reference):
    ref = ref_csv("testdata_measure_risk_7keys.csv")
    a = assess(Dataset(testdata), keys=KV7, weight="sampling_weight", household="ori_hid")
    rec = a.records
    close(rec["risk"], ref["risk"])
    close(rec["fk"], ref["fk"])
    close(rec["Fk"], ref["Fk"])
    close(rec["hh_risk"], ref["hier_risk"], rtol=1e-10)
    exp = reference["measure_risk"]["kv7_weighted_hid"]
    s = a.summary
    close(s["global_risk"]["mean"], exp["global_risk"])
    close(s["global_risk"]["expected_reidentifications"], exp["global_risk_ER"])
    close(s["global_risk"]["percent"], exp["global_risk_pct"])
    assert s["global_risk"]["threshold"] is None and exp["global_threshold"] is None
    close(s["household_risk"]["mean"], exp["hier_risk"], rtol=1e-10)
    close(s["household_risk"]["expected_reidentifications"], exp["hier_risk_ER"], rtol=1e-10)
    close(s["household_risk"]["percent"], exp["hier_risk_pct"], rtol=1e-10)
    close(s["individual_risk"]["max"], exp["max_individual_risk"])
    assert s["individual_risk"]["n_above_0_1"] == exp["n_risk_gt_0.1"]
    assert s["individual_risk"]["n_risky"] == exp["n_high_risk_print"]
    viol = s["k_anonymity"]["violations"]
    cso = reference["createSdcObj"]
    assert (viol["2"], viol["3"], viol["5"]) == (
        cso["n_violating_2anon"],
        cso["n_violating_3anon"],
        cso["n_violating_5anon"],
    )
    assert s["household_risk"]["n_households"] == 1000


@pytest.mark.parametrize(
    "case, weight, household, max_global_risk",
    [
        ("kv5_unweighted", None, None, 0.01),
        ("kv5_weighted", "sampling_weight", None, 0.01),
        ("kv5_weighted_hid", "sampling_weight", "ori_hid", 0.01),
        ("kv5_weighted_maxrisk_0.0001", "sampling_weight", None, 0.0001),
    ],
)
def test_measure_risk_5keys(testdata, reference, case, weight, household, max_global_risk):
    ref = ref_csv("testdata_measure_risk_5keys.csv")
    a = assess(Dataset(testdata), keys=KV5, weight=weight, household=household, max_global_risk=max_global_risk)
    exp = reference["measure_risk"][case]
    s = a.summary
    close(a.records["risk"], ref["risk_weighted" if weight else "risk_unweighted"])
    close(a.records["fk"], ref["fk"])
    if weight:
        close(a.records["Fk"], ref["Fk_weighted"])
    if household:
        close(a.records["hh_risk"], ref["hier_risk"], rtol=1e-10)
        close(s["household_risk"]["mean"], exp["hier_risk"], rtol=1e-10)
        close(s["household_risk"]["expected_reidentifications"], exp["hier_risk_ER"], rtol=1e-10)
    close(s["global_risk"]["mean"], exp["global_risk"])
    close(s["global_risk"]["expected_reidentifications"], exp["global_risk_ER"])
    if exp["global_threshold"] is None:
        assert s["global_risk"]["threshold"] is None
    else:
        close(s["global_risk"]["threshold"], exp["global_threshold"], rtol=1e-12)
    close(s["individual_risk"]["max"], exp["max_individual_risk"])
    assert s["individual_risk"]["n_above_0_1"] == exp["n_risk_gt_0.1"]
    assert s["individual_risk"]["n_risky"] == exp["n_high_risk_print"]


@pytest.mark.parametrize("alpha, column", [(1.0, "fk_after"), (0.5, "fk_after_alpha05"), (0.0, "fk_after_alpha0")])
def test_missing_values_are_wildcards(testdata, alpha, column):
    """sdcMicro's localSuppression output (k=3): suppressed cells count as any category."""
    ref = ref_csv("testdata_localSuppression_k3.csv")
    data = ref.select(KV7).with_columns(testdata["sampling_weight"], testdata["ori_hid"])
    assert data.select(KV7).null_count().sum_horizontal()[0] == 293
    kt = build_key_table(data, KV7, data["sampling_weight"].to_numpy(), alpha=alpha)
    close(kt.record_fk(), ref[column])
    assert kt.record_fk().min() >= 3 or alpha < 1


def test_risk_after_local_suppression(testdata, reference):
    ref = ref_csv("testdata_localSuppression_k3.csv")
    data = ref.select(KV7).with_columns(testdata["sampling_weight"], testdata["ori_hid"])
    a = assess(Dataset(data), keys=KV7, weight="sampling_weight", household="ori_hid")
    close(a.records["Fk"], ref["Fk_after"])
    close(a.records["risk"], ref["risk_after"])
    close(a.records["hh_risk"], ref["hier_risk_after"], rtol=1e-10)
    exp = reference["localSuppression"]["risk_after"]
    close(a.summary["global_risk"]["mean"], exp["risk"])
    close(a.summary["global_risk"]["expected_reidentifications"], exp["risk_ER"])
    close(a.summary["household_risk"]["expected_reidentifications"], exp["hier_risk_ER"], rtol=1e-10)
    assert a.summary["k_anonymity"]["violations"]["3"] == 0


def test_all_missing_key_and_partial_rows_follow_sdcmicro():
    """Hand-checked toy case of every wildcard rule, alpha 0.5."""
    df = pl.DataFrame(
        {
            "a": [1, 1, 1, None, 2, None],
            "b": [1, 1, 2, 1, None, None],
            "w": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    kt = build_key_table(df, ["a", "b"], df["w"].to_numpy(), alpha=0.5)
    # (1,1): 2 identical + 0.5 * (NA,1); (1,2): 1 (the (NA,1) key differs on b);
    # (NA,1): 1 + (1,1) x2 at weight 1 + 0.5 * [(2,NA) + (NA,NA)] -- (2,NA) and (NA,1)
    # share no observed variable, so they are compatible;
    # (2,NA): 1 + 0.5 * [(NA,1) + (NA,NA)] (no complete (2, x)); (NA,NA): all 6 records.
    np.testing.assert_allclose(kt.record_fk(), [2.5, 2.5, 1, 4, 2, 6])
    np.testing.assert_allclose(kt.record_Fk(), [3 + 2, 3 + 2, 3, 4 + 3 + 0.5 * 11, 5 + 0.5 * 10, 21])


def test_single_key_variable_wildcards():
    df = pl.DataFrame({"a": [1, 1, 2, None]})
    kt = build_key_table(df, ["a"], alpha=0.5)
    np.testing.assert_allclose(kt.record_fk(), [2.5, 2.5, 1.5, 4])


def test_global_recode_then_risk(testdata, reference):
    """globalRecode(water, breaks=3) on the sdcObj, then the risk (reference values)."""
    exp = reference["globalRecode"]["sdcObj_water_breaks3"]
    water = testdata["water"]
    recoded = testdata.with_columns(pl.when(water <= 3).then(1).when(water <= 7).then(2).otherwise(3).alias("water"))
    counts = recoded["water"].value_counts(sort=True)
    assert sorted(counts["count"].to_list()) == sorted(exp["table"].values())
    a = assess(Dataset(recoded), keys=KV7, weight="sampling_weight", household="ori_hid")
    close(a.summary["global_risk"]["mean"], exp["risk_after"]["risk"])
    close(a.summary["household_risk"]["mean"], exp["risk_after"]["hier_risk"], rtol=1e-10)
    assert a.summary["k_anonymity"]["n_sample_uniques"] == exp["n_fk_eq1_after"]


def test_practice_guide_example():
    keys = ["residence", "gender", "education", "labour"]
    a = assess(Dataset(PRACTICE_GUIDE), keys=keys, weight="weight", suda=True)
    rec = a.records
    assert rec["fk"].to_list() == [2, 2, 1, 2, 1, 2, 1, 1, 2, 2]
    assert rec["Fk"].to_list() == [360, 360, 215, 152, 186, 152, 180, 215, 262, 262]
    expected = [0.005425, 0.005425, 0.025096, 0.012563, 0.028247, 0.012563, 0.029011, 0.025096, 0.007404, 0.007404]
    np.testing.assert_allclose(rec["risk"].to_numpy(), expected, atol=5e-7)
    assert round(a.summary["global_risk"]["mean"], 5) == 0.01582
    assert round(a.summary["global_risk"]["expected_reidentifications"], 4) == 0.1582
    assert rec["suda_score"].to_list() == [0, 0, 6, 0, 12, 0, 6, 10, 0, 0]


def test_practice_guide_household_risk():
    from safemicro.risk import household_risk

    hh = household_risk(np.array([0.02, 0.03, 0.03]), np.array([0, 0, 0]))
    np.testing.assert_allclose(hh, 1 - 0.98 * 0.97 * 0.97, rtol=1e-12)
    assert round(hh[0], 4) == 0.0779
