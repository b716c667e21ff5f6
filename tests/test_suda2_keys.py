"""SUDA2 from the key table equals SUDA2 from the records (tests/data/sdcmicro testdata)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import KV7, SDC_DATA
from safemicro.keys import build_key_table
from safemicro.risk import suda2_keys as sk
from safemicro.risk.suda2 import suda2


def _variants() -> dict[str, tuple[pl.DataFrame, list[str]]]:
    frame = pl.read_csv(SDC_DATA / "testdata.csv").select(KV7)
    row = pl.int_range(0, frame.height)
    holes = frame.with_columns(
        [pl.when((row + i) % 29 == 0).then(None).otherwise(pl.col(k)).alias(k) for i, k in enumerate(KV7)]
    )
    mixed = holes.with_columns(("r" + pl.col("roof").cast(pl.String)).alias("roof"), pl.col("walls").cast(pl.Float64))
    return {
        "integers": (frame, KV7),
        "missing": (holes, KV7),
        "text_and_whole_floats": (mixed, KV7),
        "two_keys": (holes, ["urbrur", "water"]),
        # these fall back to the record path (SUDA2 truncates 1.5; -999 is SUDA2's missing code)
        "fractional_float": (frame.with_columns(pl.col("walls") / 2), KV7),
        "value_equal_to_missing_code": (frame.with_columns(pl.col("relat").replace(1, -999)), KV7),
        "boolean": (frame.with_columns(pl.col("sex") == 1), KV7),
    }


@pytest.mark.parametrize("case", list(_variants()))
def test_key_table_suda2_equals_record_suda2(case, recwarn):
    frame, keys = _variants()[case]
    want = suda2(frame, keys)
    got = sk.suda2_keys(build_key_table(frame, keys), frame)
    for field in ("score", "dis", "contributions", "n_msu"):
        assert np.array_equal(getattr(got, field), getattr(want, field)), field
    assert got.attribute_contributions == want.attribute_contributions
    assert got.level_contributions == want.level_contributions
    assert list(got.level_contributions["urbrur"]) == list(want.level_contributions["urbrur"])  # same order
    assert got.summary() == want.summary()


def test_key_table_path_is_taken_for_integer_keys(monkeypatch):
    frame, keys = _variants()["missing"]
    kt = build_key_table(frame, keys)

    def refuse(*args, **kwargs):
        raise AssertionError("fell back to the record path")

    monkeypatch.setattr(sk, "suda2", refuse)
    assert sk.suda2_keys(kt, frame).summary()["n_score_gt0"] > 0
    with pytest.raises(AssertionError, match="fell back"):
        sk.suda2_keys(build_key_table(frame.with_columns(pl.col("walls") / 2), keys), frame)
