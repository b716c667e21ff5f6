"""Stage i: one clean day partition -> the per-subscriber daily tables (never all events).

For each day and subscriber (definitions of the study, section 8.2, F1):
- ``daily``: ``unit_last`` (the admin3 of the latest event; equal times: the smallest
  cell_id), ``unit_mc`` (the admin3 with most events; ties: the unit of the latest event
  among the tied units, then the smallest pcode), ``n_events``, ``n_night`` (local hour
  >= 20 or < 4, F7's hours), events by type;
- ``cellcounts``: events per cell (the radius of gyration of any window is computed exactly
  from these: :mod:`.features`);
- ``contacts``: the distinct counterparts other than the subscriber (for degree, F8).
``hours=(h0, h1)`` restricts the daily location (not the counts) to events with local hour
in [h0, h1) (wrapping past midnight when h0 > h1). Three engines compute the same tables: Polars
(lazy), DuckDB and Spark (the SQL of :mod:`.sql`); :func:`stage_i` runs any of them over every
day partition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.mobility.ingest import by_bucket, day_partitions
from safemicro.mobility.sql import NIGHT, TABLES, daily_sql


def hour_in(col: str, hours: tuple[int, int]) -> pl.Expr:
    h0, h1 = hours
    h = pl.col(col)
    return (h >= h0) & (h < h1) if h0 < h1 else (h >= h0) | (h < h1)


def daily_polars(
    events: pl.LazyFrame, cells: pl.DataFrame, day: dt.date, hours: tuple[int, int] | None = None
) -> dict[str, pl.DataFrame]:
    """The three daily tables of one day's clean events (Polars).

    The events are grouped once, by (sub, cell_ix); the admin3 of a cell is joined to that
    much smaller table, and every daily column follows from it exactly: ``unit_last`` is the
    unit of the cell with the latest located event (equal times: the smallest cell_ix),
    ``unit_mc`` sums the cells of a unit (count, latest time), the counts sum over cells."""
    loc = hour_in("hour", hours) if hours is not None else None
    per_cell = events.group_by("sub", "cell_ix").agg(
        pl.len().cast(pl.Int64).alias("n"),
        (pl.len() if loc is None else loc.sum()).cast(pl.Int64).alias("n_loc"),
        (pl.col("ts") if loc is None else pl.col("ts").filter(loc)).max().alias("t_loc"),
        hour_in("hour", NIGHT).sum().cast(pl.Int64).alias("n_night"),
        *[(pl.col("event_type") == t).sum().cast(pl.Int64).alias(f"n_{t}") for t in ("call", "sms", "data")],
    )
    contacts = (
        events.filter(pl.col("counterpart").is_not_null() & (pl.col("counterpart") != pl.col("sub")))
        .group_by("sub", "counterpart")  # distinct pairs (cheaper here than unique())
        .len()
        .select("sub", "counterpart")
    )
    per_cell, contacts = pl.collect_all([per_cell, contacts], engine="streaming")
    contacts = contacts.sort("sub", "counterpart")
    # units as integer codes in pcode order (ties then break the same way, integer keys are
    # cheaper to group and sort); sorted by sub, the per-subscriber group-bys take Polars'
    # sorted fast path
    units = cells.select(pl.col("admin3").unique().sort()).with_row_index("u")
    cell_u = cells.select("cell_ix", "admin3").join(units, on="admin3", how="left").select("cell_ix", "u")
    pc = per_cell.join(cell_u, on="cell_ix", how="left").sort("sub", "cell_ix")
    located = pc.filter(pl.col("n_loc") > 0)
    last = located.group_by("sub", maintain_order=True).agg(
        pl.col("u").sort_by(["t_loc", "cell_ix"], descending=[True, False]).first().alias("u_last")
    )
    mc = (
        located.group_by("sub", "u")
        .agg(pl.col("n_loc").sum().alias("n"), pl.col("t_loc").max().alias("t"))
        .sort(["sub", "n", "t", "u"], descending=[False, True, True, False])
        .filter(pl.col("sub").ne_missing(pl.col("sub").shift(1)))  # the first row of each sub
        .select("sub", pl.col("u").alias("u_mc"))
    )
    counts = pc.group_by("sub", maintain_order=True).agg(
        pl.col(c).sum() for c in ("n", "n_night", "n_call", "n_sms", "n_data")
    )
    name = {c: units.rename({"u": c, "admin3": f"unit_{c[2:]}"}) for c in ("u_last", "u_mc")}
    daily = (
        counts.rename({"n": "n_events"})
        .join(last, on="sub", how="left", maintain_order="left")
        .join(mc, on="sub", how="left", maintain_order="left")
        .join(name["u_last"], on="u_last", how="left", maintain_order="left")
        .join(name["u_mc"], on="u_mc", how="left", maintain_order="left")
        .drop("u_last", "u_mc")
        .with_columns(pl.lit(day).alias("date"))
    )
    cellcounts = pc.select("sub", "cell_ix", "n")
    return {"daily": daily, "cellcounts": cellcounts, "contacts": contacts}


def daily_duckdb(
    events_files: list[Path], cells: pl.DataFrame, day: dt.date, hours: tuple[int, int] | None = None, *, con=None
) -> dict[str, pl.DataFrame]:
    """The same three tables computed by DuckDB over the partition files (the SQL text of
    :mod:`.sql`, which the Spark engine runs too)."""
    import duckdb

    own = con is None
    con = con or duckdb.connect()
    cell_units = cells.select("cell_ix", "admin3").to_arrow()
    con.register("cell_units", cell_units)
    src = f"read_parquet({[str(f) for f in events_files]!r})"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW ev AS SELECT e.*, c.admin3, DATE '{day.isoformat()}' AS date "
        f"FROM {src} e LEFT JOIN cell_units c USING (cell_ix)"
    )
    sql = daily_sql(hours)
    daily = con.sql(sql["daily"]).pl().sort("sub")
    cellcounts = con.sql(sql["cellcounts"]).pl().drop("date").sort("sub", "cell_ix")
    contacts = con.sql(sql["contacts"]).pl().drop("date").sort("sub", "counterpart")
    if own:
        con.close()
    return {"daily": daily, "cellcounts": cellcounts, "contacts": contacts}


def stage_i(
    ingested: str | Path,
    out: str | Path,
    *,
    engine: str = "polars",
    hours: tuple[int, int] | None = None,
    progress: Callable[[dt.date], None] | None = None,
) -> list[dt.date]:
    """Daily tables of every ingested day partition, written to ``out/<table>/date=.../``
    (one part per subscriber bucket of the day, :func:`.ingest.by_bucket`)."""
    if engine not in ("polars", "duckdb", "spark"):
        raise SafemicroError(f"unknown engine {engine!r} (polars, duckdb or spark)")
    if engine == "spark":  # all days in one job, on the active (or a local) session
        from safemicro.mobility.spark_engine import MobilitySpark

        days = MobilitySpark().stage_i(ingested, out, hours=hours)
        for day in days if progress is not None else []:
            progress(day)
        return days
    src = Path(ingested)
    cells = pl.read_parquet(src / "cells.parquet")
    root = Path(out)
    days = []
    con = None
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
    for day, files in day_partitions(src / "events"):
        for name in TABLES:  # an earlier run's parts
            for stale in (root / name / f"date={day.isoformat()}").glob("part-*.parquet"):
                stale.unlink()
        for b, group in enumerate(by_bucket(files)):  # a subscriber bucket at a time
            if engine == "polars":
                tables = daily_polars(pl.scan_parquet(group), cells, day, hours)
            else:
                tables = daily_duckdb(group, cells, day, hours, con=con)
            for name, frame in tables.items():
                d = root / name / f"date={day.isoformat()}"
                d.mkdir(parents=True, exist_ok=True)
                frame.write_parquet(d / f"part-{b}.parquet", statistics=False)
        days.append(day)
        if progress is not None:
            progress(day)
    if con is not None:
        con.close()
    return days
