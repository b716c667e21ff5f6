"""SUDA2: parity with sdcMicro 5.8.1 reference outputs, hand-checked toys, properties."""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PRACTICE_GUIDE
from safemicro.risk.suda2 import suda2

DATA = Path(__file__).resolve().parent / "data" / "sdcmicro" / "testdata.csv"
REF = Path(__file__).resolve().parent / "data" / "sdcmicro_reference"
KV7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


# ----------------------------------------------------------------------------------------
# reference parity (testdata, 7 keys)


@pytest.fixture(scope="module")
def testdata() -> pl.DataFrame:
    return pl.read_csv(DATA)


@pytest.fixture(scope="module")
def ref_rec() -> pl.DataFrame:
    return pl.read_csv(REF / "testdata_suda2_7keys.csv", infer_schema_length=None)


@pytest.fixture(scope="module")
def ref_json() -> dict:
    return json.loads((REF / "testdata_reference.json").read_text())["suda2"]


@pytest.fixture(scope="module")
def res(testdata):
    return suda2(testdata, KV7)


@pytest.fixture(scope="module")
def res_alt(testdata):
    return suda2(testdata, KV7, original_scores=False)


def test_scores_exact(res, ref_rec):
    assert res.score.shape == (ref_rec.height,)
    np.testing.assert_array_equal(res.score, ref_rec["score"].to_numpy())


def test_dis_scores(res, ref_rec):
    ref = ref_rec["disScore"].to_numpy()
    np.testing.assert_allclose(res.dis, ref, rtol=0, atol=1e-6)
    # in fact sdcMicro's float32 steps are reproduced to double rounding
    assert np.max(np.abs(res.dis - ref)) < 1e-12


def test_contributions(res, ref_rec):
    for j, k in enumerate(KV7):
        np.testing.assert_allclose(res.contributions[:, j], ref_rec[f"{k}_contribution"].to_numpy(), rtol=0, atol=1e-12)
    frame = res.to_frame()
    assert frame.columns == ["score", "dis"] + [f"{k}_contribution" for k in KV7]


def test_alternative_scores(res_alt, ref_rec):
    np.testing.assert_allclose(res_alt.score, ref_rec["score_orig_false"].to_numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(res_alt.dis, ref_rec["disScore_orig_false"].to_numpy(), rtol=0, atol=1e-6)
    assert np.max(np.abs(res_alt.dis - ref_rec["disScore_orig_false"].to_numpy())) < 1e-12


def test_summary_matches_json(res, ref_json):
    s = res.summary()
    assert s["n_score_gt0"] == ref_json["n_score_gt0"]
    assert s["sum_score"] == ref_json["sum_score"]
    assert s["max_score"] == ref_json["max_score"]
    assert s["sum_dis"] == pytest.approx(ref_json["sum_disScore"], abs=1e-9)
    assert s["max_dis"] == pytest.approx(ref_json["max_disScore"], abs=1e-9)
    assert s["dis_table"] == ref_json["dis_table"]
    assert list(s["dis_table"]) == list(ref_json["dis_table"])
    expected = {d["variable"]: d["contribution"] for d in ref_json["attribute_contributions"]}
    assert list(s["attribute_contributions"]) == KV7
    for k, v in expected.items():
        assert s["attribute_contributions"][k] == pytest.approx(v, abs=1e-10)
        assert res.attribute_contributions[k] == pytest.approx(v, abs=1e-10)


def test_summary_alt_matches_json(res_alt, ref_json):
    s = res_alt.summary()
    ref = ref_json["original_scores_FALSE"]
    assert s["sum_score"] == pytest.approx(ref["sum_score"], rel=1e-12)
    assert s["max_score"] == pytest.approx(ref["max_score"], rel=1e-12)
    assert s["sum_dis"] == pytest.approx(ref["sum_disScore"], abs=1e-9)
    assert s["max_dis"] == pytest.approx(ref["max_disScore"], abs=1e-9)
    assert s["dis_table"] == ref["dis_table"]


def test_level_contributions(res):
    ref = pl.read_csv(REF / "testdata_suda2_7keys_level_contributions.csv")
    got = res.level_contributions
    assert sum(len(v) for v in got.values()) == ref.height
    for var, level, contrib in ref.iter_rows():
        assert got[var][level] == pytest.approx(contrib, abs=1e-10), (var, level)
    # per variable they are shares of 100
    for var, d in got.items():
        assert sum(d.values()) == pytest.approx(100.0)
    assert res.summary()["level_contributions"] == got


def test_string_keys_same_as_codes(testdata, res):
    ds = testdata.with_columns([pl.col(k).cast(pl.String) for k in KV7])
    r = suda2(ds, KV7)
    np.testing.assert_array_equal(r.score, res.score)
    np.testing.assert_allclose(r.dis, res.dis, rtol=0, atol=1e-15)
    np.testing.assert_allclose(r.contributions, res.contributions, rtol=0, atol=1e-15)
    assert r.level_contributions["relat"]["5"] == pytest.approx(res.level_contributions["relat"][5])


def test_float_keys_truncated(testdata, res):
    df = testdata.with_columns(pl.col("water").cast(pl.Float64) + 0.7)  # 3.7 -> 3 etc.
    r = suda2(df, KV7)
    np.testing.assert_array_equal(r.score, res.score)


# ----------------------------------------------------------------------------------------
# hand-checked toys


def practice_guide() -> pl.DataFrame:
    """The 10-record example of the IHSN/World Bank SDC Practice Guide (its keys only)."""
    return PRACTICE_GUIDE.drop("weight")


def test_practice_guide_scores():
    r = suda2(practice_guide(), ["residence", "gender", "education", "labour"])
    np.testing.assert_array_equal(r.score, [0, 0, 6, 0, 12, 0, 6, 10, 0, 0])
    # record 5 (Rural Female Secondary-complete Unemployed): MSUs {residence} (3!),
    # {gender, labour}, {education, labour}, {gender, education} (2! each)
    np.testing.assert_allclose(r.contributions[4], [6 / 12, 4 / 12, 4 / 12, 4 / 12])
    # record 8: {education} (6), {gender, labour} (2), {residence, labour} (2)
    np.testing.assert_allclose(r.contributions[7], [2 / 10, 2 / 10, 6 / 10, 4 / 10])


def toy_na() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "a": [1, 1, 1, 2, 2, 2, 3, 1, 4, 1, 1],
            "b": [1, 1, 2, 1, 1, 1, 1, 3, 2, 4, 4],
            "c": [1, 1, None, 1, 1, None, None, 5, None, 1, None],
        }
    )


def test_na_in_keys():
    r = suda2(toy_na(), ["a", "b", "c"])
    # r0,r1,r3,r4: duplicates -> 0
    # r2 (1,2,NA): {a,b}=(1,2) unique -> (3-2)! = 1; {b}=2 shared with r8; c excluded
    # r5 (2,1,NA): unique on the full key only through c (missing) -> 0
    # r6 (3,1,NA): {a} -> 2
    # r7 (1,3,5): {b} -> 2, {c} -> 2
    # r8 (4,2,NA): {a} -> 2
    # r9 (1,4,1): {b,c}=(4,1) unique because r10's NA is the ordinary value -999 -> 1
    # r10 (1,4,NA): {a,b} shared with r9, everything else contains c -> 0
    np.testing.assert_array_equal(r.score, [0, 0, 1, 0, 0, 0, 2, 4, 2, 1, 0])
    np.testing.assert_allclose(r.contributions[9], [0, 1, 1])
    np.testing.assert_allclose(r.contributions[7], [0, 0.5, 0.5])
    # an explicit -999 is the same as NA
    df = toy_na().with_columns(pl.col("c").fill_null(-999))
    np.testing.assert_array_equal(suda2(df, ["a", "b", "c"]).score, r.score)
    # another missing code
    df = toy_na().with_columns(pl.col("c").fill_null(-1))
    np.testing.assert_array_equal(suda2(df, ["a", "b", "c"], missing=-1).score, r.score)
    # missing level is not reported among level contributions
    assert set(r.level_contributions["c"]) == {1, 5}


def test_string_and_float_na():
    df = toy_na().with_columns(
        pl.col("c").cast(pl.String),
        pl.col("b").cast(pl.Float64),
    )
    np.testing.assert_array_equal(suda2(df, ["a", "b", "c"]).score, [0, 0, 1, 0, 0, 0, 2, 4, 2, 1, 0])
    df = toy_na().with_columns(pl.col("c").cast(pl.Float64).fill_null(float("nan")))
    np.testing.assert_array_equal(suda2(df, ["a", "b", "c"]).score, [0, 0, 1, 0, 0, 0, 2, 4, 2, 1, 0])


def test_two_keys_dummy():
    df = pl.DataFrame({"a": [1, 1, 2, 2, 3], "b": [1, 2, 1, 1, 1]})
    with pytest.warns(UserWarning, match="dummy"):
        r = suda2(df, ["a", "b"])
    # M = 3: size-1 MSU -> 2! = 2, size-2 MSU -> 1! = 1
    np.testing.assert_array_equal(r.score, [1, 2, 0, 0, 2])
    assert r.contributions.shape == (5, 2)
    np.testing.assert_allclose(r.contributions, [[1, 1], [0, 1], [0, 0], [0, 0], [1, 0]])
    with pytest.warns(UserWarning):
        r2 = suda2(df, ["a", "b"], original_scores=False)
    # alternative weights with M = 3: k=1 -> 3*1*2/6 = 1, k=2 -> 1*2*1/6 = 1/3
    np.testing.assert_allclose(r2.score, [1 / 3, 1, 0, 0, 1])


def test_one_key_dummy():
    with pytest.warns(UserWarning):
        r = suda2(pl.DataFrame({"a": [1, 1, 2, 3, 3]}), ["a"])
    np.testing.assert_array_equal(r.score, [0, 0, 2, 0, 0])
    assert r.attribute_contributions == {"a": 100.0}
    assert r.level_contributions == {"a": {1: 0.0, 2: 100.0, 3: 0.0}}


def test_dis_p_zero_gives_one():
    # groups of size 1 and 3 only: P = 0
    df = pl.DataFrame({"a": [1, 2, 3, 3, 3], "b": [1, 1, 1, 1, 1], "c": [5, 6, 7, 7, 7]})
    r = suda2(df, ["a", "b", "c"])
    np.testing.assert_array_equal(r.score, [4, 4, 0, 0, 0])  # {a} and {c}: 2 + 2
    np.testing.assert_array_equal(r.dis, [1, 1, 0, 0, 0])


def test_dis_formula_by_hand():
    df = pl.DataFrame({"a": [1, 2, 3, 3, 4, 4], "b": [1, 1, 1, 1, 2, 2], "c": [1, 1, 1, 1, 1, 1]})
    r = suda2(df, ["a", "b", "c"])
    # r0: {a} -> 2; r1: {a} -> 2. U = 2, P = 4 (groups (3,1,1) and (4,2,1))
    np.testing.assert_array_equal(r.score, [2, 2, 0, 0, 0, 0])
    f, P, M = 0.01, 4, 3  # U = 2 (the comment above)
    q = 1 + (8 - M) / 20
    A = 2 * 2.0**-q
    expect = 1 / (1 + P * (1 - f) / (f * 2.0**q * A))
    np.testing.assert_allclose(r.dis, [expect, expect, 0, 0, 0, 0], rtol=0, atol=1e-6)
    r5 = suda2(df, ["a", "b", "c"], dis_fraction=0.5)
    expect5 = 1 / (1 + P * 0.5 / (0.5 * 2.0**q * A))
    np.testing.assert_allclose(r5.dis[:2], [expect5, expect5], rtol=0, atol=1e-6)


def test_max_size_limits_search():
    pg = practice_guide()
    keys = list(pg.columns)
    r1 = suda2(pg, keys, max_size=1)
    np.testing.assert_array_equal(r1.score, [0, 0, 6, 0, 6, 0, 6, 6, 0, 0])
    np.testing.assert_array_equal(suda2(pg, keys, max_size=4).score, suda2(pg, keys).score)


def test_no_uniques_and_empty():
    df = pl.DataFrame({"a": [1, 1, 2, 2], "b": [3, 3, 4, 4], "c": [0, 0, 0, 0]})
    r = suda2(df, ["a", "b", "c"])
    np.testing.assert_array_equal(r.score, 0)
    np.testing.assert_array_equal(r.dis, 0)
    s = r.summary()
    assert s["n_score_gt0"] == 0 and s["sum_score"] == 0 and s["dis_table"]["== 0"] == 4
    r0 = suda2(df.head(0), ["a", "b", "c"])
    assert r0.score.shape == (0,) and r0.contributions.shape == (0, 3)


def test_bad_arguments():
    df = pl.DataFrame({"a": [1], "b": [2], "c": [3]})
    with pytest.raises(KeyError):
        suda2(df, ["a", "zz", "c"])
    with pytest.raises(ValueError):
        suda2(df, [])
    with pytest.raises(ValueError):
        suda2(df, ["a", "b", "c"], dis_fraction=1.5)


# ----------------------------------------------------------------------------------------
# brute-force oracle and properties


def brute_scores(rows: list[tuple], M_real: int, missing: int = -999, original: bool = True):
    """Per-record SUDA scores by the definition (record-wise, all subsets)."""
    m = len(rows[0])
    M = max(M_real, 3)
    w = (
        {k: math.factorial(M - k) for k in range(1, M + 1)}
        if original
        else {
            k: (2 ** (M - k) - 1) * math.factorial(k) * math.factorial(M - k) / math.factorial(M)
            for k in range(1, M + 1)
        }
    )
    out = []
    for i, r in enumerate(rows):

        def unique_on(S):
            return all(any(o[v] != r[v] for v in S) for j, o in enumerate(rows) if j != i)

        ok_vars = [v for v in range(m) if r[v] != missing]
        score = 0.0
        for k in range(1, m + 1):
            for S in combinations(ok_vars, k):
                if unique_on(S) and not any(unique_on(T) for T in combinations(S, k - 1) if T):
                    score += w[k]
        out.append(score)
    return np.array(out)


key_values = st.one_of(st.none(), st.integers(min_value=0, max_value=3))


@st.composite
def small_frames(draw):
    m = draw(st.integers(min_value=1, max_value=5))
    n = draw(st.integers(min_value=2, max_value=25))
    cols = {f"k{j}": draw(st.lists(key_values, min_size=n, max_size=n)) for j in range(m)}
    return pl.DataFrame(cols, schema={f"k{j}": pl.Int64 for j in range(m)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_frames(), st.booleans())
def test_matches_brute_force(df, original):
    keys = df.columns
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = suda2(df, keys, original_scores=original)
    rows = [tuple(-999 if v is None else v for v in row) for row in df.iter_rows()]
    np.testing.assert_allclose(r.score, brute_scores(rows, len(keys), original=original), rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(small_frames(), st.randoms(use_true_random=False))
def test_row_order_invariance_and_uniques(df, rnd):
    import warnings

    keys = df.columns
    perm = list(range(df.height))
    rnd.shuffle(perm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = suda2(df, keys)
        b = suda2(df[perm], keys)
    np.testing.assert_array_equal(b.score, a.score[perm])
    np.testing.assert_allclose(b.dis, a.dis[perm], rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.contributions, a.contributions[perm], rtol=0, atol=1e-12)
    # score > 0 only for sample uniques on the full key (NA = ordinary value)
    fk = df.select(pl.len().over(keys)).to_series().to_numpy()
    assert np.all(fk[a.score > 0] == 1)
    # DIS in [0, 1], positive exactly where the score is
    assert np.all((a.dis >= 0) & (a.dis <= 1))
    np.testing.assert_array_equal(a.dis > 0, a.score > 0)
    # contributions: each in [0, 1], the max per record is 1 only if some var is in all MSUs
    assert np.all((a.contributions >= 0) & (a.contributions <= 1 + 1e-12))
    assert np.all(a.contributions[a.score == 0] == 0)
