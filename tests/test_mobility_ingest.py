"""Ingest of call records: bad rows counted with file and row, pseudonyms under the operator
key (no raw number in any output), QA per day; the synthetic generator's declared rates."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import polars as pl
import pytest

from conftest import DATA
from safemicro.errors import SafemicroError
from safemicro.mobility.geography import Lattice, bridge_from_polygons, points_in_polygon
from safemicro.mobility.ingest import ingest
from safemicro.mobility.pseudonym import PseudonymMap, hmac64
from safemicro.mobility.synth import Scenario, SynthConfig
from safemicro.mobility.synth_days import generate

R1 = DATA / "mobility_r1"
KEY = b"ingest-test-key-0123456789"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synth")
    cfg = SynthConfig(n_subscribers=3000, days=7, seed=11, scenario=Scenario(origins=["R1D1C1"], day=3))
    paths = generate(tmp / "raw", cfg)
    qa = ingest(paths["events"], paths["cells"], paths["bridge"], tmp / "ing", KEY, units=paths["units"])
    return tmp, cfg, paths, qa


def test_bad_rows_reported_with_file_and_row(tmp_path):
    events = tmp_path / "events"
    shutil.copytree(R1 / "events", events)
    f = events / "date=2024-01-01" / "events.csv"
    f.write_text(
        f.read_text()
        + "s1,not a time,C1,call,true,s2\n"  # row 5
        + "s1,2024-01-01T09:00:00Z,C9,call,true,s2\n"  # row 6: unknown cell
        + ",2024-01-01T09:00:00Z,C1,call,true,s2\n"  # row 7: no subscriber
        + "s1,2024-01-02T09:00:00Z,C1,call,true,s2\n"  # row 8: another day
        + "s1,2024-01-01T09:00:00Z,,call,true,s2\n"  # row 9: null cell
        + "s1,2024-01-01T09:00:00Z,C1,fax,true,s2\n"  # row 10
    )
    qa = ingest(events, R1 / "cells.csv", R1 / "bridge.csv", tmp_path / "out", KEY)
    day = qa["days"][0]
    assert (day["rows"], day["clean_rows"], day["bad_rows"]) == (10, 4, 6)
    assert day["unknown_cell"] == 1 and day["unparseable_time"] == 1 and day["null_cell"] == 1
    bad = pl.read_parquet(tmp_path / "out" / "bad_rows" / "date=2024-01-01" / "part-0.parquet").sort("row")
    assert bad["row"].to_list() == [5, 6, 7, 8, 9, 10]
    assert bad["reason"].to_list() == [
        "unparseable time",
        "unknown cell",
        "missing subscriber",
        "outside its day partition",
        "null cell",
        "unknown event type",
    ]
    assert set(bad["file"]) == {str(f)}


def test_parquet_in_chunks_same_rows_and_report(tmp_path):
    """A day read in record batches: the same clean rows, bad rows at the same file rows."""
    src = R1 / "events" / "date=2024-01-02" / "events.csv"
    lines = src.read_text().splitlines()
    lines.insert(3, "s1,not a time,C1,call,true,s2")  # data row 3
    csv = tmp_path / "events" / "date=2024-01-02" / "e.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("\n".join(lines) + "\n")
    whole = ingest(tmp_path / "events", R1 / "cells.csv", R1 / "bridge.csv", tmp_path / "a", KEY)
    pq_dir = tmp_path / "pq" / "date=2024-01-02"
    pq_dir.mkdir(parents=True)
    pl.read_csv(csv, infer_schema=False).write_parquet(pq_dir / "e.parquet", row_group_size=2)
    csv.unlink()
    chunked = ingest(tmp_path / "pq", R1 / "cells.csv", R1 / "bridge.csv", tmp_path / "b", KEY, chunk_rows=2)
    assert chunked["days"] == whole["days"]
    assert (
        len(list((tmp_path / "b" / "events" / "date=2024-01-02").glob("part-*.parquet"))) == 3
    )  # 5 rows in chunks of 2
    bad = pl.read_parquet(tmp_path / "b" / "bad_rows" / "date=2024-01-02" / "part-0.parquet")
    assert bad["row"].to_list() == [3]
    a = pl.read_parquet(tmp_path / "a" / "events" / "*" / "*.parquet").sort("ts")
    b = pl.read_parquet(tmp_path / "b" / "events" / "*" / "*.parquet").sort("ts")
    assert a.equals(b)


def test_small_row_groups_are_cleaned_in_big_chunks(tmp_path):
    """A Parquet day written with tiny row groups is cleaned in chunks of up to chunk_rows
    rows (here 5 rows in groups of 1 with a dictionary column, which pyarrow will not batch
    across groups: one clean part, not one per row group; in chunks of 3:
    two), with the bad row still reported at its file row."""
    src = R1 / "events" / "date=2024-01-02" / "events.csv"
    lines = src.read_text().splitlines()
    lines.insert(3, "s1,not a time,C1,call,true,s2")  # data row 3
    pq_dir = tmp_path / "pq" / "date=2024-01-02"
    pq_dir.mkdir(parents=True)
    csv = tmp_path / "e.csv"
    csv.write_text("\n".join(lines) + "\n")
    frame = pl.read_csv(csv, infer_schema=False).with_columns(pl.col("event_type").cast(pl.Categorical))
    frame.write_parquet(pq_dir / "e.parquet", row_group_size=1)  # dictionary-encoded, as generated
    for chunk_rows, parts in ((100, 1), (3, 2)):
        out = ingest(tmp_path / "pq", R1 / "cells.csv", R1 / "bridge.csv", tmp_path / "b", KEY, chunk_rows=chunk_rows)
        assert len(list((tmp_path / "b" / "events" / "date=2024-01-02").glob("part-*.parquet"))) == parts
    assert out["days"][0]["rows"] == 5 and out["days"][0]["clean_rows"] == 4
    bad = pl.read_parquet(tmp_path / "b" / "bad_rows" / "date=2024-01-02" / "part-0.parquet")
    assert bad["row"].to_list() == [3]


def test_missing_column_names_file_and_column(tmp_path):
    events = tmp_path / "events" / "date=2024-01-01"
    events.mkdir(parents=True)
    (events / "e.csv").write_text("msisdn,ts,event_type\ns1,2024-01-01T00:00:00Z,call\n")
    with pytest.raises(SafemicroError) as e:
        ingest(tmp_path / "events", R1 / "cells.csv", R1 / "bridge.csv", tmp_path / "out", KEY)
    assert "cell_id" in str(e.value) and "e.csv" in str(e.value)


def test_no_raw_number_in_any_output(synthetic):
    tmp, _, paths, _ = synthetic
    from safemicro.mobility.daily import stage_i

    stage_i(tmp / "ing", tmp / "daily")
    raw = pl.read_parquet(paths["truth"])["msisdn"].cast(pl.String).to_list()
    needles = [n.encode() for n in raw[:300]] + [int(n).to_bytes(8, "little") for n in raw[:300]]
    files = [p for p in (tmp / "ing").rglob("*") if p.is_file()] + [
        p for p in (tmp / "daily").rglob("*") if p.is_file()
    ]
    assert len(files) > 10
    for p in files:
        blob = p.read_bytes()
        assert not any(n in blob for n in needles), p
    subs = pl.read_parquet(tmp / "ing" / "events" / "*" / "*.parquet")["sub"].unique()
    assert set(subs.to_list()) <= set(hmac64(KEY, raw))


def test_key_rotation_changes_every_pseudonym():
    nums = [str(250780000000 + i) for i in range(1000)]
    a, b = hmac64(KEY, nums), hmac64(KEY + b"x", nums)
    assert len(set(a)) == 1000 and not set(a) & set(b)
    spelled = PseudonymMap(KEY).apply(pl.Series(["+250 780-000000", "250780000000"]))
    assert spelled.to_list() == hmac64(KEY, ["250780000000"]) * 2
    assert PseudonymMap(KEY).apply(pl.Series([250780000000])).to_list() == spelled.to_list()[:1]


def test_qa_report(synthetic):
    _, cfg, _, qa = synthetic
    assert [d["date"] for d in qa["days"]] == [(cfg.start + dt.timedelta(days=i)).isoformat() for i in range(7)]
    assert all(d["bad_rows"] == 0 and d["subscribers"] > 1000 for d in qa["days"])
    assert qa["days"][0]["events_per_subscriber"]["p99"] > 3 * qa["days"][0]["events_per_subscriber"]["p50"]


def test_generator_rates_and_truth(tmp_path):
    """The study's checks: mean events per active SIM-day, silent share, displaced ~ Binomial."""
    cfg = SynthConfig(n_subscribers=8000, days=4, seed=5, scenario=Scenario(origins=["R1D1C1", "R2D1C1"], day=1))
    paths = generate(tmp_path, cfg)
    e = pl.scan_parquet(paths["events"] / "*" / "*.parquet")
    per_day = e.group_by(pl.col("ts").dt.date(), "msisdn").len().collect()
    truth = pl.read_parquet(paths["truth"])
    # days 2-3 are in the outage for the origins: look at day 0 only for the rates
    d0 = per_day.filter(pl.col("ts") == cfg.start)
    active_sims = truth.filter(pl.col("sim_start") <= cfg.start).height
    assert abs(1 - d0.height / active_sims - cfg.p_silent) < 0.02
    assert d0["len"].mean() == pytest.approx(cfg.mean_events, rel=0.05)
    persons = truth.unique("person_id")
    n_a = persons.filter(pl.col("home_pcode").is_in(cfg.scenario.origins)).height
    left = persons.filter(pl.col("displaced")).height
    assert abs(left - 0.4 * n_a) < 4 * np.sqrt(n_a * 0.4 * 0.6)
    assert persons.filter(pl.col("displaced"))["dest_pcode"].is_in(cfg.scenario.origins).sum() == 0
    places = pl.read_parquet(paths["truth"].parent / "daily" / "date=2024-01-04" / "part-0.parquet")
    moved = persons.filter(pl.col("departed_on") <= dt.date(2024, 1, 4)).join(places, on="person_id")
    assert moved.height and (moved["admin3"].cast(pl.String) == moved["dest_pcode"]).all()
    again = generate(tmp_path / "again", cfg)
    first = pl.read_parquet(paths["events"] / "date=2024-01-02" / "part-0.parquet")
    assert first.equals(pl.read_parquet(again["events"] / "date=2024-01-02" / "part-0.parquet"))


def test_bridge_from_polygons_and_point_in_polygon():
    lat = Lattice()
    ring = lat.polygons()["R1D1C1"]
    inside = points_in_polygon(np.array([30.1, 30.3, 30.0]), np.array([-1.9, -1.9, -2.0]), ring)
    assert inside.tolist() == [True, False, True]  # the lower-left corner belongs to the unit
    cells = pl.DataFrame({"cell_id": ["a", "b"], "lon": [30.1, 31.9], "lat": [-1.9, -0.1]})
    bridge = bridge_from_polygons(cells, lat.polygons())
    assert bridge["pcode"].to_list() == ["R1D1C1", "R4D4C4"]
    with pytest.raises(SafemicroError, match="lies in no admin polygon"):
        bridge_from_polygons(pl.DataFrame({"cell_id": ["z"], "lon": [0.0], "lat": [0.0]}), lat.polygons())


def test_engines_agree_on_generated_data(synthetic):
    """Stage i by Polars and by DuckDB: the same daily tables, row for row."""
    from safemicro.mobility.daily import stage_i

    tmp = synthetic[0]
    stage_i(tmp / "ing", tmp / "d_polars", engine="polars")
    stage_i(tmp / "ing", tmp / "d_duckdb", engine="duckdb")
    for table in ("daily", "cellcounts", "contacts"):
        a = pl.read_parquet(tmp / "d_polars" / table / "*" / "*.parquet", hive_partitioning=False)
        b = pl.read_parquet(tmp / "d_duckdb" / table / "*" / "*.parquet", hive_partitioning=False)
        keys = [c for c in ("sub", "date", "cell_ix", "counterpart") if c in a.columns]
        assert a.sort(keys).equals(b.select(a.columns).sort(keys)), table


def _dated(table_root):
    """A daily table's rows of every day, with the day of their folder."""
    rows = pl.read_parquet(table_root / "*" / "*.parquet", hive_partitioning=False, include_file_paths="f")
    return rows.with_columns(pl.col("f").str.extract(r"date=([\d-]+)").alias("day")).drop("f")


def test_big_days_are_split_by_subscriber_bucket(synthetic):
    """A day of more than ``bucket_rows`` events is written in subscriber buckets (every
    subscriber's events of a day in one bucket, the same clean rows and QA), and stage i
    computed a bucket at a time gives the same daily tables and features as the whole day."""
    from safemicro.mobility.daily import stage_i
    from safemicro.mobility.features import subscriber_features, window_days

    tmp, _, paths, qa = synthetic
    bucketed = ingest(
        paths["events"], paths["cells"], paths["bridge"], tmp / "ing_b", KEY, units=paths["units"], bucket_rows=2000
    )
    assert bucketed == qa
    day = tmp / "ing_b" / "events" / "date=2024-01-02"
    names = sorted(f.name for f in day.glob("*.parquet"))
    assert len(names) > 4 and all("-b" in n for n in names), names
    owners = pl.concat(
        [
            pl.read_parquet(f).select(pl.col("sub").unique(), pl.lit(f.name.split("-b")[1]).alias("b"))
            for f in day.iterdir()
        ]
    ).unique()
    assert owners["sub"].is_unique().all()  # one bucket per subscriber
    whole = pl.read_parquet(tmp / "ing" / "events" / "*" / "*.parquet").sort("sub", "ts", "cell_ix")
    assert whole.equals(pl.read_parquet(tmp / "ing_b" / "events" / "*" / "*.parquet").sort("sub", "ts", "cell_ix"))
    stage_i(tmp / "ing", tmp / "d_whole")
    for engine in ("polars", "duckdb"):
        stage_i(tmp / "ing_b", tmp / f"d_b_{engine}", engine=engine)
        for table in ("daily", "cellcounts", "contacts"):
            a, b = (_dated(tmp / d / table) for d in ("d_whole", f"d_b_{engine}"))
            assert len(list((tmp / f"d_b_{engine}" / table / "date=2024-01-02").iterdir())) > 1
            keys = [c for c in ("sub", "day", "cell_ix", "counterpart") if c in a.columns]
            assert a.sort(keys).equals(b.select(a.columns).sort(keys)), (engine, table)
    cells = pl.read_parquet(tmp / "ing" / "cells.parquet")
    base, follow = (
        window_days(dt.date(2024, 1, 1), dt.date(2024, 1, 4)),
        window_days(dt.date(2024, 1, 4), dt.date(2024, 1, 8)),
    )
    a = subscriber_features(tmp / "d_whole", cells, base, follow).sort("sub")
    b = subscriber_features(tmp / "d_b_polars", cells, base, follow).sort("sub")
    assert a.drop("rog_km").equals(b.drop("rog_km"))
    assert np.allclose(a["rog_km"].to_numpy(), b["rog_km"].to_numpy(), rtol=1e-12, atol=1e-9)  # sums in another order


def test_cell_versions_by_validity_dates(tmp_path):
    """C1 is re-sited on 2024-01-02: events of 01-01 use version 0, later ones version 1;
    two versions valid on one day are refused naming the cell."""
    cells = tmp_path / "cells.csv"
    cells.write_text(
        "cell_id,version,lon,lat,valid_from,valid_to\n"
        "C1,0,0.0,0.0,,2024-01-01\nC1,1,0.5,0.0,2024-01-02,\nC2,0,0.01,0.0,,\nC3,0,1.0,0.0,,\n"
    )
    ingest(R1 / "events", cells, R1 / "bridge.csv", tmp_path / "out", KEY)
    resolved = pl.read_parquet(tmp_path / "out" / "cells.parquet")
    ix = dict(zip(zip(resolved["cell_id"], resolved["version"]), resolved["cell_ix"]))
    ev = pl.read_parquet(tmp_path / "out" / "events" / "*" / "*.parquet", hive_partitioning=False)
    c1 = ev.filter(pl.col("cell_ix").is_in([ix[("C1", 0)], ix[("C1", 1)]]))
    assert sorted(zip(c1["ts"].dt.day(), c1["cell_ix"])) == [(1, ix[("C1", 0)]), (1, ix[("C1", 0)]), (2, ix[("C1", 1)])]
    cells.write_text(
        "cell_id,version,lon,lat,valid_from,valid_to\nC1,0,0,0,,\nC1,1,0.5,0,2024-01-02,\nC2,0,0,0,,\nC3,0,1,0,,\n"
    )
    with pytest.raises(SafemicroError, match="C1.*two versions valid on 2024-01-02"):
        ingest(R1 / "events", cells, R1 / "bridge.csv", tmp_path / "out2", KEY)


def test_generator_writes_a_day_in_blocks_of_sims(tmp_path, monkeypatch):
    """A day of more SIMs than a block is written as one part per block (a billion-event
    run never holds a day whole): each SIM in one block only, reproducible, same rates."""
    import safemicro.mobility.synth_days as synth_days

    monkeypatch.setattr(synth_days, "BLOCK_SIMS", 1000)
    cfg = SynthConfig(n_subscribers=2500, days=1, seed=3)
    day = generate(tmp_path / "a", cfg)["events"] / "date=2024-01-01"
    parts = sorted(day.glob("part-*.parquet"))
    assert [p.name for p in parts] == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    sims = [set(pl.read_parquet(p)["msisdn"]) for p in parts]
    assert not (sims[0] & sims[1]) and not (sims[1] & sims[2]) and not (sims[0] & sims[2])
    events = pl.read_parquet(day / "*.parquet")
    assert events.group_by("msisdn").len()["len"].mean() == pytest.approx(cfg.mean_events, rel=0.1)
    again = generate(tmp_path / "b", cfg)["events"] / "date=2024-01-01"
    assert all(pl.read_parquet(p).equals(pl.read_parquet(again / p.name)) for p in parts)


def test_hmac64_is_the_standard_hmac_sha256():
    """The pseudonym function (inner/outer states computed once) against Python's hmac
    module, for a short key and a key longer than SHA-256's 64-byte block."""
    import hashlib
    import hmac

    for key in (KEY, b"k" * 100):
        texts = ["250780000000", "1", ""]
        want = [int.from_bytes(hmac.new(key, t.encode(), hashlib.sha256).digest()[:8], "big") for t in texts]
        assert hmac64(key, texts) == want
