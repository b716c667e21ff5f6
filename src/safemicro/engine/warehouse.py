"""SQL warehouses: the key-table step as one SQL query run inside the database.

A curator assesses a table where it lives (PostgreSQL, or any database SQLAlchemy
reaches) without exporting it: the same ``GROUP BY`` the DuckDB and Spark engines run
(:mod:`safemicro.engine.sql`) goes to the server, and only the key table comes back. For
household risk the small per-key table of log(1 - r) is put in a temporary table and
joined on the server. A source is ``SqlTable(url, table)`` or the string
``"<SQLAlchemy URL>#<schema.table>"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from safemicro.engine.sql import ANSI, household_sql, key_counts_sql, value_counts_sql
from safemicro.engine.table import KeyCounts, Source
from safemicro.errors import SafemicroError


@dataclass(frozen=True)
class SqlTable:
    url: str
    table: str  # "table" or "schema.table"

    @classmethod
    def parse(cls, source: Source) -> SqlTable:
        if isinstance(source, SqlTable):
            return source
        text = str(source)
        if "#" not in text:
            raise SafemicroError("a SQL source is '<database URL>#<table>'", file=text)
        url, table = text.rsplit("#", 1)
        return cls(url, table)

    @property
    def relation(self) -> str:
        return ".".join(ANSI.q(part) for part in self.table.split("."))

    def __str__(self) -> str:  # errors name the table, never the URL's password
        return f"table {self.table}"


class SqlEngine:
    name = "sql"

    def __init__(self) -> None:
        self._engines: dict[str, object] = {}

    def _engine(self, t: SqlTable):
        from sqlalchemy import create_engine

        if t.url not in self._engines:
            self._engines[t.url] = create_engine(t.url)
        return self._engines[t.url]

    def _query(self, t: SqlTable, sql: str, setup=None) -> pl.DataFrame:
        from sqlalchemy import text

        try:
            with self._engine(t).connect() as con:
                if setup is not None:
                    setup(con)
                result = con.execute(text(sql))
                cols = list(result.keys())
                rows = result.fetchall()
        except SafemicroError:
            raise
        except Exception as exc:  # SQLAlchemy/DBAPI errors
            first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise SafemicroError(first, file=str(t)) from None
        return pl.DataFrame([list(r) for r in rows], schema=cols, orient="row", infer_schema_length=None)

    def columns(self, source: Source) -> list[str]:
        t = SqlTable.parse(source)
        return self._query(t, f"SELECT * FROM {t.relation} WHERE 1 = 0").columns

    def n_records(self, source: Source) -> int:
        t = SqlTable.parse(source)
        return int(self._query(t, f"SELECT COUNT(*) AS n FROM {t.relation}")["n"][0])

    def key_counts(
        self, source: Source, keys: list[str], weight: str | None, household: str | None = None
    ) -> KeyCounts:
        t = SqlTable.parse(source)
        out = self._query(t, key_counts_sql(t.relation, keys, weight))
        return KeyCounts(
            out.select(keys), out["__n"].cast(pl.Float64).to_numpy(), out["__w"].cast(pl.Float64).to_numpy()
        )

    def value_counts(self, source: Source, keys: list[str], column: str) -> pl.DataFrame:
        t = SqlTable.parse(source)
        return self._query(t, value_counts_sql(t.relation, keys, column))

    def household_log_keep(
        self, source: Source, keys: list[str], household: str, key_values: pl.DataFrame, log_keep: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        from sqlalchemy import text

        t = SqlTable.parse(source)
        cols = ", ".join(ANSI.q(k) for k in keys)
        rows = [
            {**{f"k{j}": v for j, v in enumerate(row)}, "lk": float(lk)}
            for row, lk in zip(key_values.select(keys).iter_rows(), log_keep)
        ]

        def setup(con) -> None:  # the key risks, typed like the source's key columns
            con.execute(text(f"CREATE TEMPORARY TABLE __kr AS SELECT {cols} FROM {t.relation} WHERE 1 = 0"))
            con.execute(text("ALTER TABLE __kr ADD COLUMN __lk DOUBLE PRECISION"))
            params = ", ".join([*(f":k{j}" for j in range(len(keys))), ":lk"])
            con.execute(text(f"INSERT INTO __kr ({cols}, __lk) VALUES ({params})"), rows)

        out = self._query(t, household_sql(t.relation, "__kr", keys, household), setup=setup)
        return out["__size"].cast(pl.Int64).to_numpy(), out["__s"].cast(pl.Float64).to_numpy()
