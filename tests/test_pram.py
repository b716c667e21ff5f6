"""PRAM: the sampler follows the matrix, invariance, strata, households, missing codes, errors."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from conftest import SDC_DATA
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.io.dataset import Codebook, VariableMeta
from safemicro.methods.base import STEPS, StepContext
from safemicro.methods.randomization import _draw, _estimated, _invariant, pram
from safemicro.plan import Roles, Targets


def _labelled(values, missing=(98, 99)) -> Dataset:
    frame = pl.DataFrame(
        {"id": np.arange(len(values)), "v": values, "z": np.arange(len(values)) % 3},
        schema={"id": pl.Int64, "v": pl.Int64, "z": pl.Int64},
    )
    cb = Codebook(
        {
            "v": VariableMeta(
                "v",
                value_labels={1: "a", 2: "b", 3: "c", 98: "DK", 99: "Ref"},
                missing_values=list(missing),
            )
        }
    )
    return Dataset(frame, cb)


def _counts(series: pl.Series, cats) -> np.ndarray:
    arr = series.to_numpy()
    return np.array([(arr == c).sum() for c in cats], dtype=float)


@pytest.fixture(scope="module")
def testdata_ds() -> Dataset:
    return Dataset(pl.read_csv(SDC_DATA / "testdata.csv"))


# -- the sampler ---------------------------------------------------------------------------


def test_draw_follows_the_row_probabilities():
    """Two rows of a sparse matrix; 200 000 draws each match the probabilities to 0.5 %."""
    p = np.array([[0.1, 0.0, 0.6, 0.3], [0.0, 0.25, 0.0, 0.75]])
    r, c = np.nonzero(p)
    cum = np.cumsum(p, axis=1)[r, c]
    n = 200_000
    rec = np.repeat([0, 1], n)
    out = _draw(r, c, cum, rec, np.random.default_rng(0).random(2 * n))
    for row in (0, 1):
        freq = np.bincount(out[rec == row], minlength=4) / n
        np.testing.assert_allclose(freq, p[row], atol=0.005)
        assert (freq[p[row] == 0] == 0).all()  # impossible moves never happen


def test_draw_at_the_edges_of_the_unit_interval():
    p = np.array([[0.5, 0.5], [1.0, 0.0]])
    r, c = np.nonzero(p)
    cum = np.cumsum(p, axis=1)[r, c]
    u = np.array([0.0, 0.5 - 1e-12, 0.5, np.nextafter(1.0, 0), 0.0, np.nextafter(1.0, 0)])
    out = _draw(r, c, cum, np.array([0, 0, 0, 0, 1, 1]), u)
    assert out.tolist() == [0, 0, 1, 1, 0, 0]


# -- matrices ---------------------------------------------------------------------------------

freqs = st.lists(st.integers(1, 500), min_size=1, max_size=12).map(lambda x: np.array(x, float))
probs = st.floats(0.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(freqs, probs, probs)
def test_estimated_and_invariant_matrices_are_stochastic(freq, keep, alpha):
    p = _estimated(freq, keep)
    assert (p >= -1e-15).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    if len(freq) > 1:
        np.testing.assert_allclose(np.diag(p), keep)
    pi = freq / freq.sum()
    r = _invariant(p, pi, alpha)
    assert (r >= -1e-12).all()
    np.testing.assert_allclose(r.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(pi @ r, pi, atol=1e-9)  # invariance: pi'R = pi'


def test_invariant_with_a_given_matrix_and_an_unobserved_destination():
    p = np.array([[0.7, 0.2, 0.1], [0.3, 0.7, 0.0], [0.0, 0.0, 1.0]])
    pi = np.array([0.4, 0.6, 0.0])  # category 3 only reachable, never observed
    r = _invariant(p, pi, 1.0)
    np.testing.assert_allclose(pi @ r, pi, atol=1e-12)
    np.testing.assert_allclose(r.sum(axis=1), 1.0)


# -- the method ---------------------------------------------------------------------------------


cats_lists = st.lists(st.sampled_from([1, 2, 3, None, 98]), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(cats_lists, st.integers(0, 2**31))
def test_identity_changes_nothing(values, seed):
    ds = _labelled(values)
    for kwargs in (
        {"keep": 1.0},
        {"matrix": {1: {1: 1.0}, 2: {2: 1.0}, 3: {3: 1.0}}},
        {"keep": 1.0, "invariant": True, "alpha": 1.0},
    ):
        res = pram(ds, variables="v", seed=seed, **kwargs)
        assert res.dataset.frame.equals(ds.frame)
        assert res.change.changed == {"v": 0} and res.change.records_touched == 0


@settings(max_examples=60, deadline=None)
@given(cats_lists, st.integers(0, 2**31), st.booleans())
def test_missing_codes_untouched_and_values_stay_in_the_categories(values, seed, invariant):
    ds = _labelled(values)
    before = ds.frame.clone()
    res = pram(ds, variables="v", keep=0.3, invariant=invariant, seed=seed, strata="z")
    out = res.dataset.frame
    assert ds.frame.equals(before)  # input not mutated
    assert out.columns == ds.frame.columns and out.schema == ds.frame.schema
    assert out.drop("v").equals(ds.frame.drop("v"))
    old, new = ds.frame["v"].to_list(), out["v"].to_list()
    for a, b, z in zip(old, new, ds.frame["z"].to_list()):
        if a is None or a in (98, 99):
            assert b == a
        else:  # within its stratum only categories observed there
            assert b in {x for x, s in zip(old, ds.frame["z"]) if s == z and x in (1, 2, 3)}
    assert res.change.changed["v"] == sum(a != b for a, b in zip(old, new))
    assert res.dataset.codebook.meta("v").value_labels == ds.codebook.meta("v").value_labels


def test_same_seed_same_output_other_seed_differs(testdata_ds):
    a = pram(testdata_ds, variables=["roof", "walls"], seed=11)
    b = pram(testdata_ds, variables=["roof", "walls"], seed=11)
    c = pram(testdata_ds, variables=["roof", "walls"], seed=12)
    assert a.dataset.frame.equals(b.dataset.frame)
    assert a.change.to_dict() == b.change.to_dict()
    assert not a.dataset.frame.equals(c.dataset.frame)
    assert a.change.seed == 11
    json.dumps(a.change.to_dict())  # JSON-friendly


def test_keep_rate_on_sdcmicro_testdata(testdata_ds):
    """keep = 0.8 on roof/walls/water within urbrur: ~20 % of the cells change."""
    res = pram(testdata_ds, variables=["roof", "walls", "water"], strata="urbrur", keep=0.8, seed=3)
    n = testdata_ds.n
    for var in ("roof", "walls", "water"):
        info = res.change.details["variables"][var]
        assert info["expected_keep_rate"] == pytest.approx(0.8)
        # binomial sd of the change rate is ~0.006 for 4580 records
        assert abs(info["changed"] / n - 0.2) < 0.03
        for m in res.change.details["transition_matrix"][var]:
            np.testing.assert_allclose(np.array(m["matrix"]).sum(axis=1), 1.0, atol=1e-9)
            assert set(m["stratum"]) == {"urbrur"}
    assert len(res.change.details["transition_matrix"]["roof"]) == 2


def test_invariant_pram_preserves_marginals_in_expectation():
    """Average counts over 300 runs equal the original counts (3 standard errors)."""
    rng = np.random.default_rng(0)
    values = rng.choice([1, 2, 3, 4], p=[0.6, 0.25, 0.1, 0.05], size=2000)
    ds = _labelled(values.tolist())
    cats = [1, 2, 3, 4]
    original = _counts(ds.frame["v"], cats)
    runs = np.array(
        [
            _counts(
                pram(ds, variables="v", keep=0.6, invariant=True, alpha=1.0, seed=s).dataset.frame["v"],
                cats,
            )
            for s in range(300)
        ]
    )
    se = runs.std(axis=0, ddof=1) / np.sqrt(len(runs))
    assert (np.abs(runs.mean(axis=0) - original) < 3.5 * se + 1e-9).all()
    assert (runs.std(axis=0) > 0).all()  # it did perturb
    # the plain (non-invariant) matrix drifts towards the smaller categories: a biased marginal
    plain = np.array([_counts(pram(ds, variables="v", keep=0.6, seed=s).dataset.frame["v"], cats) for s in range(50)])
    assert plain.mean(axis=0)[0] < original[0] - 100


def test_expected_counts_follow_the_given_matrix():
    values = [1] * 600 + [2] * 400
    ds = _labelled(values)
    matrix = {1: {1: 0.5, 2: 0.3, 3: 0.2}, 2: {2: 0.9, 1: 0.1}}
    runs = np.array(
        [_counts(pram(ds, variables="v", matrix=matrix, seed=s).dataset.frame["v"], [1, 2, 3]) for s in range(200)]
    )
    expected = np.array([600 * 0.5 + 400 * 0.1, 600 * 0.3 + 400 * 0.9, 600 * 0.2])
    np.testing.assert_allclose(runs.mean(axis=0), expected, rtol=0.02)


def test_matrix_forms_are_equivalent():
    ds = _labelled([1, 2, 3, 1, 2, 3, 1, 1] * 20)
    arr = [[0.6, 0.4, 0.0], [0.1, 0.8, 0.1], [0.0, 0.5, 0.5]]
    forms = [
        arr,
        np.array(arr),
        {"categories": [1, 2, 3], "probabilities": arr},
        {"1": {"1": 0.6, "2": 0.4}, "2": {"1": 0.1, "2": 0.8, "3": 0.1}, "3": {"2": 0.5, "3": 0.5}},
        {"v": {1: {1: 0.6, 2: 0.4}, 2: {1: 0.1, 2: 0.8, 3: 0.1}, 3: {2: 0.5, 3: 0.5}}},
    ]
    outs = [pram(ds, variables="v", matrix=m, seed=5).dataset.frame["v"].to_list() for m in forms]
    assert all(o == outs[0] for o in outs)


def test_matrix_on_text_column_with_new_category_and_note():
    frame = pl.DataFrame({"c": ["x", "y", "x", None] * 50})
    ds = Dataset(frame, Codebook({"c": VariableMeta("c", value_labels={"x": "X", "y": "Y"})}))
    res = pram(ds, variables="c", matrix={"x": {"x": 0.5, "other": 0.5}, "y": {"y": 1.0}}, seed=1)
    out = res.dataset.frame["c"]
    assert out.dtype == pl.String
    assert set(out.drop_nulls().to_list()) == {"x", "y", "other"}
    assert out.null_count() == 50
    assert (out.to_numpy()[1::4] == "y").all()
    assert any("other" in n for n in res.change.notes)


def test_household_level_pram_is_consistent_within_households():
    rng = np.random.default_rng(1)
    hh = np.repeat(np.arange(300), rng.integers(1, 6, size=300))
    camp = rng.integers(1, 5, size=300)[hh]
    ds = Dataset(pl.DataFrame({"hh": hh, "camp": camp}))
    res = pram(ds, variables="camp", household="hh", keep=0.5, seed=2)
    out = res.dataset.frame
    assert out.group_by("hh").agg(pl.col("camp").n_unique())["camp"].max() == 1
    assert res.change.changed["camp"] > 0


def test_strata_never_produce_a_category_absent_from_the_stratum():
    ds = Dataset(pl.DataFrame({"region": [1] * 100 + [2] * 100, "v": [1, 2] * 50 + [3, 4] * 50}))
    out = pram(ds, variables="v", strata="region", keep=0.0, seed=0).dataset.frame
    assert set(out.filter(pl.col("region") == 1)["v"]) <= {1, 2}
    assert set(out.filter(pl.col("region") == 2)["v"]) <= {3, 4}
    assert (out["v"] != ds.frame["v"]).all()  # keep 0 with two categories: always swapped


def test_single_category_and_all_missing():
    ds = Dataset(pl.DataFrame({"a": [5, 5, 5], "b": pl.Series([None, None, None], dtype=pl.Int64)}))
    res = pram(ds, variables=["a", "b"], keep=0.0, seed=0)
    assert res.dataset.frame.equals(ds.frame)
    assert res.change.details["variables"]["a"]["expected_keep_rate"] == 1.0
    assert res.change.details["variables"]["b"]["expected_keep_rate"] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variables": []}, "at least one variable"),
        ({"variables": "nope"}, "no such column"),
        ({"variables": "v", "keep": 1.5}, "between 0 and 1"),
        ({"variables": "v", "alpha": -0.1}, "between 0 and 1"),
        ({"variables": "v", "strata": "v"}, "defined by itself"),
        (
            {"variables": "v", "matrix": {1: {1: 0.5, 2: 0.4}, 2: {2: 1.0}, 3: {3: 1.0}}},
            "sums to 0.9",
        ),
        (
            {"variables": "v", "matrix": {1: {1: 1.2, 2: -0.2}, 2: {2: 1.0}, 3: {3: 1.0}}},
            "negative",
        ),
        (
            {"variables": "v", "matrix": {1: {1: 1.0}, 2: {2: 1.0}}},
            "no row for the observed category [3]",
        ),
        ({"variables": "v", "matrix": [[1.0, 0.0], [0.0, 1.0]]}, "observed categories"),
        ({"variables": "v", "matrix": [[1.0, 0.0, 0.0], [0.0, 1.0]]}, "numbers"),
        ({"variables": "v", "matrix": {"a": {"a": 1.0}}}, "not a valid value"),
        ({"variables": ["v", "z"], "matrix": [[1.0]]}, "per variable"),
        ({"variables": "v", "matrix": 3}, "matrix must be"),
        ({"variables": "id"}, "recode it first"),
        (
            {"variables": "v", "matrix": {1: {1: 0.5, 98: 0.5}, 2: {2: 1}, 3: {3: 1}}},
            "missing code 98",
        ),
    ],
)
def test_errors(kwargs, message):
    ds = _labelled([1, 2, 3] * 400)
    with pytest.raises(SafemicroError) as err:
        pram(ds, **kwargs)
    assert message in str(err.value)


# -- plan step ------------------------------------------------------------------------------


def _ctx(ds: Dataset, **roles) -> StepContext:
    return StepContext(Roles(**roles), Targets(), 1.0, 77, 1, tuple(ds.columns))


def test_step_uses_household_for_household_level_variables_and_ctx_seed():
    rng = np.random.default_rng(1)
    hh = np.repeat(np.arange(200), 3)
    ds = Dataset(
        pl.DataFrame(
            {
                "hh": hh,
                "camp": rng.integers(1, 4, size=200)[hh],
                "sex": rng.integers(1, 3, size=600),
            }
        )
    )
    spec = STEPS["pram"]
    assert spec.random and spec.perturbative and not spec.reorders
    ctx = _ctx(ds, keys=["camp", "sex"], household="hh", household_level=["camp"])
    params = spec.params.model_validate({"variables": ["camp"], "keep": 0.5})
    params.check(ctx)
    assert params.reads(ctx) == ["camp", "hh"]
    res = spec.run(ds, params, ctx)
    assert res.change.seed == 77 and res.change.params["household"] == "hh"
    assert res.dataset.frame.group_by("hh").agg(pl.col("camp").n_unique())["camp"].max() == 1
    text = spec.describe(params, res.change)
    assert "one draw per household" in text
    assert "PRAM" in text and "50 %" in text and "77" not in text and "0.5" not in text
    with pytest.raises(ValueError, match="use one step for each kind"):
        spec.params.model_validate({"variables": ["camp", "sex"]}).check(ctx)
    with pytest.raises(ValueError, match="needs variables"):
        spec.params.model_validate({}).check(ctx)
    with pytest.raises(ValueError, match="household id"):
        spec.params.model_validate({"variables": ["hh"]}).check(ctx)
    seeded = spec.run(ds, spec.params.model_validate({"variables": ["sex"], "seed": 5}), ctx)
    assert seeded.change.seed == 5


def test_step_params_forbid_unknown_fields():
    with pytest.raises(ValidationError):
        STEPS["pram"].params.model_validate({"variables": ["a"], "kep": 0.8})
