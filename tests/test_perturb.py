"""Noise, rank swapping and data shuffling: noise levels, exact marginals, the swap window,
missing values and codes, seeds, errors and the plan steps."""

from __future__ import annotations

import importlib
from bisect import bisect_left, bisect_right

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.io.dataset import Codebook, VariableMeta
from safemicro.methods.base import ROW_ID, STEPS, StepContext
from safemicro.methods.perturb import add_noise, rank_swap, shuffle
from safemicro.pipeline import prepare_steps, run_steps
from safemicro.plan import Plan, Roles, Targets

P = importlib.import_module("safemicro.methods.perturb")


def _correlated(n: int = 20000, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]])
    z = rng.multivariate_normal(np.zeros(3), cov, size=n)
    frame = pl.DataFrame(
        {
            ROW_ID: np.arange(n),
            "a": 1000 + 100 * z[:, 0],
            "b": np.round(50 + 10 * z[:, 1]).astype(np.int64),
            "c": np.exp(z[:, 2]),
            "label": ["x"] * n,
        }
    )
    return Dataset(frame)


def _coded() -> Dataset:
    """An integer column with user-missing code 99 close to real values, and nulls."""
    values = [95, 96, 97, 98, 99, 97, None, 96, 95, 98] * 20
    cb = Codebook({"v": VariableMeta("v", missing_values=[99], value_labels={99: "refused"})})
    return Dataset(pl.DataFrame({"v": values, "w": np.arange(200.0)}), cb)


# -- noise -----------------------------------------------------------------------------------


frames = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.one_of(st.none(), st.integers(-1000, 1000)), min_size=n, max_size=n),
        st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=n, max_size=n),
    )
)


@settings(max_examples=40, deadline=None)
@given(data=frames, method=st.sampled_from(["additive", "correlated"]), seed=st.integers(0, 2**31))
def test_zero_noise_changes_nothing(data, method, seed):
    ints, floats = data
    ds = Dataset(pl.DataFrame({"i": ints, "f": floats}, schema={"i": pl.Int32, "f": pl.Float64}))
    complete = sum(a is not None and b is not None for a, b in zip(ints, floats))
    if method == "correlated" and complete < 2:
        with pytest.raises(SafemicroError, match="at least 2 records"):
            add_noise(ds, variables=["i", "f"], amount=0, method=method, seed=seed)
        return
    res = add_noise(ds, variables=["i", "f"], amount=0, method=method, seed=seed)
    assert res.dataset.frame.equals(ds.frame)
    assert res.change.changed == {"i": 0, "f": 0} and res.change.records_touched == 0


def test_additive_noise_level_and_types():
    ds = _correlated()
    x = ds.frame.select("a", "c").to_numpy()
    res = add_noise(ds, variables=["a", "b", "c"], amount=0.1, seed=4)
    out = res.dataset.frame
    noise = out.select("a", "c").to_numpy() - x
    np.testing.assert_allclose(noise.std(axis=0, ddof=1), 0.1 * x.std(axis=0, ddof=1), rtol=0.03)
    assert abs(np.corrcoef(noise, rowvar=False)[0, 1]) < 0.03  # independent
    assert out["b"].dtype == pl.Int64 and res.change.details["rounded"] == ["b"]
    assert out["a"].dtype == pl.Float64
    assert out.select(ROW_ID, "label").equals(ds.frame.select(ROW_ID, "label"))
    assert res.change.details["noise_sd_relative"] == pytest.approx({"a": 0.1, "b": 0.1, "c": 0.1})
    assert res.change.seed == 4 and res.change.params == {
        "variables": ["a", "b", "c"],
        "amount": 0.1,
        "method": "additive",
        "household": None,
    }


def test_correlated_noise_has_covariance_amount_sigma():
    ds = _correlated()
    x = ds.frame.select("a", "b", "c").to_numpy().astype(float)
    res = add_noise(ds, variables=["a", "c"], amount=0.2, method="correlated", seed=8)
    noise = res.dataset.frame.select("a", "c").to_numpy() - x[:, [0, 2]]
    sigma = np.cov(x[:, [0, 2]], rowvar=False)
    np.testing.assert_allclose(np.cov(noise, rowvar=False), 0.2 * sigma, rtol=0.06)
    # in expectation the released correlation equals the original one
    r0 = np.corrcoef(x[:, [0, 2]], rowvar=False)[0, 1]
    r1 = np.corrcoef(res.dataset.frame.select("a", "c").to_numpy(), rowvar=False)[0, 1]
    assert abs(r1 - r0) < 0.02
    assert res.change.details["noise_sd_relative"]["a"] == pytest.approx(np.sqrt(0.2))


def test_noise_leaves_missing_cells_and_avoids_missing_codes():
    ds = _coded()
    res = add_noise(ds, variables="v", amount=2.0, seed=11)
    before, after = ds.frame["v"].to_list(), res.dataset.frame["v"].to_list()
    for a, b in zip(before, after):
        if a is None or a == 99:
            assert b == a
        else:
            assert b != 99  # a real value never becomes the missing code
    assert res.change.details["redrawn_off_missing_codes"] > 0
    assert res.dataset.frame["v"].dtype == pl.Int64
    assert res.dataset.codebook.meta("v").value_labels == {99: "refused"}


def test_noise_on_a_float_column_with_missing_codes():
    cb = Codebook({"f": VariableMeta("f", missing_values=[-9.0])})
    ds = Dataset(pl.DataFrame({"f": [1.5, -9.0, 2.5, 3.5, None]}), cb)
    out = add_noise(ds, variables="f", amount=0.1, seed=1).dataset.frame["f"].to_list()
    assert out[1] == -9.0 and out[4] is None and out[0] != 1.5


def test_noise_same_seed_same_output():
    ds = _correlated(500)
    for method in ("additive", "correlated"):
        a = add_noise(ds, variables=["a", "b"], amount=0.05, method=method, seed=3).dataset.frame
        b = add_noise(ds, variables=["a", "b"], amount=0.05, method=method, seed=3).dataset.frame
        c = add_noise(ds, variables=["a", "b"], amount=0.05, method=method, seed=4).dataset.frame
        assert a.equals(b) and not a.equals(c)


# -- rank swapping -------------------------------------------------------------------------------


def naive_swap(width: int, u: np.ndarray) -> np.ndarray:
    """The rank-swap rule written plainly: free partners listed and picked by ⌊u·c⌋."""
    m = len(u)
    partner = np.arange(m)
    free = np.ones(m, dtype=bool)
    for i in range(m):
        if not free[i] or width == 0:
            continue
        free[i] = False
        window = [j for j in range(i + 1, min(i + width, m - 1) + 1) if free[j]]
        if not window:
            continue
        j = window[min(int(u[i] * len(window)), len(window) - 1)]
        free[j] = False
        partner[i], partner[j] = j, i
    return partner


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 300), width=st.integers(0, 40), seed=st.integers(0, 2**31))
def test_fenwick_swap_equals_the_plain_rule(m, width, seed):
    u = np.random.default_rng(seed).random(m)
    assert np.array_equal(P._jit()["_swap_ranks"](width, u), naive_swap(width, u))


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(0, 30)), min_size=1, max_size=80),
    p=st.floats(0, 100),
    seed=st.integers(0, 2**31),
)
def test_rank_swap_keeps_marginals_and_window(values, p, seed):
    ds = Dataset(pl.DataFrame({"v": values, "id": range(len(values))}, schema={"v": pl.Int16, "id": pl.Int64}))
    res = rank_swap(ds, variables="v", p=p, seed=seed)
    out = res.dataset.frame
    assert out["v"].dtype == pl.Int16 and out["id"].equals(ds.frame["id"])
    assert sorted(out["v"].drop_nulls().to_list()) == sorted(ds.frame["v"].drop_nulls().to_list())
    assert [v is None for v in out["v"]] == [v is None for v in values]
    # every value moved at most `width` ranks (ranks of the sorted observed values)
    width = res.change.details["rank_window"]["v"]
    ordered = sorted(v for v in values if v is not None)
    for a, b in zip(values, out["v"].to_list()):
        if a is not None:  # the closest ranks the two values can have differ by <= width
            lo_a, hi_a = bisect_left(ordered, a), bisect_right(ordered, a) - 1
            lo_b, hi_b = bisect_left(ordered, b), bisect_right(ordered, b) - 1
            assert lo_b - hi_a <= width and lo_a - hi_b <= width


def test_rank_swap_on_continuous_data():
    ds = _correlated(5000)
    res = rank_swap(ds, variables=["a", "b", "c"], p=5, seed=2)
    out = res.dataset.frame
    for v in ("a", "b", "c"):
        assert out[v].sort().equals(ds.frame[v].sort())  # marginal exactly kept
    assert res.change.details["rank_window"]["a"] == 250
    assert res.change.changed["a"] > 4900
    r0 = np.corrcoef(ds.frame["a"], ds.frame["c"])[0, 1]
    r1 = np.corrcoef(out["a"], out["c"])[0, 1]
    assert 0.8 * r0 < r1 <= r0 + 0.01  # small windows keep most of the correlation
    assert rank_swap(ds, variables="a", p=0, seed=1).dataset.frame.equals(ds.frame)
    again = rank_swap(ds, variables=["a", "b", "c"], p=5, seed=2).dataset.frame
    assert again.equals(out) and not rank_swap(ds, variables="a", p=5, seed=3).dataset.frame.equals(out)


def test_rank_swap_leaves_missing_codes():
    ds = _coded()
    out = rank_swap(ds, variables="v", p=20, seed=1).dataset.frame["v"].to_list()
    before = ds.frame["v"].to_list()
    assert [i for i, v in enumerate(out) if v == 99 or v is None] == [
        i for i, v in enumerate(before) if v == 99 or v is None
    ]


# -- shuffling ------------------------------------------------------------------------------------


def test_shuffle_keeps_marginals_and_rank_correlation_with_by():
    ds = _correlated(20000)
    res = shuffle(ds, variables=["a", "c"], by="b", seed=5)
    out = res.dataset.frame
    for v in ("a", "c"):
        assert out[v].sort().equals(ds.frame[v].sort())
    assert out["b"].equals(ds.frame["b"])
    before = spearmanr(ds.frame.select("a", "c", "b").to_numpy()).statistic
    after = spearmanr(out.select("a", "c", "b").to_numpy()).statistic
    np.testing.assert_allclose(after, before, atol=0.03)  # rank correlations kept approximately
    assert res.change.details["records_moved"]["a"] > 19000  # ... yet values moved
    assert res.change.params == {"variables": ["a", "c"], "by": ["b"], "household": None}


def test_shuffle_without_by_is_a_permutation():
    ds = _correlated(20000)
    out = shuffle(ds, variables="a", seed=1).dataset.frame
    assert out["a"].sort().equals(ds.frame["a"].sort())
    assert abs(np.corrcoef(out["a"], ds.frame["a"])[0, 1]) < 0.03


def test_shuffle_missing_values_and_seed():
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=n)
    s = x + rng.normal(scale=0.5, size=n)
    xs = [None if i % 10 == 0 else v for i, v in enumerate(x)]
    ss = [None if i % 7 == 0 else v for i, v in enumerate(s)]
    ds = Dataset(pl.DataFrame({"x": xs, "s": ss}))
    res = shuffle(ds, variables="x", by="s", seed=9)
    out = res.dataset.frame["x"].to_list()
    assert [v is None for v in out] == [v is None for v in xs]
    assert sorted(v for v in out if v is not None) == sorted(v for v in xs if v is not None)
    assert shuffle(ds, variables="x", by="s", seed=9).dataset.frame.equals(res.dataset.frame)
    assert not shuffle(ds, variables="x", by="s", seed=10).dataset.frame.equals(res.dataset.frame)


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ds: add_noise(ds, variables="label"), "numeric"),
        (lambda ds: add_noise(ds, variables="a", amount=-1), "0 or more"),
        (lambda ds: add_noise(ds, variables="a", method="multiplicative"), "method must be"),
        (lambda ds: add_noise(ds, variables=[]), "at least one variable"),
        (lambda ds: rank_swap(ds, variables="a", p=150), "percentage"),
        (lambda ds: rank_swap(ds, variables="zz"), "no such column"),
        (lambda ds: shuffle(ds, variables="a", by="a"), "by itself"),
        (lambda ds: shuffle(ds, variables=["a", "a"]), "twice"),
    ],
)
def test_errors(call, message):
    with pytest.raises(SafemicroError, match=message):
        call(_correlated(50))


# -- plan steps -------------------------------------------------------------------------------------


def test_plan_steps():
    ds = _correlated(2000)
    for name in ("noise", "rank_swap", "shuffle"):
        spec = STEPS[name]
        assert spec.random and spec.perturbative and not spec.reorders
    ctx = StepContext(Roles(numeric_keys=["a", "c"]), Targets(), 1.0, 5, 1, tuple(ds.columns))
    assert STEPS["noise"].params.model_validate({}).reads(ctx) == ["a", "c"]
    assert STEPS["shuffle"].params.model_validate({"by": "b"}).reads(ctx) == ["a", "c", "b"]
    with pytest.raises(ValueError, match="numeric_keys"):
        STEPS["rank_swap"].params.model_validate({}).check(
            StepContext(Roles(), Targets(), 1.0, 5, 1, tuple(ds.columns))
        )
    plan = Plan.from_yaml(
        "roles: {numeric_keys: [a, c]}\n"
        "steps:\n"
        "  - noise: {amount: 0.05, method: correlated}\n"
        "  - rank_swap: {variables: [b], p: 10}\n"
        "  - shuffle: {by: b}\n"
    )
    steps = prepare_steps(plan, ds.columns, seed=42)
    out1, changes = run_steps(ds, steps)
    out2, _ = run_steps(ds, prepare_steps(plan, ds.columns, seed=42))
    assert out1.frame.equals(out2.frame)  # the plan seed fixes every step
    assert [c.method for c in changes] == ["noise", "rank_swap", "shuffle"]
    for prepared, change in zip(steps, changes):
        text = prepared.spec.describe(prepared.params, change)
        assert str(change.seed) not in text
    assert "22 %" in steps[0].spec.describe(steps[0].params, changes[0])  # √0.05 of the sd
    bad = Plan.from_yaml("steps:\n  - noise: {variables: [a], amout: 0.1}\n")
    with pytest.raises(SafemicroError, match="unknown parameter"):
        prepare_steps(bad, ds.columns, seed=1)


# -- households -------------------------------------------------------------------------------------


def households(n_households: int = 400, seed: int = 0) -> Dataset:
    """Households of 1-5 members with a household-level amount (and one record without id)."""
    rng = np.random.default_rng(seed)
    size = rng.integers(1, 6, size=n_households)
    hh = np.repeat(np.arange(1, n_households + 1), size)
    amount = np.round(rng.lognormal(4, 0.5, size=n_households))[hh - 1].astype(np.int64)
    frame = pl.DataFrame({"hh": hh, "amount": amount, "age": rng.integers(0, 90, size=len(hh))})
    extra = pl.DataFrame({"hh": [None], "amount": [77], "age": [30]}, schema=frame.schema)
    return Dataset(pl.concat([frame, extra]))


def _one_value_per_household(frame: pl.DataFrame, name: str) -> bool:
    return frame.filter(pl.col("hh").is_not_null()).group_by("hh").agg(pl.col(name).n_unique())[name].max() == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda ds: add_noise(ds, variables="amount", amount=0.5, household="hh", seed=1),
        lambda ds: rank_swap(ds, variables="amount", p=10, household="hh", seed=1),
        lambda ds: shuffle(ds, variables="amount", by="age", household="hh", seed=1),
    ],
)
def test_household_level_variables_stay_constant_within_households(call):
    ds = households()
    res = call(ds)
    out = res.dataset.frame
    assert _one_value_per_household(out, "amount")
    assert res.change.details["households"] == 401 and res.change.params["household"] == "hh"
    assert res.change.changed["amount"] > 0.8 * ds.n
    assert out.select("hh", "age").equals(ds.frame.select("hh", "age"))
    if res.change.method != "noise":  # swaps and shuffles keep the households' values
        per_household = lambda f: sorted(f.unique("hh", keep="first", maintain_order=True)["amount"].to_list())
        assert per_household(out) == per_household(ds.frame)


def test_household_level_variable_must_be_constant():
    ds = households()
    frame = ds.frame.with_columns(pl.when(pl.int_range(ds.n) == 1).then(0).otherwise(pl.col("amount")).alias("amount"))
    if frame["hh"][0] != frame["hh"][1]:
        frame = frame.with_columns(pl.when(pl.int_range(ds.n) == 0).then(0).otherwise(pl.col("amount")).alias("amount"))
    with pytest.raises(SafemicroError, match="differs within household") as err:
        add_noise(Dataset(frame), variables="amount", household="hh", seed=1)
    assert err.value.column == "amount"
    with pytest.raises(SafemicroError, match="household id cannot"):
        add_noise(ds, variables="hh", household="hh", seed=1)


def test_steps_pick_the_household_for_household_level_variables():
    ds = households()
    roles = Roles(numeric_keys=["amount"], keys=["age"], household="hh", household_level=["amount"])
    ctx = StepContext(roles, Targets(), 1.0, 5, 1, tuple(ds.columns))
    params = STEPS["noise"].params.model_validate({"amount": 0.5})
    assert params._household(ctx) == "hh" and params.reads(ctx) == ["amount", "hh"]
    res = STEPS["noise"].run(ds, params, ctx)
    assert _one_value_per_household(res.dataset.frame, "amount") and res.change.seed == 5
    mixed = Roles(numeric_keys=["amount", "age"], household="hh", household_level=["amount"])
    with pytest.raises(ValueError, match="one step for each kind"):
        STEPS["rank_swap"].params.model_validate({}).check(StepContext(mixed, Targets(), 1.0, 5, 1, tuple(ds.columns)))


def test_lock_parameters_make_role_defaults_explicit():
    ds = households()
    roles = Roles(numeric_keys=["amount"], household="hh", household_level=["amount"])
    plan = Plan(roles=roles, steps=[{"noise": {}}, {"rank_swap": {"p": 2}}])
    steps = prepare_steps(plan, ds.columns, seed=3)
    _, changes = run_steps(ds, steps)
    release = importlib.import_module("safemicro.release")
    for step, change in zip(steps, changes):
        locked = release._lock_params(step, change)
        assert locked["variables"] == ["amount"] and locked["household"] == "hh"
        assert locked["seed"] == change.seed
