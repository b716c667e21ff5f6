"""Why a key combination is rare: how many records share it with one key variable left out.

A combination seen in ``fk`` records becomes a combination of ``fk_without[v]`` records when
key ``v`` is not released; the variable whose removal raises the count most is the one
that makes the combination rare. Missing values count as matching anything (the same
wildcard rule as :func:`safemicro.keys.build_key_table` with ``alpha = 1``).

>>> import polars as pl
>>> frame = pl.DataFrame({"sex": [1, 1, 1, 2], "age": [30, 30, 30, 30], "camp": [1, 1, 2, 1]})
>>> [(r["variable"], r["fk_without"]) for r in why_rare(frame, ["sex", "age", "camp"], {"sex": 1, "age": 30, "camp": 2})]
[('camp', 3), ('sex', 1), ('age', 1)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl


def _matches(frame: pl.DataFrame, name: str, value: Any) -> pl.Expr:
    col = pl.col(name)
    if value is None:
        return pl.lit(True)
    return col.is_null() | (col == pl.lit(value, dtype=frame.schema[name]))


def why_rare(frame: pl.DataFrame, keys: Sequence[str], values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """For one key combination ``values``: its count ``fk`` and, per key variable, the count
    with that variable left out (``fk_without``), largest first. ``frame`` holds the keys
    as the risk measures see them (user-missing codes as null)."""
    hits = {name: _matches(frame, name, values.get(name)) for name in keys}
    exprs = [pl.all_horizontal(list(hits.values())).sum().alias("__all")]
    for name in keys:
        others = [h for n, h in hits.items() if n != name] or [pl.lit(True)]
        exprs.append(pl.all_horizontal(others).sum().alias(name))
    counts = frame.select(exprs).row(0, named=True)
    fk = int(counts.pop("__all"))
    rows = [
        {"variable": name, "fk": fk, "fk_without": int(counts[name]), "gain": int(counts[name]) - fk} for name in keys
    ]
    return sorted(rows, key=lambda r: -r["fk_without"])
