"""Stage ii: per-subscriber features over declared windows, from the daily tables (F2-F10).

Windows are lists of local days (half-open ranges in the CLI). Definitions (study §8.2):
- F2 ``modal_location``: the mode of the daily locations over the window's days present;
  ties: the unit of the most recent day, then the smallest pcode.
- F3 ``majority_location``: the unit that is the daily location on more than
  max(active days, ``min_total_days``) / 2 days, else null (unlocatable); default
  ``min_total_days`` = ceil(0.5 x window length).
- F4 ``home_location``: F3 over the baseline with the daily location ``last``.
- F5 activity: active days and events by type.
- F6 radius of gyration, event-weighted: c = (mean lat, mean lon) of the event cells;
  RoG = sqrt(mean over events of haversine(x_i, c)^2), R = 6371.0088 km (a sphere; FlowKit
  uses the spheroid, about 0.3 % apart).
- F7 nocturnal share: 100 x events with local hour >= 20 or < 4 / events.
- F8 degree: distinct counterparts other than the subscriber.
- F9 status: home0 = F4(baseline), home1 = F3(follow-up); ``stayed`` if equal,
  ``displaced`` if both defined and different, ``unlocatable`` if home1 is null but the
  subscriber is active in the follow-up, ``inactive`` if absent from it; subscribers without
  a baseline home are ``no_home``.
- F10 returned: displaced at follow-up and the majority location over a later window equals
  home0.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError

R_EARTH_KM = 6371.0088


def scan(daily_root: str | Path, table: str, days: list[dt.date]) -> pl.LazyFrame:
    """The ``table`` rows of the given days (lazy; missing days are skipped). A day folder may
    hold several Parquet part files (Spark's layout); pseudonyms and cell indexes are read
    with the ingest types (Spark writes them as DECIMAL(20,0) and BIGINT)."""
    root = Path(daily_root) / table
    dated = [(sorted((root / f"date={d.isoformat()}").glob("*.parquet")), d) for d in days]
    if not any(files for files, _ in dated):
        raise SafemicroError(f"no {table} partitions for the window {days[0]}..{days[-1]}", file=str(root))
    ids = {"sub": pl.UInt64} | {"cellcounts": {"cell_ix": pl.UInt32}, "contacts": {"counterpart": pl.UInt64}}.get(
        table, {}
    )
    return pl.concat(
        [
            pl.scan_parquet(files).with_columns(pl.lit(d).alias("date")).cast(ids, strict=True)
            for files, d in dated
            if files
        ]
    )


def window_days(start: dt.date, stop: dt.date) -> list[dt.date]:
    """The days of the half-open window [start, stop)."""
    return [start + dt.timedelta(days=i) for i in range((stop - start).days)]


def modal_location(daily: pl.LazyFrame, column: str = "unit_last") -> pl.LazyFrame:
    """F2: sub, modal unit."""
    return (
        daily.filter(pl.col(column).is_not_null())
        .group_by("sub", column)
        .agg(pl.len().alias("k"), pl.col("date").max().alias("recent"))
        .sort(["sub", "k", "recent", column], descending=[False, True, True, False])
        .group_by("sub", maintain_order=True)
        .agg(pl.col(column).first().alias("modal"))
    )


def majority_location(
    daily: pl.LazyFrame, n_days: int, min_total_days: int | None = None, column: str = "unit_last"
) -> pl.LazyFrame:
    """F3: sub, majority unit (null when no unit holds a strict majority) and active days."""
    floor = math.ceil(0.5 * n_days) if min_total_days is None else min_total_days
    located = daily.filter(pl.col(column).is_not_null())
    active = daily.group_by("sub").agg(pl.col("date").n_unique().alias("active_days"))
    top = (
        located.group_by("sub", column)
        .agg(pl.len().alias("k"))
        .sort(["sub", "k", column], descending=[False, True, False])
        .group_by("sub", maintain_order=True)
        .agg(pl.col(column).first().alias("unit"), pl.col("k").first().alias("k"))
    )
    return (
        active.join(top, on="sub", how="left")
        .with_columns(
            pl.when(pl.col("k") > pl.max_horizontal(pl.col("active_days"), pl.lit(floor)) / 2)
            .then(pl.col("unit"))
            .alias("majority")
        )
        .select("sub", "majority", "active_days")
    )


def radius_of_gyration(cellcounts: pl.LazyFrame, cells: pl.DataFrame) -> pl.LazyFrame:
    """F6: sub, rog_km from per-cell event counts (exact for any window)."""
    per = (
        cellcounts.group_by("sub", "cell_ix")
        .agg(pl.col("n").sum())
        .join(cells.lazy().select("cell_ix", "lon", "lat"), on="cell_ix", how="left")
    )
    centre = per.group_by("sub").agg(
        ((pl.col("lat") * pl.col("n")).sum() / pl.col("n").sum()).alias("clat"),
        ((pl.col("lon") * pl.col("n")).sum() / pl.col("n").sum()).alias("clon"),
        pl.col("n").sum().alias("total"),
    )
    rad = math.pi / 180
    lat1, lat2 = pl.col("lat") * rad, pl.col("clat") * rad
    dlat, dlon = (pl.col("clat") - pl.col("lat")) * rad, (pl.col("clon") - pl.col("lon")) * rad
    a = (dlat / 2).sin().pow(2) + lat1.cos() * lat2.cos() * (dlon / 2).sin().pow(2)
    dist = 2 * R_EARTH_KM * a.sqrt().arcsin()
    return (
        per.join(centre, on="sub")
        .group_by("sub")
        .agg(((dist.pow(2) * pl.col("n")).sum() / pl.col("total").first()).sqrt().alias("rog_km"))
    )


def activity(daily: pl.LazyFrame) -> pl.LazyFrame:
    """F5 and F7: active days, events by type, nocturnal share (%)."""
    return daily.group_by("sub").agg(
        pl.col("date").n_unique().alias("active_days"),
        pl.col("n_events").sum(),
        pl.col("n_call").sum(),
        pl.col("n_sms").sum(),
        pl.col("n_data").sum(),
        (100.0 * pl.col("n_night").sum() / pl.col("n_events").sum()).alias("night_pct"),
    )


def degree(contacts: pl.LazyFrame) -> pl.LazyFrame:
    """F8: sub, distinct counterparts (already without the subscriber itself)."""
    return contacts.group_by("sub").agg(pl.col("counterpart").n_unique().cast(pl.Int64).alias("degree"))


def subscriber_features(
    daily_root: str | Path,
    cells: pl.DataFrame,
    baseline: list[dt.date],
    followup: list[dt.date],
    later: list[dt.date] | None = None,
    *,
    min_total_days: int | None = None,
    min_active_days: int = 1,
) -> pl.DataFrame:
    """The per-subscriber table: home0, home1, status, returned and the baseline metrics."""
    base = scan(daily_root, "daily", baseline)
    home0 = majority_location(base, len(baseline), min_total_days).rename({"majority": "home0"})
    metrics = (
        activity(base)
        .join(radius_of_gyration(scan(daily_root, "cellcounts", baseline), cells), on="sub", how="left")
        .join(degree(scan(daily_root, "contacts", baseline)), on="sub", how="left")
        .with_columns(pl.col("degree").fill_null(0))
    )
    home1 = majority_location(scan(daily_root, "daily", followup), len(followup), min_total_days).rename(
        {"majority": "home1", "active_days": "followup_days"}
    )
    table = (
        metrics.join(home0.drop("active_days"), on="sub", how="left")
        .filter(pl.col("active_days") >= min_active_days)
        .join(home1, on="sub", how="left")
    )
    status = (
        pl.when(pl.col("home0").is_null())
        .then(pl.lit("no_home"))
        .when(pl.col("followup_days").is_null())
        .then(pl.lit("inactive"))
        .when(pl.col("home1").is_null())
        .then(pl.lit("unlocatable"))
        .when(pl.col("home1") == pl.col("home0"))
        .then(pl.lit("stayed"))
        .otherwise(pl.lit("displaced"))
    )
    table = table.with_columns(status.alias("status"))
    if later:
        back = majority_location(scan(daily_root, "daily", later), len(later), min_total_days).select(
            "sub", pl.col("majority").alias("home2")
        )
        table = table.join(back, on="sub", how="left").with_columns(
            pl.when(pl.col("status") != "displaced")
            .then(pl.lit("na"))
            .when(pl.col("home2") == pl.col("home0"))
            .then(pl.lit("returned"))
            .otherwise(pl.lit("not_returned"))
            .alias("returned")
        )
    return table.collect(engine="streaming").sort("sub")
