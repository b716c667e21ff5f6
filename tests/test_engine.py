"""The engines (polars in memory, polars streaming, DuckDB) give the same key table and
the same assessment numbers as the in-memory ``assess`` on sdcMicro's testdata (weights,
households, 3 % missing key cells as wildcards), read from a real Parquet file."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from safemicro.assess import assess
from safemicro.engine import get_engine, key_table_from_counts
from safemicro.keys import build_key_table
from safemicro.scale import assess_source, weighted_median
from scale_support import KEYS7, assert_same_assessment, holey_testdata


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return holey_testdata(0.03, seed=11)


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


@pytest.mark.parametrize("name", ["polars-streaming", "duckdb"])
def test_assessment_numbers_equal_in_memory_assess(parquet, reference, name):
    got = assess_source(
        parquet, engine=name, keys=KEYS7, weight="sampling_weight", household="ori_hid", alpha=0.7
    ).summary
    assert got["n_records"] == reference["n_records"]
    assert_same_assessment(got, reference)


def test_cli_assess_with_an_out_of_core_engine(parquet, tmp_path):
    """`safemicro assess --engine polars-streaming` writes the same JSON numbers as the
    default engine on the same file."""
    import json

    from typer.testing import CliRunner

    from safemicro.cli import app

    args = ["--keys", ",".join(KEYS7), "--weight", "sampling_weight", "--household", "ori_hid"]
    outs = {}
    for engine in ("polars", "polars-streaming"):
        out = tmp_path / f"{engine}.json"
        r = CliRunner().invoke(app, ["assess", str(parquet), *args, "--engine", engine, "--json", str(out)])
        assert r.exit_code == 0, r.output
        outs[engine] = json.loads(out.read_text())
    assert outs["polars-streaming"]["engine"] == "polars-streaming"
    assert_same_assessment(outs["polars-streaming"], outs["polars"])


@pytest.mark.parametrize("kind", ["string", "wide"])
def test_household_ids_that_do_not_index_an_array(frame, tmp_path, kind):
    """String household ids, and integer ids too far apart to index a dense array, give
    the same household risk as the in-memory engine."""
    hid = pl.col("ori_hid")
    df = frame.with_columns(("h" + hid.cast(pl.String)) if kind == "string" else hid * 10**12)
    path = tmp_path / "hh.parquet"
    df.write_parquet(path, row_group_size=1000)
    ref = assess(df, keys=KEYS7, household="ori_hid").summary["household_risk"]
    got = assess_source(path, engine="polars-streaming", keys=KEYS7, household="ori_hid").summary["household_risk"]
    assert got["household_sizes"] == ref["household_sizes"]
    assert got["expected_reidentifications"] == pytest.approx(ref["expected_reidentifications"], rel=1e-12)
