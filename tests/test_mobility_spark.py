"""The Spark engine of the mobility path (local[2], one module-scoped session): the study's
hand-checked case R1 (tests/data/mobility_r1) to 1e-9 with the assertions of
test_mobility_features.py, and the per-subscriber table equal to the DuckDB engine's on a
generated set (300 subscribers x 7 days, with a displacement scenario)."""

from __future__ import annotations

import datetime as dt
import time

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from safemicro.mobility.daily import stage_i
from safemicro.mobility.features import scan, subscriber_features, window_days
from safemicro.mobility.ingest import ingest
from safemicro.mobility.reference import reference_table
from safemicro.mobility.synth import Scenario, SynthConfig
from safemicro.mobility.synth_days import generate
from test_mobility_features import DAYS, KEY, R1, S1, S2, assert_r1_features


@pytest.fixture(scope="module")
def mob(spark_session):
    from safemicro.mobility.spark_engine import MobilitySpark

    return MobilitySpark(spark=spark_session)


@pytest.fixture(scope="module")
def r1(mob, tmp_path_factory):
    """R1 through the spark-submit entry point (stage i and ii; the job's session is ours)."""
    from safemicro.mobility.spark_engine import main

    tmp = tmp_path_factory.mktemp("r1_spark")
    ingest(R1 / "events", R1 / "cells.csv", R1 / "bridge.csv", tmp / "ing", KEY)
    window = ["--baseline", "2024-01-01:2024-01-04", "--followup", "2024-01-01:2024-01-04"]
    main([str(tmp / "ing"), str(tmp / "node"), *window, "--features", str(tmp / "features.parquet")])
    return tmp / "node" / "daily", tmp / "ing" / "cells.parquet", pl.read_parquet(tmp / "features.parquet")


def test_r1_daily_and_modal_locations(r1, mob):
    daily_root, _, _ = r1
    d = mob.daily(daily_root).sort("sub", "date")
    assert sorted(set(d["date"])) == DAYS
    s1 = d.filter(pl.col("sub") == S1)
    s2 = d.filter(pl.col("sub") == S2)
    assert s1["unit_last"].to_list() == ["A", "A", "B"]
    assert s1["unit_mc"].to_list() == ["A", "B", "B"]  # 01-02: C3, C3 (B) against C1 (A)
    assert s2["unit_last"].to_list() == ["A", "A", "B"]
    modal = mob.modal(daily_root, DAYS[:2])
    assert modal.filter(pl.col("sub") == S1)["modal"].item() == "A"


def test_r1_features_and_flows(r1, mob):
    daily_root, cells, f = r1
    assert_r1_features(f)
    # flows first -> last day, and F9/F10 as in test_mobility_features
    d = mob.daily(daily_root)
    first = d.filter(pl.col("date") == DAYS[0]).select("sub", pl.col("unit_last").alias("o"))
    last = d.filter(pl.col("date") == DAYS[2]).select("sub", pl.col("unit_last").alias("d"))
    assert first.join(last, on="sub").group_by("o", "d").len().rows() == [("A", "B", 2)]
    g = mob.features(daily_root, cells, DAYS[:2], DAYS[2:], DAYS[:1])
    assert set(g["status"]) == {"displaced"} and set(g["returned"]) == {"returned"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen_spark")
    cfg = SynthConfig(n_subscribers=300, days=7, seed=3, scenario=Scenario(origins=["R1D1C1"], day=4))
    paths = generate(tmp / "raw", cfg)
    ingest(paths["events"], paths["cells"], paths["bridge"], tmp / "ing", b"gen-spark-key-0123456789")
    return tmp, window_days(cfg.start, cfg.start + dt.timedelta(days=7))


def test_generated_features_equal_duckdb(generated, mob):
    tmp, days = generated
    cells = pl.read_parquet(tmp / "ing" / "cells.parquet")
    windows = (days[:3], days[4:6], days[6:])
    t0 = time.perf_counter()
    stage_i(tmp / "ing", tmp / "d_duckdb", engine="duckdb")
    ref = subscriber_features(tmp / "d_duckdb", cells, *windows)
    t1 = time.perf_counter()
    stage_i(tmp / "ing", tmp / "d_spark", engine="spark")  # the pipeline's switch, on our session
    got = mob.features(tmp / "d_spark", tmp / "ing" / "cells.parquet", *windows)
    t2 = time.perf_counter()
    print(f"\n300 subscribers x 7 days: DuckDB {t1 - t0:.2f} s, Spark local[2] {t2 - t1:.2f} s")
    assert ref.height > 250 and set(ref["status"]) >= {"stayed", "displaced"}
    assert got.columns == ref.columns
    assert_frame_equal(got, ref, check_dtypes=False, check_exact=False, rel_tol=1e-12, abs_tol=1e-9)
    # the daily tables too, row for row
    for table, keys in (("daily", ["date", "sub"]), ("cellcounts", ["date", "sub", "cell_ix"])):
        a = scan(tmp / "d_duckdb", table, days).collect().sort(keys)
        b = mob.daily(tmp / "d_spark", table).select(a.columns).sort(keys)
        assert_frame_equal(b, a, check_dtypes=False)
    # Spark's daily output (part files, DECIMAL pseudonyms) read by the embedded stage ii and
    # the served reference table: the same as from DuckDB's
    assert_frame_equal(subscriber_features(tmp / "d_spark", cells, *windows), ref)
    assert_frame_equal(
        reference_table(got, cells, tmp / "d_spark", days), reference_table(ref, cells, tmp / "d_duckdb", days)
    )
