"""Where the data-scale steps run: one small seam, interchangeable engines.

Everything disclosure control needs from the records themselves is a group-by: the key
counts (records and weight per distinct key, :class:`KeyCounts`), the household sums of
log(1 - r) for household risk, and the rewrite of the released file from decisions taken
per distinct key. An :class:`Engine` does those steps where the data lives; the risk
mathematics, suppression decisions and reports work on the small key table, unchanged.

Engines: ``polars`` (in memory, the default, today's numbers), ``polars-streaming`` and
``duckdb`` (out of core over Parquet/CSV, duckdb also over a SQL table), ``spark``
(a Spark DataFrame or Parquet dataset, the key table collected to the driver), ``sql``
(a table in PostgreSQL or another SQL database, the same query run on the server).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import polars as pl

from safemicro.engine.table import KeyCounts, Source, key_table_from_counts

__all__ = ["ENGINES", "Engine", "check_columns", "KeyCounts", "Source", "get_engine", "key_table_from_counts"]

ENGINES = ("polars", "polars-streaming", "duckdb", "spark", "sql")


class Engine(Protocol):
    """The data-scale steps. ``keys`` may be missing (null/NaN) anywhere; ``weight`` and
    ``household`` are column names or None."""

    name: str

    def n_records(self, source: Source) -> int: ...

    def columns(self, source: Source) -> list[str]: ...

    def key_counts(
        self, source: Source, keys: list[str], weight: str | None, household: str | None = None
    ) -> KeyCounts:
        """Records and summed weights per distinct combination of key values. ``household``:
        the household id that :meth:`household_log_keep` will be asked about next (an engine
        may keep what it needs from the same pass)."""
        ...

    def value_counts(self, source: Source, keys: list[str], column: str) -> pl.DataFrame:
        """Records per distinct (key values, ``column`` value): the key columns, ``column``
        and ``__n`` (for l-diversity of a sensitive variable)."""
        ...

    def household_log_keep(
        self, source: Source, keys: list[str], household: str, key_values, log_keep: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per household: its size and Σ log(1 - r) over its members, where ``log_keep[i]``
        belongs to the key ``key_values[i]`` (a frame of key values)."""
        ...


def check_columns(engine: Engine, source: Source, names: list[str]) -> None:
    """A clear error naming the first of ``names`` that ``source`` does not have."""
    import difflib

    from safemicro.engine.table import source_name
    from safemicro.errors import SafemicroError

    present = engine.columns(source)
    for name in names:
        if name not in present:
            close = difflib.get_close_matches(name, present, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SafemicroError(f"no such column{hint}", file=source_name(source), column=name)


def get_engine(name: str, **options) -> Engine:
    """The engine called ``name`` (one of :data:`ENGINES`)."""
    from safemicro.errors import SafemicroError

    if name == "polars":
        from safemicro.engine.polars_engine import PolarsEngine

        return PolarsEngine(streaming=False)
    if name == "polars-streaming":
        from safemicro.engine.polars_engine import PolarsEngine

        return PolarsEngine(streaming=True)
    if name == "duckdb":
        from safemicro.engine.duckdb_engine import DuckDBEngine

        return DuckDBEngine(**options)
    if name == "sql":
        from safemicro.engine.warehouse import SqlEngine

        return SqlEngine()
    if name == "spark":
        from safemicro.engine.spark_engine import SparkEngine

        return SparkEngine(**options)
    raise SafemicroError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
