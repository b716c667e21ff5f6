"""Combining protected tables from several providers (issue 7)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safemicro.errors import SafemicroError
from safemicro.service.combine import combine
from safemicro.service.protection import ProtectionPolicy, cell_statistics, protect


def _provider(seed: int, n: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "admin1": rng.choice(["north", "south", "east"], n, p=[0.6, 0.35, 0.05]),
            "group": rng.choice(["idp", "refugee", "host"], n, p=[0.5, 0.45, 0.05]),
        }
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seeds=st.lists(st.integers(0, 10_000), min_size=2, max_size=4),
    sizes=st.lists(st.integers(20, 300), min_size=4, max_size=4),
    rounding=st.sampled_from([None, 5]),
)
def test_combined_intervals_hold_the_true_totals(seeds, sizes, rounding):
    dims = ["admin1", "group"]
    data = [_provider(s, n) for s, n in zip(seeds, sizes)]
    tables = [
        protect(
            cell_statistics(d, dims),
            dims,
            "count",
            ProtectionPolicy(threshold=10, rounding_base=rounding if i == 0 else None),
        )
        for i, d in enumerate(data)
    ]
    out = combine(tables, dims)
    truth = cell_statistics(pl.concat(data), dims, margins=True)
    joined = out.join(truth, on=dims, how="left", nulls_equal=True).with_columns(pl.col("n").fill_null(0))
    for row in joined.iter_rows(named=True):
        lo = row["lower"]
        hi = row["upper"] if row["upper"] is not None else np.inf
        assert lo - 1e-9 <= row["n"] <= hi + 1e-9, row
        if row["status"] == "released":
            assert row["suppressed_in"] == 0
            if rounding is None:
                assert row["value"] == row["n"]
            else:
                assert abs(row["value"] - row["n"]) <= 2.5
        else:
            assert row["value"] is None and row["suppressed_in"] >= 1


def test_noise_variances_add_and_statuses():
    dims = ["g"]
    a = pl.DataFrame(
        {
            "g": ["x", "y"],
            "value": [10.0, None],
            "status": ["released", "suppressed"],
            "lower": [10.0, 1.0],
            "upper": [10.0, 9.0],
            "noise_variance": [None, None],
        }
    )
    b = pl.DataFrame(
        {
            "g": ["x", "y"],
            "value": [12.5, 40.0],
            "status": ["released", "released"],
            "lower": [None, None],
            "upper": [None, None],
            "noise_variance": [8.0, 8.0],
        }
    )
    c = pl.DataFrame(
        {"g": ["x"], "value": [5.0], "status": ["released"], "lower": [5.0], "upper": [5.0], "noise_variance": [2.0]}
    )
    out = combine([a, b, c], dims).sort("g")
    x, y = out.iter_rows(named=True)
    assert (
        x["value"] == pytest.approx(27.5) and x["status"] == "released" and x["noise_variance"] == pytest.approx(10.0)
    )
    assert y["value"] is None and y["status"] == "partial" and y["suppressed_in"] == 1
    assert (y["lower"], y["upper"]) == (41.0, 49.0)  # 40 (noisy, as given) + [1, 9]; c has no "y": zero
    assert y["providers"] == 2
    unknown = combine([a, b, c], dims, missing="unknown").sort("g")
    assert unknown.get_column("upper").to_list()[1] is None and unknown.get_column("status").to_list()[1] == "partial"


def test_unbounded_and_bad_tables():
    a = pl.DataFrame({"g": ["x"], "value": [None], "status": ["suppressed"], "lower": [0.0], "upper": [None]})
    b = pl.DataFrame({"g": ["x"], "value": [None], "status": ["suppressed"], "lower": [3.0], "upper": [7.0]})
    out = combine([a, b], ["g"])
    assert out.row(0, named=True)["status"] == "suppressed"
    assert out.row(0, named=True)["lower"] == 3.0 and out.row(0, named=True)["upper"] is None
    with pytest.raises(SafemicroError, match="no column 'status'"):
        combine([a.drop("status")], ["g"])
    with pytest.raises(SafemicroError, match="unknown status"):
        combine([a.with_columns(pl.lit("maybe").alias("status"))], ["g"])
    with pytest.raises(SafemicroError, match="twice"):
        combine([pl.concat([a, a])], ["g"])
    with pytest.raises(SafemicroError, match="no tables"):
        combine([], ["g"])
