"""Cell key perturbation of magnitudes (sums, means): the top-contributor method's bounds,
its consistency across overlapping tables, its zero mean, and keys of their own."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from safemicro.service.cell_key import (
    MAGNITUDE_KEY_RANGE,
    cell_key_magnitudes,
    magnitude_keys,
    perturbation_factors,
    record_keys,
)

P, WEIGHTS, S = 0.25, (1.0, 0.5), 0.2


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1e4, 1e5, allow_nan=False), min_size=1, max_size=40),
    seed=st.integers(0, 2**31),
)
def test_the_perturbation_stays_within_its_declared_bounds(values, seed):
    """|D| <= p * sum_j e_j x_(j), and the largest contribution always moves the total by at
    least p * s * x_(1) less what the others' terms can take back."""
    frame = pl.DataFrame({"g": [1] * len(values), "y": values, "mk": magnitude_keys(len(values), seed, "y")})
    t = cell_key_magnitudes(frame, ["g"], "y", "mk", percent=P, epsilon=WEIGHTS, separation=S)
    x = sorted(np.abs(values), reverse=True) + [0.0]
    d = abs(t["perturbation"][0])
    assert d <= P * (x[0] + 0.5 * x[1]) + 1e-9
    assert d >= P * S * x[0] - P * 0.5 * x[1] - 1e-9
    assert t["total"][0] == t["pre_sdc_total"][0] + t["perturbation"][0]
    assert abs(t["pre_sdc_total"][0] - sum(values)) <= 1e-9 * (1 + sum(x))


def test_a_cell_gets_the_same_perturbation_in_every_table_that_contains_it():
    """Filtering other records away or grouping by more dimensions never changes the
    perturbation of a cell whose records stay the same."""
    rng = np.random.default_rng(3)
    n = 2000
    frame = pl.DataFrame(
        {
            "a": rng.integers(0, 5, n),
            "b": rng.integers(0, 3, n),
            "y": rng.gamma(2.0, 100.0, n),
            "mk": magnitude_keys(n, 99, "y"),
        }
    )
    full = cell_key_magnitudes(frame, ["a", "b"], "y", "mk")
    part = cell_key_magnitudes(frame.filter(pl.col("a") == 2), ["a", "b"], "y", "mk")
    joined = part.join(full, on=["a", "b"], suffix="_full")
    assert joined.height == 3 and joined["total"].to_list() == joined["total_full"].to_list()
    whole = cell_key_magnitudes(frame, [], "y", "mk")
    assert whole.height == 1 and whole["n"][0] == n


def test_factors_have_mean_zero_and_never_come_near_zero():
    u = (np.arange(MAGNITUDE_KEY_RANGE, step=4099) + 0.5) / MAGNITUDE_KEY_RANGE
    v = perturbation_factors(u, S)
    assert np.abs(v).min() >= S and np.abs(v).max() <= 1.0
    assert abs(v.mean()) < 1e-3
    assert abs(np.abs(v).mean() - (1 + S) / 2) < 1e-3  # sizes uniform on [s, 1]
    # over many cells of one table the perturbations average out (unbiased totals)
    rng = np.random.default_rng(5)
    n = 200_000
    frame = pl.DataFrame({"g": rng.integers(0, 20_000, n), "y": np.full(n, 100.0), "mk": magnitude_keys(n, 1, "y")})
    t = cell_key_magnitudes(frame, ["g"], "y", "mk")
    scale = P * (1 + 0.5) * 100.0
    assert abs(t["perturbation"].mean()) < 0.02 * scale
    assert t["perturbation"].abs().min() >= P * S * 100.0 - P * 0.5 * 100.0 - 1e-9


def test_magnitude_keys_are_their_own_per_measure():
    """A count's ptable lookup tells something about its cell key; the magnitude keys are
    another stream per measure, reproducible from the seed."""
    counts = record_keys(50_000, 7)
    age, income = magnitude_keys(50_000, 7, "age"), magnitude_keys(50_000, 7, "income")
    assert np.array_equal(age, magnitude_keys(50_000, 7, "age"))
    assert not np.array_equal(age, income)
    for other in (counts, income):
        assert abs(np.corrcoef(age.astype(float), other.astype(float))[0, 1]) < 0.02
    assert age.min() >= 0 and age.max() < MAGNITUDE_KEY_RANGE
