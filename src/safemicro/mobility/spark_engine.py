"""Stage i and ii on Spark, for operators whose records are already in a cluster: the SQL
text of :mod:`.sql` (the one DuckDB runs) over the ingested day partitions (Parquet,
``events/date=YYYY-MM-DD/``). Stage i writes ``daily|cellcounts|contacts`` partitioned by
``date`` (Spark's part files); stage ii reads them back and collects only the
per-subscriber table to the driver. Pass the job's session (spark-submit); without one a
local session is started."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.mobility.sql import TABLES, daily_sql, features_sql, modal_sql


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _join(root: str | Path, *parts: str) -> str:
    """A child path as text (``Path`` would fold the ``//`` of hdfs:// or s3a:// URIs)."""
    return "/".join([str(root).rstrip("/"), *parts])


def _unsigned(frame: pl.DataFrame) -> pl.DataFrame:
    """Spark reads Parquet UInt64 as DECIMAL(20,0): the pseudonyms back to UInt64."""
    return frame.with_columns(pl.col(c).cast(pl.UInt64) for c in ("sub", "counterpart") if c in frame.columns)


class MobilitySpark:
    """Stage i (:meth:`stage_i`) and stage ii (:meth:`features`, :meth:`modal`) on Spark."""

    def __init__(self, spark=None, master: str = "local[2]"):
        from safemicro.engine.spark_engine import SparkEngine

        self.spark = SparkEngine(spark=spark, master=master).spark

    def _collect(self, sql: str, where: str) -> pl.DataFrame:
        try:
            return _unsigned(pl.from_arrow(self.spark.sql(sql).toArrow()))
        except Exception as exc:  # Spark's AnalysisException, Py4J errors
            raise SafemicroError(_first_line(exc), file=where) from None

    def stage_i(self, ingested: str | Path, out: str | Path, *, hours: tuple[int, int] | None = None) -> list[dt.date]:
        """The daily tables of every day partition of ``ingested/events``, written under
        ``out/<table>/date=.../``; returns the days found."""
        ev_root = _join(ingested, "events")
        try:
            events = self.spark.read.option("basePath", ev_root).parquet(ev_root)
            cells = self.spark.read.parquet(_join(ingested, "cells.parquet")).select("cell_ix", "admin3")
        except Exception as exc:  # path not found, unreadable
            raise SafemicroError(_first_line(exc), file=str(ingested)) from None
        if "date" not in events.columns:
            raise SafemicroError("no day partitions (folders named date=YYYY-MM-DD)", file=ev_root)
        events.join(cells, on="cell_ix", how="left").createOrReplaceTempView("ev")
        for name, sql in daily_sql(hours).items():
            try:
                self.spark.sql(sql).write.mode("overwrite").partitionBy("date").parquet(_join(out, name))
            except Exception as exc:
                raise SafemicroError(_first_line(exc), file=_join(out, name)) from None
        days = self.spark.sql("SELECT DISTINCT date FROM ev ORDER BY date").toArrow().column(0).to_pylist()
        return list(days)

    def _views(self, daily_root: str | Path, cells: str | Path | None = None) -> None:
        try:
            for name in TABLES:
                self.spark.read.parquet(_join(daily_root, name)).createOrReplaceTempView(name)
            if cells is not None:
                self.spark.read.parquet(str(cells)).createOrReplaceTempView("cells")
        except Exception as exc:
            raise SafemicroError(_first_line(exc), file=str(daily_root)) from None

    def modal(self, daily_root: str | Path, days: list[dt.date]) -> pl.DataFrame:
        """F2 over ``days``: sub, modal."""
        self._views(daily_root)
        return self._collect(modal_sql(days), str(daily_root)).sort("sub")

    def daily(self, daily_root: str | Path, table: str = "daily") -> pl.DataFrame:
        """One daily table collected to the driver (for checks on small data)."""
        self._views(daily_root)
        return self._collect(f"SELECT * FROM {table}", str(daily_root))

    def features(
        self,
        daily_root: str | Path,
        cells: str | Path,
        baseline: list[dt.date],
        followup: list[dt.date],
        later: list[dt.date] | None = None,
        *,
        min_total_days: int | None = None,
        min_active_days: int = 1,
    ) -> pl.DataFrame:
        """The per-subscriber table of :func:`.features.subscriber_features` (``cells`` is
        the ingested ``cells.parquet``)."""
        self._views(daily_root, cells)
        sql = features_sql(baseline, followup, later, min_total_days=min_total_days, min_active_days=min_active_days)
        return self._collect(sql, str(daily_root)).sort("sub")


def _window(text: str) -> list[dt.date]:
    start, stop = (dt.date.fromisoformat(x) for x in text.split(":"))
    return [start + dt.timedelta(days=i) for i in range((stop - start).days)]


def main(argv: list[str] | None = None) -> None:
    """``spark-submit spark_engine.py INGESTED OUT --baseline A:B --followup C:D [--later E:F]``:
    stage i into ``OUT/daily`` (on the cluster's storage), stage ii collected to the driver
    and written to the local ``features.parquet`` (windows half-open, as in the CLI)."""
    import argparse

    from safemicro.atomic import atomic_path

    p = argparse.ArgumentParser(prog="spark_engine.py")
    p.add_argument("ingested")
    p.add_argument("out")
    p.add_argument("--baseline", required=True)
    p.add_argument("--followup", required=True)
    p.add_argument("--later")
    p.add_argument("--features", default="features.parquet", help="local file for the per-subscriber table")
    a = p.parse_args(argv)
    from pyspark.sql import SparkSession

    mob = MobilitySpark(spark=SparkSession.builder.appName("safemicro-mobility").getOrCreate())
    mob.stage_i(a.ingested, _join(a.out, "daily"))
    later = _window(a.later) if a.later else None
    feats = mob.features(
        _join(a.out, "daily"), _join(a.ingested, "cells.parquet"), _window(a.baseline), _window(a.followup), later
    )
    with atomic_path(a.features) as tmp:
        feats.write_parquet(tmp)
    print(f"{feats.height} subscribers -> {a.features}")


if __name__ == "__main__":
    main()
