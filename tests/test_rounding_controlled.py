"""Controlled rounding of a table with margins: additive, each value at an adjacent multiple
of the base, and as close as possible — checked against brute force over every up/down
choice on a small two-way table (the independent reference)."""

from __future__ import annotations

from itertools import product

import numpy as np
import polars as pl
import pytest

from safemicro.errors import SafemicroError
from safemicro.service.protection_cells import add_margins
from safemicro.service.rounding_controlled import controlled_round


def _table() -> pl.DataFrame:
    cells = pl.DataFrame(
        {"r": ["a", "a", "a", "b", "b", "b"], "c": ["x", "y", "z", "x", "y", "z"], "n": [3, 7, 12, 6, 1, 10]}
    )
    t = add_margins(cells.with_columns(total=pl.lit(None, dtype=pl.Float64)), ["r", "c"]).select("r", "c", "n")
    return t.sort(["r", "c"], nulls_last=True)


def _additive(t: pl.DataFrame) -> bool:
    inner = t.filter(pl.col("r").is_not_null() & pl.col("c").is_not_null())
    rows = inner.group_by("r").agg(pl.col("n").sum()).sort("r")["n"].to_list()
    cols = inner.group_by("c").agg(pl.col("n").sum()).sort("c")["n"].to_list()
    m = t.filter(pl.col("c").is_null() & pl.col("r").is_not_null()).sort("r")["n"].to_list()
    k = t.filter(pl.col("r").is_null() & pl.col("c").is_not_null()).sort("c")["n"].to_list()
    total = t.filter(pl.col("r").is_null() & pl.col("c").is_null())["n"][0]
    return rows == m and cols == k and total == inner["n"].sum()


def test_additive_adjacent_and_optimal_against_brute_force():
    t = _table()
    out = controlled_round(t, ["r", "c"], "n", 5)
    v, r = t["n"].to_numpy(), out["n"].to_numpy()
    assert _additive(out)
    assert np.all((r % 5) == 0) and np.all(np.abs(r - v) < 5)
    assert np.all(r[v % 5 == 0] == v[v % 5 == 0])  # multiples of the base stay
    best = np.inf  # brute force: every cell down or up, keep the additive ones
    lo, hi = np.floor(v / 5) * 5, np.ceil(v / 5) * 5
    for ups in product([0, 1], repeat=len(v)):
        cand = np.where(np.array(ups) == 1, hi, lo)
        if _additive(t.with_columns(pl.Series("n", cand.astype(np.int64)))):
            best = min(best, np.abs(cand - v).sum())
    assert np.abs(r - v).sum() == best


def test_errors():
    t = _table().with_columns(pl.lit(None, dtype=pl.Int64).alias("n"))
    with pytest.raises(SafemicroError, match="no missing"):
        controlled_round(t, ["r", "c"], "n", 5)
    with pytest.raises(SafemicroError, match="positive integer"):
        controlled_round(_table(), ["r", "c"], "n", 0)
