"""Sequential CART synthesizer: types kept, deterministic, conditional, safe, and useful."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from conftest import NIST, SD2011
from safemicro.errors import SafemicroError
from safemicro.examples.survey import generate_survey
from safemicro.io import read
from safemicro.io.dataset import Dataset
from safemicro.plan import Roles
from safemicro.synth.cart import CartSynthesizer, _balanced_donors
from safemicro.synth.schema import infer_schema

SD2011 = SD2011
MA2019 = NIST / "ma2019.csv"


@pytest.fixture(scope="module")
def sd2011() -> Dataset:
    return read(SD2011)


@pytest.fixture(scope="module")
def sd_synth(sd2011):
    t0 = time.perf_counter()
    model = CartSynthesizer().fit(sd2011, seed=7)
    syn = model.sample(seed=8)
    return model, syn, time.perf_counter() - t0


def test_keeps_columns_types_and_special_codes(sd2011, sd_synth):
    _, syn, _ = sd_synth  # fit + sample time: bench/bench_synth_sd2011.py
    assert syn.frame.schema == sd2011.frame.schema and syn.n == sd2011.n
    f = syn.frame
    # -8 ("not applicable") and missing values come back as themselves, in similar shares
    for col in ("income", "unempdur", "nociga", "wkabdur"):
        real, fake = (sd2011.frame[col] == -8).mean(), (f[col] == -8).mean()
        assert abs(real - fake) < 0.03, col
    assert abs(f["income"].null_count() - sd2011.frame["income"].null_count()) < 0.03 * sd2011.n
    # nobody unemployed for -8 months while also holding a regular value elsewhere: regular values are >= 0
    assert (f["income"].filter(f["income"] != -8) >= 0).all()


def test_quality_smoke(sd2011, sd_synth):
    """A broken synthesizer fails here: marginals, a deterministic relation, a conditional mean."""
    real, fake = sd2011.frame, sd_synth[1].frame
    for col, spec in infer_schema(sd2011).columns.items():
        if spec.kind != "categorical":
            continue
        p = real[col].cast(pl.String).fill_null("<NA>").value_counts(normalize=True, name="p")
        q = fake[col].cast(pl.String).fill_null("<NA>").value_counts(normalize=True, name="q")
        tvd = (
            0.5
            * p.join(q, on=col, how="full", coalesce=True)
            .fill_null(0)
            .select((pl.col("p") - pl.col("q")).abs().sum())
            .item()
        )
        assert tvd < 0.05, (col, tvd)
    for col in ("age", "height", "weight", "income"):
        r, s = real[col].filter(real[col] >= 0), fake[col].filter(fake[col] >= 0)
        assert abs(r.mean() - s.mean()) < 0.05 * r.std(), col
        assert abs(r.std() - s.std()) < 0.1 * r.std(), col
    # agegr is a function of age: the synthetic records keep it
    bounds = {
        "16-24": (16, 24),
        "25-34": (25, 34),
        "35-44": (35, 44),
        "45-59": (45, 59),
        "60-64": (60, 64),
        "65+": (65, 200),
    }
    ok = pl.any_horizontal((pl.col("agegr") == g) & pl.col("age").is_between(a, b) for g, (a, b) in bounds.items())
    assert fake.select(ok.mean()).item() > 0.97
    # men are taller: the dependence on an earlier column survives
    by_sex = fake.group_by("sex").agg(pl.col("height").mean()).sort("sex")["height"].to_list()
    assert by_sex[1] - by_sex[0] > 8  # FEMALE, MALE


def test_deterministic_with_seed(sd2011):
    small = sd2011.with_frame(sd2011.frame.head(1500))
    a = CartSynthesizer().fit(small, seed=3).sample(400, seed=4)
    b = CartSynthesizer().fit(small, seed=3).sample(400, seed=4)
    assert_frame_equal(a.frame, b.frame)
    c = CartSynthesizer().fit(small, seed=3).sample(400, seed=5)
    assert not a.frame.equals(c.frame)
    # without a sample seed, draws follow from the fit seed: reproducible, and successive draws differ
    m1, m2 = CartSynthesizer().fit(small, seed=3), CartSynthesizer().fit(small, seed=3)
    first = m1.sample(300)
    assert_frame_equal(first.frame, m2.sample(300).frame)
    assert not first.frame.equals(m1.sample(300).frame)


def test_input_not_mutated(sd2011):
    frame = sd2011.frame.head(800)
    ds = sd2011.with_frame(frame.clone())
    ds.codebook.meta("sex").value_labels = {"MALE": "Man"}
    notes = list(ds.codebook.notes)
    out = CartSynthesizer().fit(ds, seed=1).sample(100, seed=1)
    assert_frame_equal(ds.frame, frame)
    assert ds.codebook.notes == notes
    assert out.codebook.meta("sex").value_labels == {"MALE": "Man"}


def test_conditional_sampling_with_fixed_columns(sd2011):
    model = CartSynthesizer().fit(sd2011, fixed=["sex", "agegr"], seed=2)
    conditions = pl.DataFrame({"sex": ["MALE"] * 300 + ["FEMALE"] * 300, "agegr": ["16-24"] * 600})
    syn = model.sample(conditions=conditions, seed=3).frame
    assert_frame_equal(syn.select("sex", "agegr"), conditions)
    assert syn["age"].min() >= 16 and syn["age"].max() <= 24
    assert (syn["socprof"] == "RETIRED").mean() < 0.02  # young people, as the condition says
    male = syn.filter(pl.col("sex") == "MALE")["height"].mean()
    female = syn.filter(pl.col("sex") == "FEMALE")["height"].mean()
    assert male - female > 8
    # without conditions the fixed columns are resampled from the real records
    free = model.sample(200, seed=4).frame
    assert free.height == 200 and set(free["agegr"].drop_nulls()) <= set(sd2011.frame["agegr"].drop_nulls())


def test_conditions_errors(sd2011):
    model = CartSynthesizer().fit(sd2011.with_frame(sd2011.frame.head(500)), fixed=["sex"], seed=1)
    with pytest.raises(SafemicroError) as e:
        model.sample(conditions=pl.DataFrame({"region": ["Lodzkie"]}))
    assert e.value.column == "region"
    with pytest.raises(SafemicroError) as e:
        model.sample(conditions=pl.DataFrame({"sex": ["MALE", "OTHER"]}))
    assert e.value.column == "sex" and e.value.row == 1
    with pytest.raises(SafemicroError):
        model.sample(5, conditions=pl.DataFrame({"sex": ["MALE"]}))
    with pytest.raises(SafemicroError) as e:
        CartSynthesizer().fit(sd2011, fixed=["nope"])
    assert e.value.column == "nope"
    with pytest.raises(SafemicroError) as e:
        CartSynthesizer(visit_order=["sex", "nope"]).fit(sd2011)
    assert e.value.column == "nope"
    with pytest.raises(SafemicroError):
        CartSynthesizer(min_leaf=0)
    with pytest.raises(SafemicroError):
        CartSynthesizer().sample(10)
    with pytest.raises(SafemicroError):
        model.sample(-1)


def test_copying_safeguards(sd2011, sd_synth):
    """Rare numbers are never copied and extremes never isolate one real record; disabled, they are."""
    real, fake = sd2011.frame, sd_synth[1].frame
    counts = real["bmi"].drop_nulls().value_counts()
    rare = counts.filter(pl.col("count") < 5)["bmi"]
    assert fake["bmi"].is_in(rare.implode()).sum() == 0
    for col in ("age", "bmi", "income", "weight"):
        r = real[col].drop_nulls().sort()
        assert fake[col].max() <= r[-2] and fake[col].min() >= r[1], col
    copying = CartSynthesizer(min_leaf=5, smoothing=False, tail_k=1).fit(sd2011, seed=7).sample(seed=8).frame
    assert copying["bmi"].is_in(rare.implode()).sum() > 100


def test_survey_labels_ids_and_user_missing_codes():
    ds = generate_survey(n_households=200, seed=5)
    roles = Roles(direct_ids=["head_name", "phone"], household="hhid")
    model = CartSynthesizer().fit(ds, schema=infer_schema(ds, roles=roles), seed=1)
    syn = model.sample(seed=2)
    assert syn.frame.schema == ds.frame.schema
    assert syn.codebook.meta("legal_status").value_labels == ds.codebook.meta("legal_status").value_labels
    assert syn.codebook.meta("disability").missing_values == [98]
    assert not syn.frame["head_name"].is_in(ds.frame["head_name"].implode()).any()
    assert syn.frame["hhid"].n_unique() == syn.n
    assert (syn.frame["protection_incident"].is_in([98, 99])).sum() > 0


def test_nist_keeps_n_and_codes():
    ds = read(MA2019)
    syn = CartSynthesizer().fit(ds, seed=1).sample(2000, seed=2).frame
    assert syn.schema == ds.frame.schema
    assert set(syn["PUMA"]) <= set(ds.frame["PUMA"])
    assert set(syn["INDP"]) <= set(ds.frame["INDP"])
    n_share = (syn["PINCP"] == "N").mean()
    assert abs(n_share - (ds.frame["PINCP"] == "N").mean()) < 0.03
    # children (N income) keep N marital status: the skip pattern survives
    kids = syn.filter(pl.col("PINCP") == "N")
    assert (kids["MSP"] == "N").mean() > 0.95
    income = syn["PINCP"].filter(syn["PINCP"] != "N").cast(pl.Float64)
    assert income.is_not_null().all() and (income == income.round(0)).all()


def test_bad_inputs_give_results_or_clear_errors():
    rng = np.random.default_rng(0)
    n = 12_000
    frame = pl.DataFrame(
        {
            "group": rng.choice(["a", "b", "c"], n),
            "x": rng.normal(size=n),
            "empty": pl.Series([None] * n, dtype=pl.Float64),
            "lonely": ["solo"] + ["many"] * (n - 1),
            # over 10 000 codes: 25 common ones (80 records each), the rest held by one record
            "code": pl.Series([f"c{i % 50}" if i % 6 == 0 else f"r{i}" for i in range(n)][:n]),
            "day": pl.Series(dt.date(2021, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 700, n)),
        }
    )
    model = CartSynthesizer().fit(Dataset(frame), seed=1)
    syn = model.sample(3000, seed=2)
    f = syn.frame
    assert f.schema == frame.schema and f.height == 3000
    assert f["empty"].null_count() == 3000
    released = f["code"].drop_nulls()
    assert released.len() > 0.1 * f.height and released.str.starts_with("c").all()  # rare codes never copied
    assert f["code"].null_count() > 0.5 * f.height
    assert f["day"].min() >= frame["day"].min() and f["day"].max() <= frame["day"].max()
    assert frame["code"].n_unique() > 10_000
    assert any("code" in note and "never copied" in note for note in model.notes)
    assert any("empty" in note for note in syn.codebook.notes)
    with pytest.raises(SafemicroError):
        CartSynthesizer().fit(Dataset(frame.head(0)))
    with pytest.raises(SafemicroError) as e:
        CartSynthesizer().fit(Dataset(pl.DataFrame({"x": [[1], [2]]})))
    assert e.value.column == "x"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=6), st.integers(0, 60), st.integers(0, 2**32 - 1))
def test_balanced_donors_share_each_leaf_evenly(counts, m, seed):
    counts = np.array(counts)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rng = np.random.default_rng(seed)
    leaf = rng.integers(len(counts), size=m)
    pick = _balanced_donors(leaf, starts, counts, rng)
    for g in range(len(counts)):
        mine = pick[leaf == g]
        assert ((mine >= starts[g]) & (mine < starts[g] + counts[g])).all()
        used = np.bincount(mine - starts[g], minlength=counts[g])
        assert used.max() - used.min() <= 1  # every donor serves floor or ceil of records/donors
