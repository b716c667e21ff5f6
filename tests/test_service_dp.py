"""Differential-privacy mode: OpenDP noise, privacy loss, budget arithmetic (issue 7)."""

from __future__ import annotations

import json
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
    df = pl.DataFrame(
        {"region": ["a"] * 30 + ["b"] * 5, "person": list(range(30)) + [0] * 5, "amount": [1e6] + [10.0] * 34}
    )
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


# -- the values themselves (issue 13: under polars 2, pl.lit(1.0).sum() per group is 1.0) ------


def _groups(sizes: dict[str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "camp": [c for c, n in sizes.items() for _ in range(n)],
            "person": [f"{c}-{i}" for c, n in sizes.items() for i in range(n)],
            "age": [float(20 + i % 7) for c, n in sizes.items() for i in range(n)],
        }
    )


def test_dp_counts_and_sums_are_near_the_truth_with_a_large_epsilon():
    sizes = {"a": 2081, "b": 640, "c": 37, "d": 1}
    df = _groups(sizes)
    keys = pl.DataFrame({"camp": ["a", "b", "c", "d", "e"]})  # "e": published, empty
    truth = {**sizes, "e": 0}
    for unit in (None, "person"):
        table, noisy = dp_table(df, ["camp"], keys, "count", epsilon=50.0, unit=unit)
        got = dict(zip(table["camp"], table["value"]))
        assert noisy.scale == pytest.approx(1 / 50)
        assert all(abs(got[c] - truth[c]) <= 2 for c in truth), got
    sums = df.group_by("camp").agg(pl.col("age").sum())
    table, _ = dp_table(df, ["camp"], keys, "sum", epsilon=5000.0, measure="age", bounds=(0.0, 100.0))
    got = dict(zip(table["camp"], table["value"]))
    for c, s in sums.iter_rows():
        assert got[c] == pytest.approx(s, abs=1.0)
    # one overall cell, as the node asks it (a constant dimension)
    everyone = df.with_columns(pl.lit("all").alias("_all"))
    table, _ = dp_table(everyone, ["_all"], pl.DataFrame({"_all": ["all"]}), "count", epsilon=50.0)
    assert abs(table["value"][0] - df.height) <= 2


def test_dp_counts_keep_each_units_first_records_in_data_order():
    """Hand-checked: person "p" has records in camps b, a, a (in that order), "q" in a, b;
    with one contribution per unit p counts in b only and q in a only; with two, p in b and
    a, q in a and b (the one-contribution path is a hash pass, the others a window)."""
    df = pl.DataFrame(
        {"person": ["p", "q", "p", "r", "p", "q"], "camp": ["b", "a", "a", "a", "a", "b"], "age": [1.0] * 6}
    )
    keys = pl.DataFrame({"camp": ["a", "b"]})
    expected = {1: {"a": 2, "b": 1}, 2: {"a": 3, "b": 2}, 3: {"a": 4, "b": 2}}
    for k, truth in expected.items():
        table, noisy = dp_table(df, ["camp"], keys, "count", epsilon=1e4, unit="person", max_contributions=k)
        assert noisy.sensitivity == k
        got = dict(zip(table["camp"], table["value"]))
        assert all(abs(got[c] - truth[c]) < 0.5 for c in truth), (k, got)
        table, _ = dp_table(
            df, ["camp"], keys, "sum", epsilon=1e6, measure="age", bounds=(0.0, 1.0), unit="person", max_contributions=k
        )
        got = dict(zip(table["camp"], table["value"]))
        assert all(abs(got[c] - truth[c]) < 0.5 for c in truth), (k, got)


def _discrete_laplace_cdf(k: np.ndarray, scale: float) -> np.ndarray:
    """P(X <= k) of the discrete Laplace with P(k) proportional to exp(-|k| / scale)."""
    p = math.exp(-1.0 / scale)
    k = np.asarray(k, dtype=float)
    neg = p ** (-k) / (1 + p)  # k <= -1... and k < 0
    pos = 1 - p ** (k + 1) / (1 + p)
    return np.where(k < 0, neg, pos)


def test_dp_count_noise_has_the_stated_distribution():
    """Over 4 000 cells with known counts the noise is the discrete Laplace of the stated
    scale: mean 0, variance 2p/(1-p)^2 with p = exp(-1/scale), and a Kolmogorov distance to
    its CDF below 0.04 (the 1 % critical value is 0.026 for 4 000 draws; OpenDP's noise
    cannot be seeded, so the tolerances are set for a failure chance below one in a million)."""
    rng = np.random.default_rng(13)
    sizes = {f"k{i:04d}": int(n) for i, n in enumerate(rng.integers(0, 60, 4000))}
    df = _groups(sizes)
    keys = pl.DataFrame({"camp": list(sizes)})
    table, noisy = dp_table(df, ["camp"], keys, "count", epsilon=0.5, unit="person")
    assert noisy.scale == pytest.approx(2.0) and table["noise_scale"][0] == pytest.approx(2.0)
    noise = table["value"].to_numpy() - np.array([sizes[c] for c in table["camp"]])
    p = math.exp(-1 / 2.0)
    assert abs(noise.mean()) < 0.25
    assert noise.var() == pytest.approx(2 * p / (1 - p) ** 2, rel=0.2)
    support = np.arange(-40, 41)
    empirical = np.searchsorted(np.sort(noise), support, side="right") / len(noise)
    assert np.abs(empirical - _discrete_laplace_cdf(support, 2.0)).max() < 0.04


def test_dp_sum_noise_has_the_stated_scale():
    rng = np.random.default_rng(14)
    sizes = {f"k{i:04d}": int(n) for i, n in enumerate(rng.integers(1, 30, 3000))}
    df = _groups(sizes)
    keys = pl.DataFrame({"camp": list(sizes)})
    table, noisy = dp_table(df, ["camp"], keys, "sum", epsilon=1.0, measure="age", bounds=(0.0, 50.0))
    truth = dict(df.group_by("camp").agg(pl.col("age").sum()).iter_rows())
    noise = table["value"].to_numpy() - np.array([truth[c] for c in table["camp"]])
    assert noisy.scale == pytest.approx(50.0)
    assert abs(noise.mean()) < 5.0
    assert np.abs(noise).mean() == pytest.approx(50.0, rel=0.1)  # E|X| = b for Laplace(b)


def test_node_dp_counts_and_means_are_near_the_truth(tmp_path):
    """Through the node's answering pipeline (the code behind POST /v1/query): with a large
    epsilon a DP count by district is within a few persons of the truth and a DP mean
    within a fraction of a unit (the bug gave 1..3 for counts of hundreds, means of 10^4)."""
    import yaml

    from safemicro.service.config import load_config
    from safemicro.service.node import Node
    from safemicro.service.queries import Query
    from service_support import displacement_records, token, write_config

    path = write_config(tmp_path, f"duckdb:///{tmp_path / 'state.duckdb'}")
    cfg = yaml.safe_load(path.read_text())
    cfg["datasets"]["displaced_dp"]["dp"].update(epsilon_per_query=2000.0, analyst_budget=1e5, dataset_budget=1e5)
    cfg["datasets"]["displaced_dp"]["measures"]["income"]["upper"] = 2000.0
    path.write_text(yaml.safe_dump(cfg))
    node = Node(load_config(path))
    try:
        who = node.authenticate(token(tmp_path), "/v1/query")
        people = displacement_records()
        body = json.loads(node.query(who, Query(dataset="displaced_dp", kind="count", by=["district"])))
        truth = dict(people.group_by("district").len().iter_rows())
        cells = {c["district"]: c["value"] for c in body["cells"]}
        assert all(abs(cells[d] - n) <= 2 for d, n in truth.items()), (cells, truth)
        assert abs(cells[None] - people.height) <= 10  # the margin: a sum of five noisy cells
        body = json.loads(node.query(who, Query(dataset="displaced_dp", kind="mean", measure="income", by=["sex"])))
        means = dict(
            people.with_columns(pl.col("income").clip(0, 2000)).group_by("sex").agg(pl.col("income").mean()).iter_rows()
        )
        got = {c["sex"]: c["value"] for c in body["cells"] if c["sex"] is not None}
        assert all(got[s] == pytest.approx(m, abs=1.0) for s, m in means.items()), (got, means)
    finally:
        node.close()


def test_node_dp_margins_are_sums_of_its_noisy_cells_in_a_fixed_order(tmp_path):
    """A DP count table with margins: the inner cells in the order of the declared values, then
    each level's margins in the same order, each the exact sum of its noisy inner cells
    with their variances added (post-processing: no budget), the total last."""
    import itertools

    from safemicro.service.config import load_config
    from safemicro.service.node import Node
    from safemicro.service.queries import Query
    from service_support import token, write_config

    node = Node(load_config(write_config(tmp_path, f"duckdb:///{tmp_path / 'state.duckdb'}")))
    try:
        who = node.authenticate(token(tmp_path), "/v1/query")
        q = Query(dataset="displaced_dp", kind="count", by=["district", "sex"], margins=True)
        cells = json.loads(node.query(who, q))["cells"]
        districts, sexes = node.values["displaced_dp"]["district"], node.values["displaced_dp"]["sex"]
        inner = [(d, s) for d, s in itertools.product(districts, sexes)]
        expected = inner + [(d, None) for d in districts] + [(None, s) for s in sexes] + [(None, None)]
        assert [(c["district"], c["sex"]) for c in cells] == expected
        value = {(c["district"], c["sex"]): c for c in cells}
        for d in districts:
            assert value[(d, None)]["value"] == pytest.approx(sum(value[(d, s)]["value"] for s in sexes))
            assert value[(d, None)]["noise_variance"] == pytest.approx(len(sexes) * value[inner[0]]["noise_variance"])
            assert value[(d, None)]["noise_scale"] is None
        assert value[(None, None)]["value"] == pytest.approx(sum(value[k]["value"] for k in inner))
        assert all(c["status"] == "released" and c["rule"] is None for c in cells)
        assert value[inner[0]]["noise_scale"] == pytest.approx(1 / 0.5)  # one person per cell, ε 0.5
    finally:
        node.close()
