"""l-diversity: parity with sdcMicro 5.8.1 reference outputs, hand-checked toys, properties."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safemicro.risk.ldiversity import ldiversity

DATA = Path(__file__).resolve().parent / "data" / "sdcmicro" / "testdata.csv"
REF = Path(__file__).resolve().parent / "data" / "sdcmicro_reference"
KV7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]
KV5 = ["urbrur", "roof", "walls", "water", "sex"]
KINDS = {"distinct": "Distinct", "entropy": "Entropy", "recursive": "Recursive"}


@pytest.fixture(scope="module")
def testdata() -> pl.DataFrame:
    return pl.read_csv(DATA)


@pytest.fixture(scope="module")
def ref_json() -> dict:
    return json.loads((REF / "testdata_reference.json").read_text())["ldiversity"]


CASES = [
    (KV5, ["electcon", "relat"], "testdata_ldiversity_5keys_electcon_relat.csv"),
    (KV7, ["hhcivil"], "testdata_ldiversity_7keys_hhcivil.csv"),
]


@pytest.mark.parametrize("keys,sens,fname", CASES)
def test_per_record_parity(testdata, keys, sens, fname):
    ref = pl.read_csv(REF / fname, infer_schema_length=None)
    res = ldiversity(testdata, keys, sens)
    pr = res.per_record
    assert pr.height == ref.height
    assert pr.columns == [f"ldiv_{s}_{k}" for s in sens for k in KINDS]
    for s in sens:
        np.testing.assert_array_equal(pr[f"ldiv_{s}_distinct"].to_numpy(), ref[f"{s}_Distinct_Ldiversity"].to_numpy())
        np.testing.assert_array_equal(pr[f"ldiv_{s}_recursive"].to_numpy(), ref[f"{s}_Recursive_Ldiversity"].to_numpy())
        np.testing.assert_allclose(
            pr[f"ldiv_{s}_entropy"].to_numpy(),
            ref[f"{s}_Entropy_Ldiversity"].to_numpy(),
            rtol=1e-14,
            atol=0,
        )
    # sdcMicro's Multi* columns are constant 0 in 5.8.1 (not produced here)
    assert (ref["MultiEntropy_Ldiversity"] == 0).all()


@pytest.mark.parametrize(
    "case,keys,sens",
    [
        ("kv5_electcon", KV5, ["electcon"]),
        ("kv5_electcon_relat", KV5, ["electcon", "relat"]),
        ("kv7_hhcivil", KV7, ["hhcivil"]),
    ],
)
def test_summary_matches_json(testdata, ref_json, case, keys, sens):
    summ = ldiversity(testdata, keys, sens).summary()
    ref = ref_json[case]["summary"]
    assert set(summ) == set(sens)
    for s in sens:
        for kind, rkind in KINDS.items():
            r = ref[f"{s}_{rkind}_Ldiversity"]
            got = summ[s][kind]
            assert got["min"] == pytest.approx(r["min"], abs=1e-12)
            assert got["mean"] == pytest.approx(r["mean"], abs=1e-12)
            assert got["n_eq1"] == r["n_eq1"]
            assert got["n_lt2"] == r["n_lt2"]


def test_string_columns_same(testdata):
    ds = testdata.with_columns([pl.col(c).cast(pl.String) for c in KV5 + ["relat"]])
    a = ldiversity(ds, KV5, ["relat"]).per_record
    b = ldiversity(testdata, KV5, ["relat"]).per_record
    for c in a.columns:
        np.testing.assert_allclose(a[c].to_numpy(), b[c].to_numpy(), rtol=1e-14)


# ----------------------------------------------------------------------------------------
# hand-checked toys


def test_toy_by_hand():
    df = pl.DataFrame(
        {
            "k1": [1, 1, 1, 1, 1, 1, 2, 2, None, None, None],
            "k2": ["a", "a", "a", "a", "a", "a", "b", "b", "c", "c", "c"],
            "s": [1, 1, 1, 2, 2, 3, 5, 5, 7, None, None],
        }
    )
    pr = ldiversity(df, ["k1", "k2"], ["s"]).per_record
    # group A (6 recs): counts 3,2,1 -> distinct 3; entropy exp(-(.5 ln .5 + 1/3 ln 1/3 + 1/6 ln 1/6));
    #   recursive: r1=3 < 2*(2+1)=6 (l=2), 3 < 2*1 false -> 2
    # group B (2 recs): one value -> 1, 1, 1
    # group C (NA key, equal to NA): 7, NA, NA -> three categories of 1: distinct 3, entropy 3,
    #   recursive: 1 < 2*1 -> 3
    hA = math.exp(-(0.5 * math.log(0.5) + (1 / 3) * math.log(1 / 3) + (1 / 6) * math.log(1 / 6)))
    np.testing.assert_array_equal(pr["ldiv_s_distinct"].to_numpy(), [3] * 6 + [1, 1] + [3] * 3)
    np.testing.assert_allclose(pr["ldiv_s_entropy"].to_numpy(), [hA] * 6 + [1, 1] + [3] * 3, rtol=1e-14)
    np.testing.assert_array_equal(pr["ldiv_s_recursive"].to_numpy(), [2] * 6 + [1, 1] + [3] * 3)
    summ = ldiversity(df, ["k1", "k2"], "s").summary()["s"]
    assert summ["distinct"] == {"min": 1.0, "mean": pytest.approx(29 / 11), "n_eq1": 2, "n_lt2": 2}
    assert summ["entropy"]["n_lt2"] == 2


def test_recursive_c_parameter():
    df = pl.DataFrame({"k": [1] * 7, "s": [1, 1, 1, 1, 2, 2, 3]})
    # counts 4,2,1: c=2: 4 < 2*3 (l=2), 4 < 2*1 no -> 2; c=5: 4 < 5*1 -> 3; c=1.2: 4 < 3.6 no -> 1
    for c, expect in [(2.0, 2), (5.0, 3), (1.2, 1), (4.0, 2), (4.01, 3)]:
        pr = ldiversity(df, ["k"], ["s"], c=c).per_record
        assert pr["ldiv_s_recursive"].to_list() == [expect] * 7, c


def test_minus999_is_ordinary_and_nan_is_na():
    df = pl.DataFrame({"k": [1, 1, 1, 2, 2], "s": [-999.0, -999.0, 4.0, float("nan"), float("nan")]})
    pr = ldiversity(df, ["k"], ["s"]).per_record
    assert pr["ldiv_s_distinct"].to_list() == [2, 2, 2, 2, 2]
    assert pr["ldiv_s_recursive"].to_list() == [1, 1, 1, 2, 2]  # 2 < 2*1 false; 1 < 2*1 true


def test_arguments():
    df = pl.DataFrame({"k": [1], "s": [2]})
    with pytest.raises(KeyError):
        ldiversity(df, ["k"], ["zz"])
    with pytest.raises(ValueError):
        ldiversity(df, ["k"], ["k"])
    empty = ldiversity(df.head(0), ["k"], ["s"]).per_record
    assert empty.height == 0 and empty.columns == ["ldiv_s_distinct", "ldiv_s_entropy", "ldiv_s_recursive"]


# ----------------------------------------------------------------------------------------
# brute force and properties


def brute(rows_k, rows_s, c=2.0):
    out = []
    for i, key in enumerate(rows_k):
        vals = [rows_s[j] for j, kk in enumerate(rows_k) if kk == key]
        counts: dict = {}
        na = 0
        for v in vals:
            if v is None:
                na += 1
            else:
                counts[v] = counts.get(v, 0) + 1
        cs = sorted(list(counts.values()) + [1] * na, reverse=True)
        T = sum(cs)
        ent = math.exp(-sum(x / T * math.log(x / T) for x in cs))
        rec = max([l for l in range(1, len(cs) + 1) if cs[0] < np.float32(c) * np.float32(sum(cs[l - 1 :]))], default=1)
        out.append((len(cs), ent, rec))
    return out


vals = st.one_of(st.none(), st.integers(min_value=0, max_value=3))


@st.composite
def frames(draw):
    n = draw(st.integers(min_value=1, max_value=30))
    m = draw(st.integers(min_value=1, max_value=3))
    cols = {f"k{j}": draw(st.lists(vals, min_size=n, max_size=n)) for j in range(m)}
    cols["s"] = draw(st.lists(vals, min_size=n, max_size=n))
    return pl.DataFrame(cols, schema={c: pl.Int64 for c in cols})


@settings(max_examples=150, deadline=None)
@given(frames(), st.sampled_from([2.0, 1.5, 3.0]))
def test_matches_brute_force(df, c):
    keys = [x for x in df.columns if x != "s"]
    pr = ldiversity(df, keys, ["s"], c=c).per_record
    exp = brute(list(df.select(keys).iter_rows()), df["s"].to_list(), c)
    np.testing.assert_array_equal(pr["ldiv_s_distinct"].to_numpy(), [e[0] for e in exp])
    np.testing.assert_allclose(pr["ldiv_s_entropy"].to_numpy(), [e[1] for e in exp], rtol=1e-12)
    np.testing.assert_array_equal(pr["ldiv_s_recursive"].to_numpy(), [e[2] for e in exp])


@settings(max_examples=100, deadline=None)
@given(frames(), st.randoms(use_true_random=False))
def test_row_order_invariance(df, rnd):
    keys = [x for x in df.columns if x != "s"]
    perm = list(range(df.height))
    rnd.shuffle(perm)
    a = ldiversity(df, keys, ["s"]).per_record
    b = ldiversity(df[perm], keys, ["s"]).per_record
    for col in a.columns:
        np.testing.assert_allclose(b[col].to_numpy(), a[col].to_numpy()[perm], rtol=1e-12)
    # bounds: 1 <= entropy <= distinct, recursive <= distinct
    d = a["ldiv_s_distinct"].to_numpy()
    assert np.all(a["ldiv_s_entropy"].to_numpy() <= d + 1e-9)
    assert np.all(a["ldiv_s_entropy"].to_numpy() >= 1 - 1e-12)
    assert np.all(a["ldiv_s_recursive"].to_numpy() <= d)
