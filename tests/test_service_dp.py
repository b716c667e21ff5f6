"""Differential-privacy mode: OpenDP noise, privacy loss, budget arithmetic (issue 7)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("opendp")

from safemicro.errors import SafemicroError  # noqa: E402
from safemicro.service.dp import (  # noqa: E402
    Balance,
    BudgetExceeded,
    cancel,
    commit,
    dp_table,
    gaussian_scale,
    laplace_scale,
    noisy_counts,
    noisy_sums,
    reserve,
)


def test_laplace_counts_have_the_declared_scale_and_privacy_loss():
    counts = np.full(4000, 50)
    out = noisy_counts(counts, epsilon=0.5)
    assert out.epsilon == pytest.approx(0.5) and out.scale == pytest.approx(2.0)
    assert out.variance == pytest.approx(8.0)
    noise = out.values - counts
    assert np.all(out.values == np.round(out.values))  # discrete Laplace on integers
    assert abs(noise.mean()) < 0.2
    assert noise.var() == pytest.approx(8.0, rel=0.15)
    # a unit in up to three cells: sensitivity 3, three times the scale for the same epsilon
    three = noisy_counts([10, 10], epsilon=0.5, contributions=3)
    assert three.scale == pytest.approx(6.0) and three.epsilon == pytest.approx(0.5)


def test_gaussian_and_float_sums():
    out = noisy_counts(np.zeros(3000, dtype=int), epsilon=0.125, mechanism="gaussian")
    assert out.rho == pytest.approx(0.125) and out.epsilon is None
    assert out.scale == pytest.approx(gaussian_scale(0.125, 1.0)) == pytest.approx(2.0)
    assert out.values.std() == pytest.approx(2.0, rel=0.1)
    sums = noisy_sums(np.zeros(3000), epsilon=1.0, bounds=(0.0, 100.0))
    assert sums.sensitivity == 100.0 and sums.scale == pytest.approx(laplace_scale(1.0, 100.0))
    assert sums.values.var() == pytest.approx(2 * 100.0**2, rel=0.15)
    with pytest.raises(SafemicroError, match="epsilon"):
        noisy_counts([1], epsilon=0)
    with pytest.raises(SafemicroError, match="bounds"):
        noisy_sums([1.0], 1.0, bounds=(5.0, 1.0))
    with pytest.raises(SafemicroError, match="mechanism"):
        noisy_counts([1], 1.0, mechanism="exponential")  # type: ignore[arg-type]


def test_dp_table_covers_public_keys_and_clamps():
    df = pl.DataFrame({"region": ["a"] * 30 + ["b"] * 5, "person": list(range(30)) + [0] * 5, "amount": [1e6] + [10.0] * 34})
    keys = pl.DataFrame({"region": ["a", "b", "c"]})  # "c" has no records but is published
    table, noisy = dp_table(df, ["region"], keys, "count", epsilon=1.0)
    assert table.get_column("region").to_list() == ["a", "b", "c"]
    assert set(table.get_column("status")) == {"released"}
    assert table.get_column("noise_scale").to_list() == [1.0] * 3
    # one contribution per person: person 0 appears 6 times but counts once
    table, noisy = dp_table(df, ["region"], keys, "count", epsilon=1.0, unit="person", max_contributions=1)
    assert noisy.sensitivity == 1.0
    # sums clamp the huge amount: sensitivity is the bound, not 1e6
    table, noisy = dp_table(df, ["region"], keys, "sum", epsilon=1.0, measure="amount", bounds=(0.0, 50.0))
    assert noisy.sensitivity == 50.0
    assert abs(table.get_column("value")[0] - (29 * 10 + 50)) < 50 * 40  # far from 1e6
    with pytest.raises(SafemicroError, match="count and sum"):
        dp_table(df, ["region"], keys, "mean", epsilon=1.0)  # type: ignore[arg-type]


def test_budget_reserve_commit_cancel():
    b = {"analyst:a": Balance(1.0), "org:x": Balance(2.0), "dataset:reg": Balance(3.0)}
    b, r1 = reserve(b, 0.6)
    assert all(x.reserved == pytest.approx(0.6) for x in b.values())
    with pytest.raises(BudgetExceeded, match="analyst:a"):
        reserve(b, 0.5)  # reserved amounts count: 0.4 left
    b = cancel(b, r1)  # the query failed: nothing spent
    assert all(x.spent == 0 and x.reserved == 0 for x in b.values())
    b, r2 = reserve(b, 0.6)
    b = commit(b, r2)
    assert b["analyst:a"].spent == pytest.approx(0.6) and b["analyst:a"].reserved == 0
    # another analyst of the same dataset: the dataset-wide cap still binds
    b["analyst:c"] = Balance(5.0)
    b, r3 = reserve(b, 2.0, scopes=["analyst:c", "dataset:reg"])
    b = commit(b, r3)
    with pytest.raises(BudgetExceeded, match="dataset:reg"):
        reserve(b, 0.5, scopes=["analyst:c", "dataset:reg"])
    with pytest.raises(BudgetExceeded, match="no budget"):
        reserve(b, 0.1, scopes=["analyst:z"])


@settings(max_examples=60, deadline=None)
@given(
    limit=st.floats(0.5, 5),
    steps=st.lists(st.tuples(st.floats(0.01, 1.0), st.sampled_from(["commit", "cancel", "hold"])), max_size=40),
)
def test_budget_never_exceeds_its_limit(limit, steps):
    b = {"analyst:a": Balance(limit), "dataset:d": Balance(limit * 1.5)}
    held = []
    for amount, outcome in steps:
        try:
            b, r = reserve(b, amount)
        except BudgetExceeded:
            continue
        if outcome == "commit":
            b = commit(b, r)
        elif outcome == "cancel":
            b = cancel(b, r)
        else:
            held.append(r)
        for x in b.values():
            assert x.spent + x.reserved <= x.limit + 1e-9
    for r in held:
        b = commit(b, r)
    assert all(x.spent <= x.limit + 1e-9 for x in b.values())


def test_averaging_repeated_queries_is_stopped_by_the_budget():
    """The attacker asks the same noisy count again and again to average the noise away.
    Every answer spends epsilon, so after limit/epsilon answers the budget refuses; the
    average of the answers allowed keeps a standard error of at least
    sqrt(2) * scale / sqrt(limit / epsilon)."""
    true_count, epsilon, limit = 7, 0.1, 1.0
    balances = {"analyst:attacker": Balance(limit), "dataset:reg": Balance(limit)}
    answers = []
    for _ in range(1000):
        try:
            balances, r = reserve(balances, epsilon)
        except BudgetExceeded:
            break
        answers.append(noisy_counts([true_count], epsilon).values[0])
        balances = commit(balances, r, actual=epsilon)
    assert len(answers) == math.floor(limit / epsilon + 1e-9)
    se = math.sqrt(2) * laplace_scale(epsilon, 1) / math.sqrt(len(answers))
    assert se > 4  # the averaged answer still cannot tell 7 from 3 or 11
    # a colluding second analyst meets the same dataset-wide cap
    balances["analyst:friend"] = Balance(limit)
    with pytest.raises(BudgetExceeded, match="dataset:reg"):
        reserve(balances, epsilon, scopes=["analyst:friend", "dataset:reg"])
