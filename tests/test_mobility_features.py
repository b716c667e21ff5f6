"""Per-subscriber features F1-F10 against the hand-checked reference case R1 of the study
(tests/data/mobility_r1, see its README), with both engines (Polars and DuckDB) to 1e-9."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from conftest import DATA
from safemicro.mobility.daily import stage_i
from safemicro.mobility.features import (
    R_EARTH_KM,
    majority_location,
    modal_location,
    scan,
    subscriber_features,
    window_days,
)
from safemicro.mobility.ingest import ingest
from safemicro.mobility.pseudonym import hmac64

R1 = DATA / "mobility_r1"
KEY = b"r1-test-key-0123456789abcdef"
DAYS = window_days(dt.date(2024, 1, 1), dt.date(2024, 1, 4))
S1, S2 = hmac64(KEY, ["s1", "s2"])


@pytest.fixture(scope="module", params=["polars", "duckdb"])
def r1(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"r1_{request.param}")
    ingest(R1 / "events", R1 / "cells.csv", R1 / "bridge.csv", tmp / "ing", KEY)
    stage_i(tmp / "ing", tmp / "daily", engine=request.param)
    cells = pl.read_parquet(tmp / "ing" / "cells.parquet")
    return tmp / "daily", cells


def _haversine(lon1, lat1, lon2, lat2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * R_EARTH_KM * math.asin(math.sqrt(a))


def _rog(points):
    """The definition written out on the raw events (independent of the per-cell path)."""
    clat = sum(p[1] for p in points) / len(points)
    clon = sum(p[0] for p in points) / len(points)
    return math.sqrt(sum(_haversine(x, y, clon, clat) ** 2 for x, y in points) / len(points))


def test_check_values():
    assert _haversine(0, 0, 1, 0) == pytest.approx(111.195, abs=5e-4)
    assert _haversine(0, 0, 0.01, 0) == pytest.approx(1.112, abs=5e-4)


def test_daily_locations(r1):
    daily_root, _ = r1
    d = scan(daily_root, "daily", DAYS).collect().sort("sub", "date")
    s1 = d.filter(pl.col("sub") == S1)
    s2 = d.filter(pl.col("sub") == S2)
    assert s1["unit_last"].to_list() == ["A", "A", "B"]
    assert s1["unit_mc"].to_list() == ["A", "B", "B"]  # 01-02: C3, C3 (B) against C1 (A)
    assert s2["unit_last"].to_list() == ["A", "A", "B"]
    modal = modal_location(scan(daily_root, "daily", DAYS[:2])).collect()
    assert modal.filter(pl.col("sub") == S1)["modal"].item() == "A"


def test_features(r1):
    daily_root, cells = r1
    assert_r1_features(subscriber_features(daily_root, cells, DAYS, DAYS))


def assert_r1_features(f: pl.DataFrame) -> None:
    """R1's per-subscriber values over its three days (shared with the Spark engine's test)."""
    s1 = f.filter(pl.col("sub") == S1).row(0, named=True)
    s2 = f.filter(pl.col("sub") == S2).row(0, named=True)
    c1, c2, c3 = (0.0, 0.0), (0.01, 0.0), (1.0, 0.0)
    rog1 = _rog([c1, c2, c1, c3, c3, c1, c3])
    rog2 = _rog([c2, c2, c3])
    assert s1["rog_km"] == pytest.approx(rog1, abs=1e-9)
    assert s2["rog_km"] == pytest.approx(rog2, abs=1e-9)
    assert round(s1["rog_km"], 3) == 54.891 and round(s2["rog_km"], 3) == 51.894  # the study's values
    assert s1["night_pct"] == pytest.approx(300 / 7, abs=1e-9)  # 21:00, 23:00, 02:00
    assert s2["night_pct"] == pytest.approx(200 / 3, abs=1e-9)
    assert (s1["degree"], s2["degree"]) == (2, 1)
    assert (s1["n_events"], s2["n_events"]) == (7, 3)
    assert (s1["home0"], s1["active_days"]) == ("A", 3)


def test_flows_first_to_last_day(r1):
    daily_root, _ = r1
    first = scan(daily_root, "daily", DAYS[:1]).select("sub", pl.col("unit_last").alias("o"))
    last = scan(daily_root, "daily", DAYS[2:]).select("sub", pl.col("unit_last").alias("d"))
    flows = first.join(last, on="sub").group_by("o", "d").len().collect()
    assert flows.rows() == [("A", "B", 2)]


def test_majority_needs_strict_majority(r1):
    daily_root, _ = r1
    # over 01-02..01-03 s1 is A then B: 1 of 2 days is no strict majority -> unlocatable
    m = majority_location(scan(daily_root, "daily", DAYS[1:]), 2).collect()
    assert m.filter(pl.col("sub") == S1)["majority"].item() is None


def test_status_displaced_and_returned(r1):
    daily_root, cells = r1
    f = subscriber_features(daily_root, cells, DAYS[:2], DAYS[2:], DAYS[:1])
    assert set(f["status"]) == {"displaced"}  # home A over 01-01..02, B on 01-03
    assert set(f["returned"]) == {"returned"}  # majority over the later window (01-01) is A again


def test_features_sql_on_duckdb_equals_polars(r1):
    """The features SQL text the Spark engine runs (mobility/sql.py), run by DuckDB over the
    daily tables of either engine, gives the Polars table (R1, with a later window)."""
    import duckdb
    from polars.testing import assert_frame_equal

    from safemicro.mobility.sql import features_sql

    daily_root, cells = r1
    con = duckdb.connect()
    for table in ("daily", "cellcounts", "contacts"):
        con.register(table, scan(daily_root, table, DAYS).collect().to_arrow())
    con.register("cells", cells.to_arrow())
    for windows in ((DAYS, DAYS), (DAYS[:2], DAYS[2:], DAYS[:1]), (DAYS[1:], DAYS[1:])):
        got = con.sql(features_sql(*windows)).pl().sort("sub")
        assert_frame_equal(
            got, subscriber_features(daily_root, cells, *windows), check_dtypes=False, rel_tol=1e-12, abs_tol=1e-9
        )


def test_hours_restricted_location_same_in_both_engines(tmp_path):
    """Night-time daily locations (hours=(20, 4), wrapping midnight): the SQL text shared with
    Spark gives Polars' tables. Hand-read from the R1 events: s1's night events are 21:00 C1,
    23:00 C1, 02:00 C3; s2 has none on 01-01, then 22:00 C2 and 22:30 C3."""
    ingest(R1 / "events", R1 / "cells.csv", R1 / "bridge.csv", tmp_path / "ing", KEY)
    for engine in ("polars", "duckdb"):
        stage_i(tmp_path / "ing", tmp_path / engine, engine=engine, hours=(20, 4))
    a, b = (scan(tmp_path / e, "daily", DAYS).collect().sort("sub", "date") for e in ("polars", "duckdb"))
    assert a.equals(b)
    assert a.filter(pl.col("sub") == S1)["unit_mc"].to_list() == ["A", "A", "B"]  # all hours: A, B, B
    assert a.filter(pl.col("sub") == S2)["unit_last"].to_list() == [None, "A", "B"]
    assert a["n_events"].sum() == 10  # the counts keep every hour (7 + 3)
