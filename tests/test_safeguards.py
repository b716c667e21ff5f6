"""Copy safeguards: replicated uniques, exact matches, DCR and Q_δ.

Each safeguard is shown to fire on a "synthesizer" that copies training rows and to stay
quiet on a real holdout split (fresh data from the same population).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SD2011
from safemicro.errors import SafemicroError
from safemicro.io import from_frame, read
from safemicro.synth import safeguards as sg

QI = ["sex", "age", "region", "placesize", "edu", "marital"]


@pytest.fixture(scope="module")
def sd2011():
    """SD2011 split 4000 / 1000, a copying 'synthesizer' and independent marginals."""
    frame = read(SD2011).frame
    rng = np.random.default_rng(1)
    perm = rng.permutation(frame.height)
    train, holdout = frame[perm[:4000]], frame[perm[4000:]]
    copies = train[rng.integers(0, train.height, 3000)]
    marginals = pl.DataFrame({c: train[c].gather(rng.integers(0, train.height, 3000)) for c in train.columns})
    return train, holdout, copies, marginals


# -- replicated uniques --------------------------------------------------------------------------


def test_replicated_uniques_by_hand():
    train = pl.DataFrame({"a": [1, 1, 2, 3, None], "b": ["x", "x", "y", "z", "w"]})
    synth = pl.DataFrame({"a": [1.0, 2.0, 3.0, 3.0, None, 4.0], "b": ["x", "y", "y", "z", "w", "z"]})
    # (1, x) appears twice in training: not unique; (2, y), (3, z), (None, w) are unique
    mask = sg.replicated_uniques(train, synth, ["a", "b"])
    assert mask.tolist() == [False, True, False, True, True, False]
    kept = sg.drop_replicated_uniques(train, synth, ["a", "b"])
    assert kept.rows() == [(1.0, "x"), (3.0, "y"), (4.0, "z")]


def test_drop_replicated_uniques_keeps_a_dataset_and_its_codebook():
    train = from_frame(pl.DataFrame({"k": [1, 2, 2], "v": [1, 2, 3]}))
    synth = from_frame(pl.DataFrame({"k": [1, 2, 1], "v": [9, 9, 9]}))
    synth.codebook.meta("k").value_labels = {1: "one", 2: "two"}
    out = sg.drop_replicated_uniques(train, synth, ["k"])
    assert out.frame.get_column("k").to_list() == [2]
    assert out.codebook.meta("k").value_labels == {1: "one", 2: "two"}


def test_replicated_uniques_bad_keys():
    train = pl.DataFrame({"a": [1, 2]})
    with pytest.raises(SafemicroError, match="no such column") as err:
        sg.replicated_uniques(train, train, ["a", "nope"])
    assert err.value.column == "nope"
    with pytest.raises(SafemicroError, match="at least one key"):
        sg.replicated_uniques(train, train, [])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0, 1, 2, None]), st.sampled_from(["u", "v", None])), min_size=1, max_size=25),
    st.lists(st.tuples(st.sampled_from([0, 1, 2, 3, None]), st.sampled_from(["u", "v", "w", None])), max_size=25),
)
def test_replicated_uniques_matches_the_plain_rule(train_rows, synth_rows):
    train = pl.DataFrame(train_rows, schema={"a": pl.Int64, "b": pl.String}, orient="row")
    synth = pl.DataFrame(synth_rows, schema={"a": pl.Int64, "b": pl.String}, orient="row")
    counts: dict[tuple, int] = {}
    for row in train_rows:
        counts[row] = counts.get(row, 0) + 1
    expected = [counts.get(row, 0) == 1 for row in synth_rows]
    assert sg.replicated_uniques(train, synth, ["a", "b"]).tolist() == expected


def test_replicated_uniques_flag_copies_and_the_filter_removes_them(sd2011):
    train, holdout, copies, _ = sd2011
    flagged = sg.replicated_uniques(train, copies, QI)
    natural = sg.replicated_uniques(train, holdout, QI).mean()
    assert flagged.mean() > 4 * natural  # copies re-create unique people far above chance
    guarded = sg.drop_replicated_uniques(train, copies, QI)
    assert guarded.height == copies.height - flagged.sum()
    assert not sg.replicated_uniques(train, guarded, QI).any()  # with the safeguard: none left


# -- exact matches ---------------------------------------------------------------------------------


def test_exact_match_rates_by_hand():
    train = pl.DataFrame({"a": [1, 1, 2, 3], "b": ["x", "x", None, "z"]})
    synth = pl.DataFrame({"a": [1, 2, 5, 3], "b": ["x", None, "q", "q"]})
    holdout = pl.DataFrame({"a": [2, 9], "b": ["y", "y"]})
    r = sg.exact_match_rates(synth, train, holdout)
    assert r["synth_in_train"] == 0.5  # (1, x) and (2, None)
    assert r["train_uniques"] == 2  # (2, None) and (3, z)
    assert r["unique_exact_match"] == 0.5  # (2, None) found in the synthetic data
    assert r["holdout_in_train"] == 0.0 and r["synth_in_holdout"] == 0.0
    assert sg.exact_match_rates(synth, train)["holdout_in_train"] is None


def test_exact_match_rates_on_copies_and_holdout(sd2011):
    train, holdout, copies, marginals = sd2011
    r = sg.exact_match_rates(copies, train, holdout)
    assert r["synth_in_train"] == 1.0
    assert r["holdout_in_train"] < 0.01
    assert sg.exact_match_rates(marginals, train, holdout)["synth_in_train"] <= r["holdout_in_train"]


# -- distances ---------------------------------------------------------------------------------------


def test_nearest_distances_by_hand():
    ref = pl.DataFrame({"x": [0.0, 2.0, 4.0], "c": ["a", "b", "a"]})
    query = pl.DataFrame({"x": [2.0, None, 4.0], "c": ["a", "a", "c"]})
    (d,) = sg.nearest_distances(ref, query)
    sd = np.std([0.0, 2.0, 4.0])  # numbers scaled by the reference's standard deviation
    # row 1: x=2 and c=a: 2/sd from rows 1 and 3 (same c); row 2 has x=2 but c=b (2 cells)
    # row 2: a missing x is the mean (2), so the same as row 1
    # row 3: x=4 like row 3, but the new category c: its own cell + the reference's cell
    assert d == pytest.approx([2 / sd, 2 / sd, 2.0])


def test_distances_in_the_reduced_space_are_zero_for_copies(sd2011):
    train, holdout, copies, _ = sd2011
    d_copy, d_hold = sg.nearest_distances(train, copies, holdout)
    assert (d_copy == 0).all()
    assert (d_hold > 0).mean() > 0.99
    with pytest.raises(SafemicroError, match="no such column"):
        sg.nearest_distances(train, holdout.drop("age"))


# -- Q_δ ------------------------------------------------------------------------------------------------


def test_q_delta_formula_against_a_plain_loop():
    rng = np.random.default_rng(3)
    d_os, d_oh = rng.exponential(size=50), rng.exponential(size=50)
    d_os[:5] = 0.0
    d_oh[:3] = 0.0  # rows 0-2: zero both ways, dropped
    d_so, d_ho = rng.exponential(size=20) * 0.8, rng.exponential(size=20)
    keep = ~((d_os == 0) & (d_oh == 0))
    d_s = list(d_os[keep]) + list(d_so)
    d_h = np.array(list(d_oh[keep]) + list(d_ho))
    qs = np.linspace(0, 0.05, 100)
    expected = np.mean([sum(x <= np.quantile(d_h, q) for x in d_s) / len(d_s) - q for q in qs])
    assert sg._q_delta(d_os, d_oh, d_so, d_ho, 0.05, 100) == pytest.approx(expected)


def test_q_delta_separates_copies_from_fresh_data(sd2011):
    train, holdout, copies, marginals = sd2011
    original = train[:3000]
    copied = original[np.random.default_rng(0).integers(0, 3000, 1000)]
    assert sg.q_delta(original, copied, holdout) > 0.2
    assert abs(sg.q_delta(original, train[3000:], holdout)) < 0.02
    assert sg.q_delta(original, marginals[:1000], holdout) < 0


def test_q_delta_check_fails_on_copies_and_passes_a_holdout_split(sd2011):
    train, holdout, copies, marginals = sd2011
    bad = sg.q_delta_check(train, copies, holdout, n_boot=40, seed=5)
    assert not bad["passed"] and bad["q_delta"] > 10 * bad["threshold"]
    assert bad["k"] == 666 and bad["n_original"] == 4 * 666 and len(bad["null"]) == 40
    # the same check with the "synthetic" data being fresh real records
    rng = np.random.default_rng(2)
    perm = rng.permutation(train.height)
    fresh = sg.q_delta_check(train[perm[:3000]], train[perm[3000:]], holdout, n_boot=40, seed=5)
    assert fresh["passed"]
    assert sg.q_delta_check(train, marginals, holdout, n_boot=40, seed=5)["passed"]
    # without a holdout the comparison rows come from the training data
    assert not sg.q_delta_check(train, copies, n_boot=20, seed=5)["passed"]


def test_q_delta_threshold_is_deterministic_and_small(sd2011):
    train = sd2011[0]
    a = sg.q_delta_threshold(train, n_boot=30, seed=11)
    assert a == sg.q_delta_threshold(train, n_boot=30, seed=11)
    null = sg.q_delta_null(train, n_boot=30, seed=11)
    assert a == pytest.approx(np.quantile(null, 0.95))
    assert 0 < a < 0.03 and abs(null.mean()) < 0.01


def test_q_delta_bad_input():
    small = pl.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(SafemicroError, match="too few"):
        sg.q_delta_null(small, n_boot=2)
    with pytest.raises(SafemicroError, match="delta"):
        sg.q_delta(small, small, small, delta=0)
    with pytest.raises(SafemicroError, match="kinds") as err:
        sg.q_delta(small, small, small, kinds={"x": "text"})
    assert err.value.column == "x"


def test_distance_kinds():
    frame = pl.DataFrame({"n": [1], "f": [1.0], "s": ["a"], "b": [True], "d": pl.Series([0], dtype=pl.Date)})
    assert sg.distance_kinds(frame) == {
        "n": "numeric",
        "f": "numeric",
        "s": "categorical",
        "b": "categorical",
        "d": "numeric",
    }
