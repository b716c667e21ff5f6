"""Microaggregation: sdcMicro MDAV parity, the tree search against a plain MDAV, missing
values, strata, the fast variant, errors and the plan step."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import safemicro.methods.aggregation as M
from conftest import SDC_DATA, ref_csv
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.io.dataset import Codebook, VariableMeta
from safemicro.methods.aggregation import microaggregation
from safemicro.methods.base import ROW_ID, STEPS, StepContext
from safemicro.pipeline import prepare_steps, run_steps
from safemicro.plan import Plan, Roles, Targets
from safemicro.utility.numeric import numeric_loss

NV = ["expend", "income", "savings"]


# -- a plain MDAV written from the definition, as the oracle for the tree search --------


def plain_mdav(x: np.ndarray, k: int) -> list[list[int]]:
    """Groups (row lists, in formation order) by brute force over the remaining rows."""
    w = M._weights(x)
    alive = list(range(len(x)))

    def dist(rows, q):
        d = np.zeros(len(rows))
        for v in range(x.shape[1]):
            t = x[rows, v] - q[v]
            d += (t * t) * w[v]
        return d.astype(np.float32)

    def group(center, rows):
        rows = np.array([r for r in rows if r != center])
        d = dist(rows, x[center])
        nearest = rows[np.lexsort((-rows, d))][: k - 1]  # distance up, then higher row first
        return [center, *nearest.tolist()]

    def farthest(rows, q):
        d = dist(np.array(rows), q)
        return rows[int(np.argmax(d))]  # first maximum in row order

    groups = []
    while len(alive) >= 2 * k:
        q = x[alive].sum(axis=0) / len(alive)
        r = farthest(alive, q)
        g = group(r, alive)
        s = farthest([a for a in alive if a != r], x[r]) if len(alive) >= 3 * k else None
        groups.append(g)
        alive = [a for a in alive if a not in g]
        if s is not None:
            g = group(s, alive)
            groups.append(g)
            alive = [a for a in alive if a not in g]
    if alive:
        groups.append(alive)
    return groups


def tree_groups(x: np.ndarray, k: int, leaf: int = 4) -> list[list[int]]:
    order, sizes = M._jit()["_mdav"](np.ascontiguousarray(x, dtype=np.float64), M._weights(x), k, leaf)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [order[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]


def partition(values: np.ndarray) -> set[frozenset[int]]:
    """Rows grouped by identical output values."""
    groups: dict[tuple, set[int]] = {}
    for i, row in enumerate(map(tuple, values)):
        groups.setdefault(row, set()).add(i)
    return {frozenset(g) for g in groups.values()}


# -- sdcMicro parity ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def mdav_testdata(testdata):
    return microaggregation(Dataset(testdata), variables=NV, k=3)


def test_testdata_equals_sdcmicro_mdav(testdata, reference, mdav_testdata):
    ref = ref_csv("testdata_mdav_aggr3.csv")
    out = mdav_testdata.dataset.frame
    # the same numbers to the last bit: same groups, means summed in the same order
    np.testing.assert_array_equal(out.select(NV).to_numpy(), ref.select(NV).to_numpy())
    ours = partition(out.select(NV).to_numpy())
    theirs = {frozenset(np.flatnonzero(ref["group"].to_numpy() == g)) for g in np.unique(ref["group"])}
    assert ours == theirs
    d = mdav_testdata.change.details
    exp = reference["microaggregation"]
    assert d["n_groups"] == exp["n_groups"] == 1526
    assert d["group_sizes"] == exp["group_sizes"] == {"3": 1525, "5": 1}
    loss = numeric_loss(testdata.select(NV).to_numpy(), out.select(NV).to_numpy())
    np.testing.assert_allclose(loss["il1s"], exp["utility"]["il1s"], rtol=1e-12)
    np.testing.assert_allclose(loss["il1"], exp["utility"]["il1"], rtol=1e-12)
    np.testing.assert_allclose(loss["eigen"], exp["utility"]["eigen"], rtol=1e-6)


def test_testdata_record_of_change(testdata, mdav_testdata):
    ds, change = mdav_testdata
    assert ds.frame.columns == testdata.columns
    assert ds.frame.drop(NV).equals(testdata.drop(NV))
    assert change.changed["expend"] == 4580 and change.suppressed == {v: 0 for v in NV}
    assert change.records_touched == 4580
    assert change.params == {
        "variables": NV,
        "k": 3,
        "method": "mdav",
        "strata": None,
        "household": None,
        "weights": None,
    }
    assert all(ds.frame[v].dtype == pl.Float64 for v in NV)
    # group means keep the totals
    np.testing.assert_allclose(ds.frame.select(NV).sum().row(0), testdata.select(NV).sum().row(0), rtol=1e-12)


# -- the tree search is plain MDAV ---------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 120),
    p=st.integers(1, 3),
    k=st.integers(2, 5),
    levels=st.sampled_from([2, 3, 6, 1000]),
    seed=st.integers(0, 2**32 - 1),
)
def test_tree_equals_plain_mdav_with_ties(n, p, k, levels, seed):
    """Small integer grids make many exactly equal distances: the tie rules must agree."""
    if n < k:
        n = k
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, size=(n, p)).astype(np.float64)
    assert tree_groups(x, k) == plain_mdav(x, k)


def test_tree_equals_plain_mdav_on_continuous_data():
    rng = np.random.default_rng(5)
    x = np.exp(rng.normal(size=(1500, 3))) * [1e6, 1e3, 1.0]
    x[::7, 1] = x[1::7, 1]  # some shared values
    x[100:140] = x[100]  # a block of identical records
    assert tree_groups(x, 3, leaf=16) == plain_mdav(x, 3)
    assert tree_groups(x, 5, leaf=16) == plain_mdav(x, 5)


@pytest.mark.parametrize("name", ["Tarragona", "CASCrefmicrodata"])
def test_tree_equals_plain_mdav_on_casc_data(name):
    """13 variables with repeated values (sdcMicro's tie rule changes groups on Tarragona)."""
    x = pl.read_csv(SDC_DATA / f"{name}.csv").to_numpy().astype(np.float64)
    assert tree_groups(x, 3, leaf=16) == plain_mdav(x, 3)


def test_constant_and_identical_records():
    x = np.zeros((50, 2))
    x[:, 1] = 7.0
    ds = Dataset(pl.DataFrame({"a": x[:, 0], "b": x[:, 1]}))
    out = microaggregation(ds, variables=["a", "b"], k=4)
    assert out.change.changed == {"a": 0, "b": 0}
    assert out.change.details["group_sizes"] == {"4": 11, "6": 1}
    assert tree_groups(x, 4) == plain_mdav(x, 4)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 200), k=st.integers(2, 6), seed=st.integers(0, 2**32 - 1))
def test_groups_at_least_k_and_means_kept(n, k, seed):
    if n < k:
        n = k
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) * [10.0, 1000.0]
    ds = Dataset(pl.DataFrame({"id": np.arange(n), "a": x[:, 0], "b": x[:, 1]}))
    res = microaggregation(ds, variables=["a", "b"], k=k)
    sizes = {int(s): c for s, c in res.change.details["group_sizes"].items()}
    assert min(sizes) >= k and max(sizes) < 2 * k
    assert sum(s * c for s, c in sizes.items()) == n
    out = res.dataset.frame
    assert out["id"].to_list() == list(range(n))
    np.testing.assert_allclose(out["a"].sum(), x[:, 0].sum(), rtol=1e-9, atol=1e-9)
    for _, members in out.group_by(["a", "b"]):
        assert members.height >= k


# -- missing values, codes, labels ----------------------------------------------------------


def _with_missing() -> Dataset:
    rng = np.random.default_rng(3)
    n = 60
    a = rng.integers(100, 1000, size=n)
    b = rng.normal(50, 10, size=n)
    a[[3, 17]] = -99  # user-missing code
    b_list = b.tolist()
    b_list[5] = None
    b_list[17] = None  # row 17 is missing on both
    frame = pl.DataFrame({"id": np.arange(n), "a": a, "b": b_list, ROW_ID: np.arange(n)})
    cb = Codebook({"a": VariableMeta("a", value_labels={-99: "refused", 100: "one hundred"}, missing_values=[-99])})
    return Dataset(frame, cb)


def test_partly_missing_records_join_the_nearest_group():
    ds = _with_missing()
    before = ds.frame.clone()
    res = microaggregation(ds, variables=["a", "b"], k=3)
    out = res.dataset.frame
    assert ds.frame.equals(before)  # input untouched
    assert out.columns == ds.columns and out[ROW_ID].equals(ds.frame[ROW_ID])
    assert out["a"].to_list()[3] == -99 and out["a"].to_list()[17] == -99  # code kept
    assert out["b"][5] is None and out["b"][17] is None
    d = res.change.details
    assert d["complete_records"] == 57 and d["partly_missing_records"] == 2 and d["untouched_records"] == 1
    assert sum(int(s) * c for s, c in d["group_sizes"].items()) == 59
    # every observed value is a group mean shared by >= 3 records, totals kept per variable
    a_obs = np.array([v for v in ds.frame["a"].to_list() if v != -99], dtype=float)
    a_new = np.array([v for v in out["a"].to_list() if v != -99])
    np.testing.assert_allclose(a_new.sum(), a_obs.sum(), rtol=1e-12)
    b_obs = ds.frame["b"].drop_nulls().to_numpy()
    np.testing.assert_allclose(out["b"].drop_nulls().sum(), b_obs.sum(), rtol=1e-12)
    values, counts = np.unique(a_new, return_counts=True)
    assert counts.min() >= 3
    # the record missing b (row 5) got the a-mean of the group nearest to it on a alone
    same = out.filter(pl.col("a") == out["a"][5])
    assert same.height >= 4 and same["b"].null_count() == 1
    # labels: the missing code keeps its label; the others no longer describe a value
    assert res.dataset.codebook.meta("a").value_labels == {-99.0: "refused"}
    assert res.dataset.codebook.meta("a").missing_values == [-99.0]
    assert res.dataset.analysis_column("a").null_count() == 2  # the code still reads as missing
    assert ds.codebook.meta("a").value_labels == {-99: "refused", 100: "one hundred"}
    assert any("value labels dropped" in n for n in res.change.notes)


def test_strata_aggregate_within_each_stratum():
    rng = np.random.default_rng(9)
    n = 90
    frame = pl.DataFrame({"region": np.repeat([1, 2, 3], 30), "x": rng.normal(0, 1, n), "y": rng.normal(0, 1, n)})
    frame = frame.with_columns(pl.when(pl.col("region") == 3).then(pl.col("x") + 100).otherwise(pl.col("x")).alias("x"))
    res = microaggregation(Dataset(frame), variables=["x", "y"], k=3, strata="region")
    out = res.dataset.frame
    totals = frame.group_by("region").agg(pl.col("x").sum()).sort("region")
    new_totals = out.group_by("region").agg(pl.col("x").sum()).sort("region")
    np.testing.assert_allclose(new_totals["x"].to_numpy(), totals["x"].to_numpy(), rtol=1e-12, atol=1e-9)
    assert res.change.details["strata"] == 3 and res.change.details["n_groups"] == 30
    # each stratum on its own gives the same numbers
    alone = microaggregation(Dataset(frame.filter(pl.col("region") == 2)), variables=["x", "y"], k=3)
    np.testing.assert_array_equal(
        out.filter(pl.col("region") == 2)["x"].to_numpy(), alone.dataset.frame["x"].to_numpy()
    )
    small = frame.with_columns(pl.when(pl.int_range(n) == 0).then(4).otherwise(pl.col("region")).alias("region"))
    with pytest.raises(SafemicroError, match="stratum region=4"):
        microaggregation(Dataset(small), variables=["x", "y"], k=3, strata=["region"])


# -- the fast variant --------------------------------------------------------------------------


def test_fast_variant_small_loss(testdata, mdav_testdata, monkeypatch):
    x = testdata.select(NV).to_numpy()
    exact = numeric_loss(x, mdav_testdata.dataset.frame.select(NV).to_numpy())["il1s"]
    head = Dataset(testdata.head(M.FAST_BLOCK))
    one_block = microaggregation(head, variables=NV, method="fast")  # fits one block: exact
    assert one_block.dataset.frame.equals(microaggregation(head, variables=NV).dataset.frame)
    monkeypatch.setattr(M, "FAST_BLOCK", 500)
    res = microaggregation(Dataset(testdata), variables=NV, method="fast")
    fast = numeric_loss(x, res.dataset.frame.select(NV).to_numpy())["il1s"]
    assert exact < fast < 1.15 * exact
    sizes = {int(s) for s in res.change.details["group_sizes"]}
    assert min(sizes) >= 3
    assert res.change.params["method"] == "fast"
    for _, members in res.dataset.frame.group_by(NV):
        assert members.height >= 3


def test_blocks_cover_every_row_once():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5003, 3))
    blocks = M._blocks(x, M._weights(x), 3, 700)
    rows = np.concatenate(blocks)
    assert np.array_equal(np.sort(rows), np.arange(5003))
    assert all(3 <= len(b) <= 700 and np.all(np.diff(b) > 0) for b in blocks)
    big_k = M._blocks(x, M._weights(x), 400, 700)  # k close to the block size
    assert np.array_equal(np.sort(np.concatenate(big_k)), np.arange(5003))
    assert all(len(b) >= 400 for b in big_k)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variables": ["nope"]}, "no such column"),
        ({"variables": ["name"]}, "needs a numeric column"),
        ({"variables": ["x"], "k": 1}, "at least 2"),
        ({"variables": ["x"], "method": "kmeans"}, "method must be"),
        ({"variables": []}, "at least one variable"),
        ({"variables": ["x"], "strata": ["x"]}, "cannot also be a stratum"),
        ({"variables": ["x"], "k": 20}, "only 10 records"),
        ({"variables": ["inf"]}, "infinite"),
    ],
)
def test_errors(kwargs, message):
    frame = pl.DataFrame({"x": np.arange(10.0), "name": list("abcdefghij"), "inf": [1.0] * 9 + [np.inf]})
    with pytest.raises(SafemicroError, match=message):
        microaggregation(Dataset(frame), **kwargs)


# -- plan step -------------------------------------------------------------------------------


def test_plan_step(testdata):
    spec = STEPS["microaggregation"]
    assert spec.perturbative and not spec.random
    ctx = StepContext(Roles(numeric_keys=NV), Targets(), 1.0, 7, 1, tuple(testdata.columns))
    params = spec.params.model_validate({})
    assert params.reads(ctx) == NV
    with pytest.raises(ValueError, match="numeric_keys"):
        spec.params.model_validate({}).check(StepContext(Roles(), Targets(), 1.0, 7, 1, tuple(testdata.columns)))
    with pytest.raises(ValueError):
        spec.params.model_validate({"k": 1})
    plan = Plan.from_yaml(
        "roles: {numeric_keys: [expend, income, savings]}\nsteps:\n  - microaggregation: {k: 3, strata: urbrur}\n"
    )
    out, changes = run_steps(Dataset(testdata), prepare_steps(plan, testdata.columns, seed=1))
    assert changes[0].params["strata"] == ["urbrur"]
    text = spec.describe(prepare_steps(plan, testdata.columns, seed=1)[0].params, changes[0])
    assert "at least 3 records" in text and "urbrur" in text
    bad = Plan.from_yaml("steps:\n  - microaggregation: {variables: [expnd]}\n")
    with pytest.raises(SafemicroError):
        prepare_steps(bad, testdata.columns, seed=1)


def test_household_level_microaggregation():
    rng = np.random.default_rng(4)
    size = rng.integers(1, 6, size=300)
    hh = np.repeat(np.arange(300), size)
    amount = rng.lognormal(4, 0.5, size=300)[hh]
    frame = pl.DataFrame({"hh": hh, "amount": amount, "age": rng.integers(0, 90, size=len(hh))})
    res = microaggregation(Dataset(frame), variables="amount", k=3, household="hh")
    out = res.dataset.frame
    per_hh = out.group_by("hh").agg(pl.col("amount").n_unique().alias("u"), pl.col("amount").first())
    assert per_hh["u"].max() == 1  # still one value per household
    assert per_hh.group_by("amount").len()["len"].min() >= 3  # shared by >= 3 households
    assert res.change.details["households"] == 300 and res.change.details["n_groups"] == 100
    np.testing.assert_allclose(per_hh["amount"].sum(), amount[np.unique(hh, return_index=True)[1]].sum(), rtol=1e-12)
    ctx = StepContext(
        Roles(numeric_keys=["amount"], household="hh", household_level=["amount"]),
        Targets(),
        1.0,
        1,
        1,
        tuple(frame.columns),
    )
    params = STEPS["microaggregation"].params.model_validate({})
    assert params.reads(ctx) == ["amount", "hh"]
    text = STEPS["microaggregation"].describe(params, STEPS["microaggregation"].run(Dataset(frame), params, ctx).change)
    assert "3 households" in text
