"""The data-scale steps as SQL text, one dialect knob (identifier quote, double type), so
that DuckDB, PostgreSQL and Spark SQL run the same queries where the data lives."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    quote: str = '"'
    double: str = "DOUBLE PRECISION"

    def q(self, name: str) -> str:
        return self.quote + name.replace(self.quote, self.quote * 2) + self.quote


ANSI = Dialect()
SPARK = Dialect(quote="`", double="DOUBLE")


def key_counts_sql(relation: str, keys: list[str], weight: str | None, d: Dialect = ANSI) -> str:
    """One row per distinct key combination: the key values, ``__n`` records, ``__w``
    summed weight (the record count when unweighted)."""
    cols = ", ".join(d.q(k) for k in keys)
    w = f"SUM(CAST({d.q(weight)} AS {d.double}))" if weight else f"CAST(COUNT(*) AS {d.double})"
    return f"SELECT {cols}, COUNT(*) AS __n, {w} AS __w FROM {relation} GROUP BY {cols}"


def value_counts_sql(relation: str, keys: list[str], column: str, d: Dialect = ANSI) -> str:
    """One row per distinct (key values, ``column`` value): ``__n`` records (l-diversity)."""
    cols = ", ".join(d.q(c) for c in (*keys, column))
    return f"SELECT {cols}, COUNT(*) AS __n FROM {relation} GROUP BY {cols}"


def household_sql(relation: str, key_relation: str, keys: list[str], household: str, d: Dialect = ANSI) -> str:
    """Per household: its size ``__size`` and Σ log(1 - r) ``__s`` over its members, the
    per-key ``__lk`` = log(1 - r) joined on the key values (missing matches missing)."""
    on = " AND ".join(f"r.{d.q(k)} IS NOT DISTINCT FROM kr.{d.q(k)}" for k in keys)
    h = d.q(household)
    return (
        f"SELECT r.{h} AS __h, COUNT(*) AS __size, SUM(kr.__lk) AS __s "
        f"FROM {relation} AS r JOIN {key_relation} AS kr ON {on} GROUP BY r.{h}"
    )
