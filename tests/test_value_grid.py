"""The grid of a query's declared values from the records' codes (safemicro.service.value_grid),
against what a group-by of the records gives: the true cells of the DP and cell key modes."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safemicro.service import value_grid


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_grid_cells_equal_a_group_by_of_each_units_first_record(data):
    """The DP mode's true cells by codes (.value_grid) equal what a group-by gives: the records
    in every filter, each unit's first one among them in the data's order, grouped on the
    grid of the declared (or filtered) values; missing and undeclared values in no cell.
    Counts and each cell's two largest absolute values exactly, clamped sums to rounding."""
    n = data.draw(st.integers(0, 40))
    column = st.lists(st.sampled_from(["p", "q", "r", "x", None]), min_size=n, max_size=n)
    records = pl.DataFrame(
        {
            "_unit": [f"u{u}" for u in data.draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))],
            "a": data.draw(column),
            "b": data.draw(column),
            "m": data.draw(st.lists(st.none() | st.floats(-50, 150), min_size=n, max_size=n)),
        },
        schema={"_unit": pl.String, "a": pl.String, "b": pl.String, "m": pl.Float64},
    )
    values = {"a": ["p", "q", "r"], "b": ["r", "q"]}  # "x" is declared nowhere
    by = data.draw(st.sampled_from([[], ["a"], ["b"], ["a", "b"], ["b", "a"]]))
    picks = st.lists(st.sampled_from(["p", "q", "r"]), min_size=1, max_size=3, unique=True)
    where = {d: v for d, v in data.draw(st.dictionaries(st.sampled_from(["a", "b"]), picks)).items()}
    where = {d: [x for x in v if x in values[d]] for d, v in where.items()}
    where = {d: v for d, v in where.items() if v}
    one_record_each = data.draw(st.booleans())

    codes = value_grid.encode(records, values, one_record_each, ranked=["m"])
    rows, positions, shape = value_grid.cells_of(codes, values, by, where)
    counts = value_grid.counts(positions, shape)
    sums = value_grid.sums(codes, rows, positions, shape, "m", (0.0, 100.0))
    top = value_grid.largest(codes, rows, positions, shape, "m", 2).reshape(-1, 2)

    ref = records
    for d, v in where.items():
        ref = ref.filter(pl.col(d).is_in(v))
    if not one_record_each:
        ref = ref.filter(pl.col("_unit").is_first_distinct())
    axes = [where.get(d, values[d]) for d in by]
    for d, axis in zip(by, axes):
        ref = ref.filter(pl.col(d).is_in(axis))
    aggs = [
        pl.len(),
        pl.col("m").fill_null(0.0).clip(0.0, 100.0).sum(),
        pl.col("m").fill_null(0.0).abs().top_k(2).sort(descending=True).alias("top"),
    ]
    grouped = {
        tuple(r[:-3]): r[-3:]
        for r in (ref.group_by(by).agg(aggs) if by else ref.select(*aggs[:2], aggs[2].implode())).iter_rows()
    }
    for flat, label in enumerate(itertools.product(*axes)):
        n_ref, s_ref, top_ref = grouped.get(label, (0, 0.0, []))
        assert counts.ravel()[flat] == n_ref, (label, by, where)
        assert sums.ravel()[flat] == pytest.approx(s_ref, abs=1e-9)
        assert list(top[flat]) == (list(top_ref) + [0.0, 0.0])[:2]  # the largest |m|, first


def test_integer_sums_are_exact_where_float_sums_round():
    """The cell key method's keys are summed per cell as integers (a margin's key is the sum
    of its cells' keys): a float64 sum of 32-bit keys rounds past ~2 million records, so a
    margin summed from its cells and the same cell asked alone would get different keys.
    Integer columns are summed exactly (here near 2**52, where float64 drops the ones)."""
    big = (1 << 52) + 1
    frame = pl.DataFrame({"d": ["a"] * 3 + ["b"], "k": [big] * 3 + [3], "m": [1.5, 2.0, 4.0, None]})
    values = {"d": ["a", "b"]}
    codes = value_grid.encode(frame, values, True)
    rows, positions, shape = value_grid.cells_of(codes, values, ["d"], {})
    keys = value_grid.sums(codes, rows, positions, shape, "k")
    assert keys.dtype == np.int64 and keys.tolist() == [3 * big, 3]
    as_floats = np.bincount(positions, weights=codes.numbers["k"][rows].astype(np.float64))
    assert int(as_floats[0]) != 3 * big  # what a float sum gives
    assert value_grid.sums(codes, rows, positions, shape, "m").tolist() == [7.5, 0.0]  # missing: 0
    assert value_grid.sums(codes, rows, positions, shape, "m", (0.0, 1.8)).tolist() == pytest.approx([5.1, 0.0])
