"""DuckDB over Parquet or CSV files (out of core: DuckDB spills to disk beyond its memory
limit) and over in-memory frames. Errors name the file and, where DuckDB tells, the column."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl

from safemicro.engine.sql import household_sql, key_counts_sql, value_counts_sql
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
            err = _error(exc, source)
            if err.column is None and err.row is None and isinstance(source, (str, Path)):
                from safemicro.engine.writer import bad_row_group

                g = bad_row_group(source)
                if g is not None:
                    err.message = f"row group {g} is damaged and cannot be read ({err.message.strip(': ')})"
            raise err from None

    def n_records(self, source: Source) -> int:
        return int(self._run(source, f"SELECT COUNT(*) AS n FROM {self.relation(source)}")["n"][0])

    def columns(self, source: Source) -> list[str]:
        return self._run(source, f"DESCRIBE SELECT * FROM {self.relation(source)}")["column_name"].to_list()

    def key_counts(
        self, source: Source, keys: list[str], weight: str | None, household: str | None = None
    ) -> KeyCounts:
        out = self._run(source, key_counts_sql(self.relation(source), keys, weight))
        return KeyCounts(
            out.select(keys), out["__n"].cast(pl.Float64).to_numpy(), out["__w"].cast(pl.Float64).to_numpy()
        )

    def value_counts(self, source: Source, keys: list[str], column: str) -> pl.DataFrame:
        return self._run(source, value_counts_sql(self.relation(source), keys, column))

    def household_log_keep(
        self, source: Source, keys: list[str], household: str, key_values: pl.DataFrame, log_keep: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        self.con.register("__kr", key_values.with_columns(pl.Series("__lk", log_keep)).to_arrow())
        out = self._run(source, household_sql(self.relation(source), "__kr", keys, household))
        return out["__size"].cast(pl.Int64).to_numpy(), out["__s"].cast(pl.Float64).to_numpy()


def _error(exc: Exception, source: Source) -> SafemicroError:
    """One clear line from a DuckDB error: the file (the one of a multi-file dataset that
    failed), the column and the CSV line when DuckDB tells them."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    first = re.sub(r"^[A-Za-z ]*Error: ", "", first)
    file = source_name(source)
    column = row = None
    m = re.search(r'[Cc]olumn "([^"]+)" not found', text) or re.search(r'column "([^"]+)"', text)
    if m:
        column = m.group(1)
    m = re.search(r'Error while reading file "([^"]+)"', text)
    if m:
        file = m.group(1)
    m = re.search(r"CSV Error on Line: (\d+)", text)
    if m:
        row = int(m.group(1)) - 1  # the header is line 1
        value = re.search(r'Could not convert string "([^"]*)" to \'?([A-Z]+)', text)
        first = (
            f"value {value.group(1)!r} is not a {value.group(2)} like the first rows of the column"
            if value
            else first.removeprefix("CSV Error on ")
        )
    m = re.search(r"failed to cast column \"[^\"]+\" from type (\w+) to (\w+)", text)
    if m:
        first = f"the column holds {m.group(1)} in this file but {m.group(2)} in the first file of the dataset"
    if "No magic bytes" in first:
        first = "not a complete Parquet file (truncated or still being written?)"
    return SafemicroError(first, file=file, column=column, row=row)
