"""Numeric-key risk: interval disclosure against sdcMicro's dRisk, linkage, outliers."""

from __future__ import annotations

import numpy as np
import polars as pl

from conftest import ref_csv
from safemicro.risk.numeric import interval_disclosure, linkage_disclosure, outliers

NV = ["expend", "income", "savings"]


def test_interval_disclosure_matches_sdcmicro_drisk(testdata, reference):
    x = testdata.select(NV).to_numpy()
    assert interval_disclosure(x, x) == reference["createSdcObj"]["numeric_risk_dRisk"] == 1
    mdav = ref_csv("testdata_mdav_aggr3.csv").select(NV).to_numpy()
    np.testing.assert_allclose(
        interval_disclosure(x, mdav), reference["microaggregation"]["risk_numeric_dRisk"], rtol=1e-12
    )
    top = testdata.with_columns(
        pl.when(pl.col("income") > 500000).then(1000).otherwise(pl.col("income")).alias("income")
    )
    exp = reference["topBotCoding"]["sdcObj_income_top500000"]
    assert int((top["income"] != testdata["income"]).sum()) == exp["n_changed"]
    np.testing.assert_allclose(interval_disclosure(x, top.select(NV).to_numpy()), exp["risk_numeric_after"], rtol=1e-12)


def test_linkage_disclosure(testdata):
    x = testdata.select(NV).to_numpy().astype(float)
    assert linkage_disclosure(x, x) == 1.0
    mdav = ref_csv("testdata_mdav_aggr3.csv").select(NV).to_numpy()
    linked = linkage_disclosure(x, mdav)
    assert 0.0 < linked < 0.5  # groups of 3 hide most records
    rng = np.random.default_rng(1)
    noisy = x + rng.normal(0, 5 * x.std(axis=0), size=x.shape)
    assert linkage_disclosure(x, noisy) < linked


def test_outliers_robust_rule():
    x = np.array([10.0, 11, 12, 11, 10, 12, 11, 500, np.nan])
    flags = outliers(x)
    assert flags.tolist() == [False] * 7 + [True, False]
    # MAD of 0 (most values equal): fall back to the IQR rule, then to "differs from median"
    assert outliers(np.array([5.0] * 10 + [6.0])).tolist() == [False] * 10 + [True]
    assert not outliers(np.full(5, np.nan)).any()
