"""Shared by the engine tests: sdcMicro's testdata with a share of key cells missing."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import SDC_DATA

KEYS7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


def holey_testdata(share: float, seed: int) -> pl.DataFrame:
    """testdata with each of the 7 key cells set missing with probability ``share``."""
    df = pl.read_csv(SDC_DATA / "testdata.csv")
    rng = np.random.default_rng(seed)
    return df.with_columns(
        [pl.when(pl.Series(rng.random(df.height) < share)).then(None).otherwise(pl.col(k)).alias(k) for k in KEYS7]
    )


def assert_same_assessment(got: dict, ref: dict) -> None:
    """Every number of an engine's assessment summary equals the in-memory one (sums to
    1e-12 relative: they are added up in another order)."""
    assert got["k_anonymity"] == ref["k_anonymity"]
    assert got["missing_in_keys"] == ref["missing_in_keys"]
    for key in ("max", "median", "n_above_0_1", "n_risky", "histogram"):
        assert got["individual_risk"][key] == ref["individual_risk"][key], key
    assert got["individual_risk"]["mad"] == pytest.approx(ref["individual_risk"]["mad"], rel=1e-12)
    assert (got["global_risk"]["threshold"] is None) == (ref["global_risk"]["threshold"] is None)
    for part in ("global_risk", "household_risk"):
        for key in ("mean", "expected_reidentifications", "percent"):
            assert got[part][key] == pytest.approx(ref[part][key], rel=1e-12), (part, key)
    assert got["household_risk"]["n_households"] == ref["household_risk"]["n_households"]
    assert got["household_risk"]["household_sizes"] == ref["household_risk"]["household_sizes"]
    assert [k["values"] for k in got["riskiest_keys"]] == [k["values"] for k in ref["riskiest_keys"]]
    assert [k["fk"] for k in got["riskiest_keys"]] == [k["fk"] for k in ref["riskiest_keys"]]


def with_sensitive(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``frame`` with two sensitive variables holding missing values: hhcivil with 2 %
    nulls, and age as a float with 2 % NaN (NaN and null are both missing)."""
    rng = np.random.default_rng(seed)
    n = frame.height
    return frame.with_columns(
        pl.when(pl.Series(rng.random(n) < 0.02)).then(None).otherwise(pl.col("hhcivil")).alias("hhcivil"),
        pl.when(pl.Series(rng.random(n) < 0.02)).then(float("nan")).otherwise(pl.col("age")).alias("age_f"),
    )


def assert_same_suda_and_ldiversity(got: dict, ref: dict) -> None:
    """SUDA2 and l-diversity summaries equal to the in-memory ones (sums of per-record
    floats to 1e-12 relative: they are added up in another order)."""
    g, r = dict(got["suda2"]), dict(ref["suda2"])
    assert g.pop("sum_dis") == pytest.approx(r.pop("sum_dis"), rel=1e-12)
    assert g == r
    assert got["l_diversity"].keys() == ref["l_diversity"].keys()
    for s, kinds in ref["l_diversity"].items():
        for kind, stats in kinds.items():
            mine = dict(got["l_diversity"][s][kind])
            assert mine.pop("mean") == pytest.approx(stats["mean"], rel=1e-12), (s, kind)
            assert mine == {k: v for k, v in stats.items() if k != "mean"}, (s, kind)
