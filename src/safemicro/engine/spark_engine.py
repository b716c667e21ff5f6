"""Spark: the same SQL on a Spark DataFrame or a Parquet/CSV dataset, the key table (and
the per-household sums) collected to the driver. On a cluster, pass the session of the
job (spark-submit, Databricks); without one, a local session is started."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from safemicro.engine.sql import SPARK, household_sql, key_counts_sql, value_counts_sql
from safemicro.engine.table import KeyCounts, Source, source_name
from safemicro.errors import SafemicroError


class SparkEngine:
    name = "spark"

    def __init__(self, spark=None, master: str = "local[2]"):
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise SafemicroError("engine spark needs pyspark: pip install 'safemicro[spark]'") from None
        self.spark = spark or (
            SparkSession.builder.master(master)
            .appName("safemicro")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )

    def frame(self, source: Source):
        """A Spark DataFrame for ``source`` (a DataFrame is used as it is)."""
        if not isinstance(source, (str, Path, pl.DataFrame)):
            return source
        if isinstance(source, pl.DataFrame):
            return self.spark.createDataFrame(source.to_pandas())
        path = str(source)
        if Path(path).suffix.lower() == ".csv":
            return self.spark.read.csv(path, header=True, inferSchema=True)
        return self.spark.read.parquet(path)

    def _sql(self, source: Source, sql: str, **views) -> pl.DataFrame:
        try:
            for name, df in views.items():
                df.createOrReplaceTempView(name)
            return pl.from_arrow(self.spark.sql(sql).toArrow())
        except Exception as exc:  # Spark's AnalysisException, Py4J errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SafemicroError(first, file=source_name(source)) from None

    def columns(self, source: Source) -> list[str]:
        try:
            return list(self.frame(source).columns)
        except Exception as exc:  # Spark's AnalysisException (path not found, unreadable)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SafemicroError(first, file=source_name(source)) from None

    def n_records(self, source: Source) -> int:
        return int(self._sql(source, "SELECT COUNT(*) AS n FROM __src", __src=self.frame(source))["n"][0])

    def key_counts(
        self, source: Source, keys: list[str], weight: str | None, household: str | None = None
    ) -> KeyCounts:
        out = self._sql(source, key_counts_sql("__src", keys, weight, SPARK), __src=self.frame(source))
        return KeyCounts(
            out.select(keys), out["__n"].cast(pl.Float64).to_numpy(), out["__w"].cast(pl.Float64).to_numpy()
        )

    def value_counts(self, source: Source, keys: list[str], column: str) -> pl.DataFrame:
        return self._sql(source, value_counts_sql("__src", keys, column, SPARK), __src=self.frame(source))

    def household_log_keep(
        self, source: Source, keys: list[str], household: str, key_values: pl.DataFrame, log_keep: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        kr = self.spark.createDataFrame(key_values.with_columns(pl.Series("__lk", log_keep)).to_pandas())
        out = self._sql(
            source, household_sql("__src", "__kr", keys, household, SPARK), __src=self.frame(source), __kr=kr
        )
        return out["__size"].cast(pl.Int64).to_numpy(), out["__s"].cast(pl.Float64).to_numpy()

    def write_released(self, source: Source, out, keys: list[str], decisions: pl.DataFrame, **_) -> int:
        """The released dataset written by Spark (a folder of Parquet part files): each
        record's key columns replaced by the released values of its original key
        combination, the decisions broadcast to every executor (missing matches missing).
        Spark keeps no record order; a record id column, if any, joins back."""
        from pyspark.sql import functions as F

        df = self.frame(source)
        dec = F.broadcast(self.spark.createDataFrame(decisions.to_pandas()).alias("d"))
        cond = [df[k].eqNullSafe(F.col(f"d.{k}")) for k in keys]
        cols = [F.col(f"d.__new_{c}").alias(c) if c in keys else df[c] for c in df.columns]
        try:
            released = df.join(dec, on=cond, how="left").select(cols)
            released.write.mode("errorifexists").parquet(str(out))
            return int(self.spark.read.parquet(str(out)).count())
        except Exception as exc:  # Spark's AnalysisException, Py4J errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SafemicroError(first, file=source_name(source)) from None
