"""The fast fold of build_key_table (raw integer offsets in one Polars pass) gives the
same key table, in the same order, as encoding every column densely first (the reference
path, kept for strings and wide ranges)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import SDC_DATA
from safemicro.keys import _fold_raw, build_key_table, fold_keys

KEYS7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


def _holes(df: pl.DataFrame, share: float, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return df.with_columns(
        [pl.when(pl.Series(rng.random(df.height) < share)).then(None).otherwise(pl.col(k)).alias(k) for k in KEYS7]
    )


@pytest.fixture(scope="module")
def testdata() -> pl.DataFrame:
    return pl.read_csv(SDC_DATA / "testdata.csv")


def _same(frame: pl.DataFrame, keys: list[str]) -> None:
    raw = _fold_raw(frame, keys)
    assert raw is not None, "the fast path should apply"
    dense = fold_keys(frame, keys)
    np.testing.assert_array_equal(raw[0], dense[0])
    np.testing.assert_array_equal(raw[1], dense[1])
    for a, b in zip(raw[2], dense[2]):
        assert a.dtype == b.dtype
        assert a.to_list() == b.to_list()


def test_testdata_with_and_without_missing(testdata):
    _same(testdata, KEYS7)
    _same(_holes(testdata, 0.05), KEYS7)


def test_floats_bools_negatives_and_nan():
    df = pl.DataFrame(
        {
            "f": [1.0, float("nan"), -3.0, None, 1.0, 7.0],
            "b": [True, False, None, True, True, False],
            "i": pl.Series([-5, 200, -5, 3, None, 200], dtype=pl.Int16),
            "empty": pl.Series([None] * 6, dtype=pl.Int32),
        }
    )
    _same(df, ["f", "b", "i", "empty"])


def test_fallbacks_strings_fractions_wide_ranges():
    assert _fold_raw(pl.DataFrame({"s": ["a", "b"]}), ["s"]) is None
    assert _fold_raw(pl.DataFrame({"f": [0.5, 1.0]}), ["f"]) is None
    assert _fold_raw(pl.DataFrame({"i": [0, 10**12]}), ["i"]) is None


def test_key_table_numbers_unchanged(testdata):
    """fk/Fk from the fast path equal those of the dense path, weighted, with wildcards."""
    df = _holes(testdata, 0.02)
    w = df["sampling_weight"].cast(pl.Float64).to_numpy()
    kt = build_key_table(df, KEYS7, w, alpha=0.5)
    rk, codes, _ = fold_keys(df, KEYS7)
    np.testing.assert_array_equal(kt.record_key, rk)
    np.testing.assert_array_equal(kt.codes, codes)
    assert kt.values().height == kt.n_keys
