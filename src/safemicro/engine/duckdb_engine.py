"""DuckDB over Parquet or CSV files (out of core: DuckDB spills to disk beyond its memory
limit) and over in-memory frames. Errors name the file and, where DuckDB tells, the column."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl

from safemicro.engine.sql import household_sql, key_counts_sql
from safemicro.engine.table import KeyCounts, Source, source_name
from safemicro.errors import SafemicroError


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, memory_limit: str | None = None, threads: int | None = None):
        import duckdb

        self.con = duckdb.connect()
        if memory_limit:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute("SET preserve_insertion_order = false")

    def relation(self, source: Source) -> str:
        """The FROM clause that reads ``source``."""
        if isinstance(source, pl.DataFrame):
            self.con.register("__src", source.to_arrow())
            return "__src"
        path = str(source)
        lit = "'" + path.replace("'", "''") + "'"
        suffix = Path(path).suffix.lower()
        if suffix in (".csv", ".txt", ".tsv") or path.endswith(".csv.gz"):
            return f"read_csv({lit})"
        return f"read_parquet({lit})"

    def _run(self, source: Source, sql: str) -> pl.DataFrame:
        try:
            return self.con.sql(sql).pl()
        except Exception as exc:  # duckdb raises its own error classes
            raise _error(exc, source) from None

    def n_records(self, source: Source) -> int:
        return int(self._run(source, f"SELECT COUNT(*) AS n FROM {self.relation(source)}")["n"][0])

    def columns(self, source: Source) -> dict[str, str]:
        out = self._run(source, f"DESCRIBE SELECT * FROM {self.relation(source)}")
        return dict(zip(out["column_name"].to_list(), out["column_type"].to_list()))

    def key_counts(self, source: Source, keys: list[str], weight: str | None) -> KeyCounts:
        out = self._run(source, key_counts_sql(self.relation(source), keys, weight))
        return KeyCounts(
            out.select(keys), out["__n"].cast(pl.Float64).to_numpy(), out["__w"].cast(pl.Float64).to_numpy()
        )

    def household_log_keep(
        self, source: Source, keys: list[str], household: str, key_values: pl.DataFrame, log_keep: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        self.con.register("__kr", key_values.with_columns(pl.Series("__lk", log_keep)).to_arrow())
        out = self._run(source, household_sql(self.relation(source), "__kr", keys, household))
        return out["__size"].cast(pl.Int64).to_numpy(), out["__s"].cast(pl.Float64).to_numpy()


def _error(exc: Exception, source: Source) -> SafemicroError:
    """One clear line from a DuckDB error: the file, the column when DuckDB names it."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    column = None
    m = re.search(r'[Cc]olumn (?:with name )?"?([^"\s]+)"? (?:not found|does not exist)', text)
    if m:
        column = m.group(1)
    first = re.sub(r"^[A-Za-z ]*Error: ", "", first)
    return SafemicroError(first, file=source_name(source), column=column)
