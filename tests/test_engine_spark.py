"""The Spark engine (local[2], one module-scoped session) gives every number of the
Polars engine on sdcMicro's testdata: fk, Fk, individual, global and household risk,
with 3 % missing key cells as wildcards, from a Parquet file and from a Spark DataFrame."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest

from safemicro.assess import assess
from safemicro.engine import key_table_from_counts
from safemicro.keys import build_key_table
from safemicro.scale import assess_source
from scale_support import KEYS7, assert_same_assessment, assert_same_suda_and_ldiversity, holey_testdata, with_sensitive

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Java is needed for Spark (make java)", allow_module_level=True)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return holey_testdata(0.03, seed=11)


@pytest.fixture(scope="module")
def parquet(frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("spark") / "testdata.parquet"
    frame.write_parquet(path)
    return path


@pytest.fixture(scope="module")
def engine(spark_session):
    from safemicro.engine.spark_engine import SparkEngine

    return SparkEngine(spark=spark_session)


def test_key_table_identical(frame, parquet, engine):
    kt = key_table_from_counts(engine.key_counts(parquet, KEYS7, "sampling_weight"), KEYS7, alpha=1.0, weighted=True)
    ref = build_key_table(frame, KEYS7, frame["sampling_weight"].cast(pl.Float64).to_numpy())
    np.testing.assert_array_equal(kt.codes, ref.codes)
    np.testing.assert_array_equal(kt.fk, ref.fk)
    np.testing.assert_allclose(kt.Fk, ref.Fk, rtol=1e-12)


def test_assessment_identical_from_parquet_and_spark_dataframe(frame, parquet, engine):
    ref = assess(frame, keys=KEYS7, weight="sampling_weight", household="ori_hid").summary
    sdf = engine.spark.read.parquet(str(parquet))
    for source in (parquet, sdf):
        got = assess_source(source, engine=engine, keys=KEYS7, weight="sampling_weight", household="ori_hid").summary
        assert_same_assessment(got, ref)


def test_suda2_and_ldiversity_identical(frame, engine, tmp_path):
    """SUDA2 on the collected key table and l-diversity from Spark's group-by of the keys
    and each sensitive variable (null and NaN missing) equal the in-memory numbers."""
    df = with_sensitive(frame, seed=12)
    path = tmp_path / "sensitive.parquet"
    df.write_parquet(path)
    sensitive = ["hhcivil", "age_f"]
    ref = assess(df, keys=KEYS7, weight="sampling_weight", sensitive=sensitive, suda=True).summary
    got = assess_source(path, engine=engine, keys=KEYS7, weight="sampling_weight", sensitive=sensitive, suda=True)
    assert_same_suda_and_ldiversity(got.summary, ref)


def test_anonymize_on_spark_equals_in_memory(frame, parquet, engine, tmp_path):
    """Recode + local suppression decided on the key table, applied by Spark: the released
    records (joined back on a record id) equal the in-memory methods'."""
    from safemicro.io import Dataset
    from safemicro.methods.recode import global_recode
    from safemicro.methods.suppression import local_suppression
    from safemicro.plan import Plan
    from safemicro.scale.anonymize import anonymize_source

    plan = Plan.from_yaml(
        "roles: {keys: [urbrur, roof, walls, water, electcon, relat, sex], weight: sampling_weight}\n"
        "targets: {k: 3}\nsteps:\n  - recode: {variable: water, map: {7: 6, 8: 6, 9: 6}}\n"
        "  - local_suppression: {k: 3}\n"
    )
    with_id = frame.with_row_index("rid")
    src = tmp_path / "in.parquet"
    with_id.write_parquet(src)
    result = anonymize_source(src, plan, tmp_path / "out", engine=engine)
    ds = global_recode(Dataset(with_id), variable="water", map={7: 6, 8: 6, 9: 6}).dataset
    ref = local_suppression(ds, keys=KEYS7, k=3, weight="sampling_weight")
    got = pl.read_parquet(tmp_path / "out" / "*.parquet").sort("rid")
    assert result.n_records == frame.height
    assert got.select(ref.dataset.frame.columns).equals(ref.dataset.frame, null_equal=True)
    assert result.steps[1]["changed"] == ref.change.suppressed
