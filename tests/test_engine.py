"""The engines (polars in memory, polars streaming, DuckDB) give the same key table and
the same assessment numbers as the in-memory ``assess`` on sdcMicro's testdata (weights,
households, 3 % missing key cells as wildcards), read from a real Parquet file; SUDA2
(on the key table) and l-diversity (one group-by of the keys and each sensitive variable,
null and NaN sensitive values missing) too."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from safemicro.assess import assess
from safemicro.engine import get_engine, key_table_from_counts
from safemicro.errors import SafemicroError
from safemicro.keys import build_key_table
from safemicro.scale import assess_source, weighted_median
from scale_support import KEYS7, assert_same_assessment, assert_same_suda_and_ldiversity, holey_testdata, with_sensitive

SENSITIVE = ["hhcivil", "age_f"]


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return with_sensitive(holey_testdata(0.03, seed=11), seed=12)


@pytest.fixture(scope="module")
def parquet(frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("engine") / "testdata.parquet"
    frame.write_parquet(path, row_group_size=1000)
    return path


@pytest.fixture(scope="module")
def reference(frame):
    roles = {"weight": "sampling_weight", "household": "ori_hid", "sensitive": SENSITIVE}
    return assess(frame, keys=KEYS7, **roles, alpha=0.7, suda=True).summary


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
    """`safemicro assess --engine polars-streaming` (with --suda and --sensitive) writes the
    same JSON numbers as the default engine on the same file."""
    import json

    from typer.testing import CliRunner

    from safemicro.cli import app

    args = ["--keys", ",".join(KEYS7), "--weight", "sampling_weight", "--household", "ori_hid"]
    args += ["--sensitive", ",".join(SENSITIVE), "--suda"]
    outs = {}
    for engine in ("polars", "polars-streaming"):
        out = tmp_path / f"{engine}.json"
        r = CliRunner().invoke(app, ["assess", str(parquet), *args, "--engine", engine, "--json", str(out)])
        assert r.exit_code == 0, r.output
        outs[engine] = json.loads(out.read_text())
    assert outs["polars-streaming"]["engine"] == "polars-streaming"
    assert_same_assessment(outs["polars-streaming"], outs["polars"])
    assert_same_suda_and_ldiversity(outs["polars-streaming"], outs["polars"])


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


@pytest.mark.parametrize("name", ["polars", "polars-streaming", "duckdb"])
def test_suda2_and_ldiversity_equal_in_memory(parquet, reference, name):
    roles = {"weight": "sampling_weight", "household": "ori_hid", "sensitive": SENSITIVE}
    got = assess_source(parquet, engine=name, keys=KEYS7, **roles, alpha=0.7, suda=True).summary
    assert reference["suda2"]["n_score_gt0"] > 0 and reference["l_diversity"]["hhcivil"]["distinct"]["n_eq1"] > 0
    assert_same_suda_and_ldiversity(got, reference)


def test_suda2_refused_when_the_key_table_groups_otherwise(frame, tmp_path):
    """A key with fractions (SUDA2 truncates them, the key table does not): a clear error
    pointing to the in-memory engine, not different numbers."""
    path = tmp_path / "half.parquet"
    frame.with_columns(pl.col("walls") / 2).write_parquet(path)
    with pytest.raises(SafemicroError, match="engine polars"):
        assess_source(path, engine="polars-streaming", keys=KEYS7, suda=True)
