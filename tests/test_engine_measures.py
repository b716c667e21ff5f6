"""SUDA2 and l-diversity out of core: computed on the key table (SUDA2) and on one
group-by of the keys and each sensitive variable (l-diversity), they give the in-memory
``assess`` numbers on sdcMicro's testdata with 3 % missing key cells and missing
sensitive values (null, and NaN in a float column), read from a real Parquet file."""

from __future__ import annotations

import json

import polars as pl
import pytest

from safemicro.assess import assess
from safemicro.errors import SafemicroError
from safemicro.scale import assess_source
from scale_support import KEYS7, assert_same_suda_and_ldiversity, holey_testdata, with_sensitive

SENSITIVE = ["hhcivil", "age_f"]


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return with_sensitive(holey_testdata(0.03, seed=11), seed=12)


@pytest.fixture(scope="module")
def parquet(frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("measures") / "testdata.parquet"
    frame.write_parquet(path, row_group_size=1000)
    return path


@pytest.fixture(scope="module")
def reference(frame):
    return assess(frame, keys=KEYS7, weight="sampling_weight", sensitive=SENSITIVE, suda=True).summary


@pytest.mark.parametrize("name", ["polars", "polars-streaming", "duckdb"])
def test_suda2_and_ldiversity_equal_in_memory(parquet, reference, name):
    got = assess_source(
        parquet, engine=name, keys=KEYS7, weight="sampling_weight", sensitive=SENSITIVE, suda=True
    ).summary
    assert reference["suda2"]["n_score_gt0"] > 0 and reference["l_diversity"]["hhcivil"]["distinct"]["n_eq1"] > 0
    assert_same_suda_and_ldiversity(got, reference)


def test_cli_suda_and_sensitive_out_of_core(parquet, reference, tmp_path):
    """`safemicro assess --engine polars-streaming --suda --sensitive ...` writes them."""
    from typer.testing import CliRunner

    from safemicro.cli import app

    out = tmp_path / "risk.json"
    args = ["--keys", ",".join(KEYS7), "--weight", "sampling_weight", "--sensitive", ",".join(SENSITIVE), "--suda"]
    r = CliRunner().invoke(app, ["assess", str(parquet), *args, "--engine", "polars-streaming", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert_same_suda_and_ldiversity(json.loads(out.read_text()), reference)


def test_suda2_refused_when_the_key_table_groups_otherwise(frame, tmp_path):
    """A key with fractions (SUDA2 truncates them, the key table does not): a clear error
    pointing to the in-memory engine, not different numbers."""
    path = tmp_path / "half.parquet"
    frame.with_columns(pl.col("walls") / 2).write_parquet(path)
    with pytest.raises(SafemicroError, match="engine polars"):
        assess_source(path, engine="polars-streaming", keys=KEYS7, suda=True)
