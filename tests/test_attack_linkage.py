"""Linkage attack on sdcMicro's testdata: raw, k=3 local suppression, PRAM; bad input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import KV7
from safemicro.attack.linkage import LinkageEvaluator, combine_auxiliary, fellegi_sunter_em, link_records
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.keys import build_key_table
from safemicro.methods import local_suppression, pram


@pytest.fixture(scope="module")
def people(testdata) -> pl.DataFrame:
    return testdata.with_row_index("pid")


@pytest.fixture(scope="module")
def aux(people) -> pl.DataFrame:
    """The intruder knows the 7 keys of everybody in the sample."""
    return people.select(["pid", *KV7])


def _results(release, aux, **kw):
    return LinkageEvaluator(release, aux, truth="pid", **kw).evaluate(drivers=False).results()


@pytest.mark.parametrize("method", ["exact", "distance", "fellegi_sunter"])
def test_raw_file_reidentifies_every_sample_unique(people, aux, method):
    fk = build_key_table(people, KV7).record_fk()
    uniques = int((fk == 1).sum())
    assert uniques == 157
    ev = LinkageEvaluator(people, aux, truth="pid", method=method, threshold=0.99).evaluate(drivers=False)
    o = ev.outcome_
    sure = o.claims & (o.confidence >= 0.99)
    # the re-identified people are exactly the sample uniques, every claim right
    assert sure.sum() == uniques
    assert np.array_equal(np.flatnonzero(sure), np.flatnonzero(fk == 1))
    assert o.true_in_best[sure].all()
    # expected correct claims = Σ 1/fk = number of distinct keys (the intruder picks at random)
    assert ev.results()["expected_correct"] == pytest.approx(build_key_table(people, KV7).n_keys)


def test_exact_counts_match_an_independent_join(people, aux):
    """Candidates per auxiliary record = released records with the same 7 keys (polars join)."""
    ev = LinkageEvaluator(people, aux, truth="pid").evaluate(drivers=False)
    ref = aux.join(people.group_by(KV7).len(), on=KV7, how="left").get_column("len").to_numpy()
    assert np.array_equal(ev.outcome_.n_candidates, ref)


def test_wildcards_count_compatible_records():
    release = pl.DataFrame({"id": [1, 2, 3, 4], "a": [1, 1, None, 2], "b": [1, None, 1, 2]})
    aux = pl.DataFrame({"id": [1, 4, 9], "a": [1, 2, 1], "b": [1, 2, None]})
    out, _ = link_records(release, aux, ["a", "b"], truth_rows=np.array([0, 3, -1]))
    # (1,1) ~ rows 0, 1 (b missing), 2 (a missing); (2,2) ~ row 3; (1,?) ~ rows 0, 1, 2
    assert out.n_candidates.tolist() == [3, 1, 3]
    assert out.true_in_best.tolist() == [True, True, False]
    assert out.expected_correct.tolist() == pytest.approx([1 / 3, 1.0, 0.0])


def test_k3_then_pram_lower_success(people, aux):
    raw = _results(people, aux)
    ls = local_suppression(Dataset(people), keys=KV7, k=3).dataset.frame
    k3 = _results(ls, aux)
    prammed = pram(Dataset(people), variables=KV7, keep=0.8, seed=1).dataset.frame
    pr = _results(prammed, aux)
    # after k=3 an exact-match claim succeeds with probability at most 1/3 on average
    assert k3["precision"] <= 1 / 3
    assert k3["true_match_rate"] < raw["true_match_rate"]
    assert k3["expected_correct"] < raw["expected_correct"]
    # PRAM lowers it further; its confident claims are mostly wrong
    assert pr["true_match_rate"] < k3["true_match_rate"]
    assert pr["precision"] < k3["precision"]
    assert pr["reidentified_precision"] < 0.5 < raw["reidentified_precision"]
    print({"raw": raw["true_match_rate"], "k3": k3["true_match_rate"], "pram": pr["true_match_rate"]})


def test_fellegi_sunter_learns_m_and_u(people, aux):
    r = _results(people, aux, method="fellegi_sunter")
    m, u = r["details"]["m"], r["details"]["u"]
    assert all(m[c] > 0.99 for c in KV7)  # true matches agree on every key
    assert all(m[c] > u[c] for c in KV7)
    # sex has two near-equal categories: chance agreement ≈ 1/2
    assert u["sex"] == pytest.approx(0.5, abs=0.02)


def test_em_recovers_a_simulated_mixture():
    rng = np.random.default_rng(3)
    m_true, u_true = np.array([0.95, 0.9, 0.8, 0.9, 0.85]), np.array([0.1, 0.3, 0.5, 0.05, 0.2])
    n_match, n_non = 2000, 200_000
    agree = np.vstack([rng.random((n_match, 5)) < m_true, rng.random((n_non, 5)) < u_true])
    pid = (agree * (1 << np.arange(5))).sum(1) + (31 << 5)
    pats, w = np.unique(pid, return_counts=True)
    m, u, p = fellegi_sunter_em(pats, w.astype(float), 5, p0=0.02)
    assert np.allclose(m, m_true, atol=0.05)  # the MLE, not the truth: 1 % matches
    assert np.allclose(u, u_true, atol=0.01)
    assert p == pytest.approx(n_match / (n_match + n_non), rel=0.15)


def test_distance_linkage_with_noisy_numbers(people):
    """Income with small noise: exact matching fails, distance linkage finds people."""
    rng = np.random.default_rng(1)
    release = people.select("pid", "urbrur", "sex", "income")
    aux = release.with_columns(pl.col("income") * pl.Series(rng.uniform(0.995, 1.005, people.height)))
    exact = _results(release, aux, on=["urbrur", "sex", "income"])
    dist = _results(release, aux, on=["urbrur", "sex", "income"], method="distance", block=["urbrur", "sex"])
    assert exact["expected_correct"] < 0.05 * people.height
    assert dist["true_match_rate"] > 0.15  # incomes are rounded: ties remain


def test_mosaic_combines_files(people):
    """Two lists that are weak alone re-identify more people together."""
    a = people.select("pid", "urbrur", "roof", "walls", "water")
    b = people.select("pid", "electcon", "relat", "sex")
    alone = [_results(people, x)["reidentified"] for x in (a, b)]
    both = LinkageEvaluator(people, [a, b], truth="pid").evaluate(drivers=True).results()
    assert both["reidentified"] > max(alone)
    assert set(both["linking_columns"]) == set(KV7)
    assert {d["variable"] for d in both["drivers"]} == set(KV7)
    assert [f["columns"] for f in both["auxiliary_files"]] == [
        ["urbrur", "roof", "walls", "water"],
        ["electcon", "relat", "sex"],
    ]


def test_combine_auxiliary_coalesces():
    a = pl.DataFrame({"id": [1, 2], "x": [1, None]})
    b = pl.DataFrame({"id": [2, 3], "x": [5, 6], "y": ["a", "b"]})
    out = combine_auxiliary([a, b], "id").sort("id")
    assert out.rows() == [(1, 1, None), (2, 5, "a"), (3, 6, "b")]


def test_groups_and_drivers(people, aux):
    ev = LinkageEvaluator(people, aux, truth="pid", by=["sex"]).evaluate()
    groups = ev.results()["groups"]
    fk1 = [g for g in groups if g["group"] == "1" and g["by"].startswith("released key")][0]
    assert fk1["n"] == 157 and fk1["true_match_rate"] == 1.0
    assert {g["group"] for g in groups if g["by"] == "sex"} == {"1", "2"}
    assert ev.drivers_[0]["correct_lost"] >= ev.drivers_[-1]["correct_lost"]


# -- bad input ---------------------------------------------------------------------------------


def test_missing_column(people, aux):
    with pytest.raises(SafemicroError, match="not in the released file") as e:
        LinkageEvaluator(people.drop("roof"), aux, truth="pid", on=KV7)
    assert e.value.column == "roof"


def test_type_mismatch_names_row(people, aux):
    bad = aux.with_columns(pl.col("sex").cast(pl.String)).with_columns(
        pl.when(pl.col("pid") == 4).then(pl.lit("male")).otherwise(pl.col("sex")).alias("sex")
    )
    with pytest.raises(SafemicroError, match="type mismatch") as e:
        LinkageEvaluator(people, bad, truth="pid")
    assert e.value.column == "sex" and e.value.row == 5


def test_empty_files(people, aux):
    with pytest.raises(SafemicroError, match="auxiliary file has no records"):
        LinkageEvaluator(people, aux.head(0), truth="pid")
    with pytest.raises(SafemicroError, match="released file has no records"):
        LinkageEvaluator(people.head(0), aux, truth="pid")


def test_no_identity_and_bad_method(people, aux):
    with pytest.raises(SafemicroError, match="identity column"):
        LinkageEvaluator(people, aux.drop("pid"), truth="pid")
    with pytest.raises(SafemicroError, match="unknown linkage method"):
        LinkageEvaluator(people, aux, truth="pid", method="fuzzy")
    with pytest.raises(SafemicroError, match="identity repeated"):
        LinkageEvaluator(people, aux, truth="pid", release_ids=np.zeros(people.height, dtype=int)).evaluate()


def test_household_composition_attack(people):
    """testdata's households (ori_hid): knowing every member's keys singles out households."""
    aux = people.select("pid", "ori_hid", *KV7)
    r = (
        LinkageEvaluator(people, aux, truth="pid", household="ori_hid", aux_household="ori_hid")
        .evaluate(drivers=False)
        .results()
    )
    h = r["households"]
    assert h["n_released_households"] == people.get_column("ori_hid").n_unique()
    assert h["household_match_rate"] > r["true_match_rate"]  # whole households are easier to find
    assert h["reidentified_households_correct"] == h["reidentified_households"]  # no errors: never wrong
    with pytest.raises(SafemicroError, match="household column of both"):
        LinkageEvaluator(people, aux, truth="pid", household="ori_hid")


# -- against brute force on small random files ---------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _random_files(seed: int, n_r: int, n_a: int, missing: float):
    rng = np.random.default_rng(seed)

    def frame(n):
        cols = {c: rng.integers(1, 4, n).astype(float) for c in ("a", "b", "c")}
        cols["x"] = rng.integers(0, 50, n).astype(float)
        f = pl.DataFrame(cols)
        return f.with_columns(
            [pl.when(pl.Series(rng.random(n) < missing)).then(None).otherwise(pl.col(c)).alias(c) for c in f.columns]
        )

    release, aux = frame(n_r), frame(n_a)
    truth = rng.integers(-1, n_r, n_a)
    return release, aux, truth


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(1, 30), st.sampled_from([0.0, 0.2, 0.5]))
def test_exact_and_distance_equal_brute_force(seed, n_r, n_a, missing):
    release, aux, truth = _random_files(seed, n_r, n_a, missing)
    on = ["a", "b", "c", "x"]
    R, A = release.select(on).rows(), aux.select(on).rows()
    ex, _ = link_records(release, aux, on, truth_rows=truth)
    dist, _ = link_records(release, aux, on, truth_rows=truth, method="distance", numeric=["x"])
    span = (
        max(v for f in (R, A) for r in f for v in [r[3]] if v is not None)
        - min(v for f in (R, A) for r in f for v in [r[3]] if v is not None)
        if any(r[3] is not None for f in (R, A) for r in f)
        else 1.0
    )
    span = span or 1.0
    for i, a in enumerate(A):
        compatible = [j for j, r in enumerate(R) if all(x is None or y is None or x == y for x, y in zip(a, r))]
        assert ex.n_candidates[i] == len(compatible)
        assert ex.true_in_best[i] == (truth[i] in compatible)

        def d(r):
            cat = sum(x is not None and y is not None and x != y for x, y in zip(a[:3], r[:3]))
            num = abs(a[3] - r[3]) / span if a[3] is not None and r[3] is not None else 0.0
            return (cat + min(num, 1.0)) / 4

        ds = [d(r) for r in R]
        best = min(ds)
        ties = [j for j, v in enumerate(ds) if abs(v - best) <= 1e-12]
        assert dist.n_best[i] == len(ties)
        assert dist.true_in_best[i] == (truth[i] in ties)
        assert dist.confidence[i] == pytest.approx(1 / len(ties))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 30), st.integers(1, 30))
def test_fellegi_sunter_scores_equal_brute_force(seed, n_r, n_a):
    """Given the m/u it estimated, each record's best candidates and confidence follow by hand."""
    release, aux, truth = _random_files(seed, n_r, n_a, 0.2)
    on = ["a", "b", "c"]
    out, det = link_records(release, aux, on, truth_rows=truth, method="fellegi_sunter")
    m, u, prior = det["m"], det["u"], det["match_prior"]
    R, A = release.select(on).rows(), aux.select(on).rows()
    for i, a in enumerate(A):

        def log_lr(r):
            s = 0.0
            for c, x, y in zip(on, a, r):
                if x is None or y is None:
                    continue
                s += np.log(m[c] / u[c]) if x == y else np.log((1 - m[c]) / (1 - u[c]))
            return s

        w = np.array([log_lr(r) for r in R])
        best = w.max()
        ties = np.flatnonzero(np.abs(w - best) <= 1e-9)
        assert out.n_best[i] == len(ties)
        assert out.true_in_best[i] == (truth[i] in ties)
        q = prior / len(R)
        assert out.confidence[i] == pytest.approx(q / (q * np.exp(w - best).sum() + 1 - prior), rel=1e-6)
