"""The engines (polars in memory, polars streaming, DuckDB) give the same key table and
the same assessment numbers as the in-memory ``assess`` on sdcMicro's testdata (weights,
households, 3 % missing key cells as wildcards), read from a real Parquet file."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import SDC_DATA
from safemicro.assess import assess
from safemicro.engine import get_engine, key_table_from_counts
from safemicro.keys import build_key_table
from safemicro.scale import assess_source, weighted_median

KEYS7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    df = pl.read_csv(SDC_DATA / "testdata.csv")
    rng = np.random.default_rng(11)
    return df.with_columns(
        [pl.when(pl.Series(rng.random(df.height) < 0.03)).then(None).otherwise(pl.col(k)).alias(k) for k in KEYS7]
    )


@pytest.fixture(scope="module")
def parquet(frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("engine") / "testdata.parquet"
    frame.write_parquet(path, row_group_size=1000)
    return path


@pytest.fixture(scope="module")
def reference(frame):
    return assess(frame, keys=KEYS7, weight="sampling_weight", household="ori_hid", alpha=0.7).summary


def test_weighted_median_is_numpy_median():
    rng = np.random.default_rng(1)
    for n_keys in (1, 2, 7, 50):
        v = rng.random(n_keys)
        c = rng.integers(1, 5, n_keys).astype(float)
        assert weighted_median(v, c) == pytest.approx(np.median(np.repeat(v, c.astype(int))), abs=0)


@pytest.mark.parametrize("name", ["polars", "polars-streaming", "duckdb"])
def test_key_table_equals_build_key_table(frame, parquet, name):
    kc = get_engine(name).key_counts(parquet, KEYS7, "sampling_weight")
    kt = key_table_from_counts(kc, KEYS7, alpha=0.7, weighted=True)
    ref = build_key_table(frame, KEYS7, frame["sampling_weight"].cast(pl.Float64).to_numpy(), alpha=0.7)
    np.testing.assert_array_equal(kt.codes, ref.codes)
    np.testing.assert_array_equal(kt.count, ref.count)
    np.testing.assert_allclose(kt.weight_sum, ref.weight_sum, rtol=1e-12)
    np.testing.assert_allclose(kt.fk, ref.fk, rtol=1e-12)
    np.testing.assert_allclose(kt.Fk, ref.Fk, rtol=1e-12)
    assert kt.n_records == frame.height


def _numbers(s: dict) -> dict:
    out = {
        "k": s["k_anonymity"],
        "g": {k: v for k, v in s["global_risk"].items()},
        "i": s["individual_risk"],
        "h": s["household_risk"],
        "missing": s["missing_in_keys"],
        "top": s["riskiest_keys"],
        "n": s["n_records"],
    }
    return out


@pytest.mark.parametrize("name", ["polars-streaming", "duckdb"])
def test_assessment_numbers_equal_in_memory_assess(parquet, reference, name):
    got = assess_source(
        parquet, engine=name, keys=KEYS7, weight="sampling_weight", household="ori_hid", alpha=0.7
    ).summary
    a, b = _numbers(got), _numbers(reference)
    assert a["k"] == b["k"] and a["missing"] == b["missing"] and a["n"] == b["n"]
    assert a["i"]["median"] == b["i"]["median"] and a["i"]["mad"] == pytest.approx(b["i"]["mad"], rel=1e-12)
    for key in ("max", "n_above_0_1", "n_risky", "histogram"):
        assert a["i"][key] == b["i"][key], key
    assert (a["g"]["threshold"] is None) == (b["g"]["threshold"] is None)
    for key in ("mean", "expected_reidentifications", "percent"):
        assert a["g"][key] == pytest.approx(b["g"][key], rel=1e-12), key
    for key in ("mean", "expected_reidentifications", "percent"):
        assert a["h"][key] == pytest.approx(b["h"][key], rel=1e-12), key
    assert a["h"]["n_households"] == b["h"]["n_households"]
    assert a["h"]["household_sizes"] == b["h"]["household_sizes"]
    assert [k["values"] for k in a["top"]] == [k["values"] for k in b["top"]]
    assert [k["fk"] for k in a["top"]] == [k["fk"] for k in b["top"]]
