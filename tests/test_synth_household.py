"""Household-relational synthesis: household sizes, one head per household, household
variables constant within households, head-spouse and head-child age gaps, two-file input,
the edit rules under a model that learnt nothing, seeds, no mutation, bad input."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from conftest import SDC_DATA
from safemicro.errors import SafemicroError
from safemicro.examples.survey import generate_survey
from safemicro.io.dataset import Dataset
from safemicro.synth.household import HouseholdSynthesizer

HH_SURVEY = [
    "camp",
    "stratum",
    "cluster",
    "origin",
    "arrival_year",
    "hh_size",
    "livelihood",
    "income",
    "assistance",
    "weight",
]
PERSON_SURVEY = [
    "line_no",
    "relationship",
    "sex",
    "age",
    "marital",
    "education",
    "disability",
    "legal_status",
    "protection_incident",
]
HH_TESTDATA = ["urbrur", "roof", "walls", "water", "electcon", "sampling_weight", "household_weights"]


# -- measures ------------------------------------------------------------------------------


def size_tvd(real: pl.DataFrame, syn: pl.DataFrame, hid: str) -> float:
    a = real.group_by(hid).len()["len"].value_counts(normalize=True)
    b = syn.group_by(hid).len()["len"].value_counts(normalize=True)
    both = a.join(b, on="len", how="full", coalesce=True).fill_null(0.0)
    return 0.5 * float((both["proportion"] - both["proportion_right"]).abs().sum())


def heads_per_household(frame: pl.DataFrame, hid: str, rel: str, code=1) -> pl.Series:
    return frame.group_by(hid).agg((pl.col(rel) == code).sum().alias("n"))["n"]


def age_gaps(frame: pl.DataFrame, hid: str, rel: str, code) -> np.ndarray:
    """Member age minus head age, for members with relationship ``code``."""
    head = frame.filter(pl.col(rel) == 1).select(hid, pl.col("age").alias("head_age"))
    m = frame.join(head, on=hid).filter(pl.col(rel) == code)
    return (m["age"] - m["head_age"]).drop_nulls().to_numpy().astype(float)


def assert_constant_within(frame: pl.DataFrame, hid: str, columns: list[str]) -> None:
    spread = frame.group_by(hid).agg(pl.col(c).n_unique() for c in columns)
    for c in columns:
        assert spread[c].max() == 1, c


def frozen(ds: Dataset) -> tuple:
    return ds.frame.clone(), copy.deepcopy(ds.codebook)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def survey() -> Dataset:
    return generate_survey(n_households=600)


@pytest.fixture(scope="module")
def survey_fit(survey):
    before = frozen(survey)
    synth = HouseholdSynthesizer("hhid").fit(survey, seed=11)  # relationship, line_no by name
    out = synth.sample(seed=12)
    return synth, out, before


@pytest.fixture(scope="module")
def testdata_ds() -> Dataset:
    return Dataset(pl.read_csv(SDC_DATA / "testdata.csv"))


@pytest.fixture(scope="module")
def testdata_fit(testdata_ds):
    synth = HouseholdSynthesizer("ori_hid", relationship="relat").fit(testdata_ds, seed=5)
    return synth, synth.sample(seed=6)


# -- the example survey ------------------------------------------------------------------


def test_survey_keeps_columns_types_labels_and_new_ids(survey, survey_fit):
    _, out, _ = survey_fit
    f = out.frame
    assert f.schema == survey.frame.schema
    assert sorted(f["hhid"].unique().to_list()) == list(range(1, 601))
    assert f["hhid"].is_sorted()
    lines = f.group_by("hhid").agg((pl.col("line_no") == pl.int_range(1, pl.len() + 1)).all().alias("ok"))
    assert lines["ok"].all()
    assert out.codebook.meta("relationship").value_labels == survey.codebook.meta("relationship").value_labels
    assert out.codebook.meta("legal_status").missing_values == [98, 99]


def test_survey_household_structure(survey, survey_fit):
    synth, out, _ = survey_fit
    f, real = out.frame, survey.frame
    assert size_tvd(real, f, "hhid") < 0.1
    # exactly one head in every household, as in the data, and it is member 1
    assert (heads_per_household(real, "hhid", "relationship") == 1).all()
    assert (heads_per_household(f, "hhid", "relationship") == 1).all()
    assert (f.filter(pl.col("line_no") == 1)["relationship"] == 1).all()
    # household variables identical within a household; hh_size is the member count
    assert_constant_within(f, "hhid", HH_SURVEY + ["head_name", "phone", "gps_lat", "gps_lon"])
    sizes = f.group_by("hhid").agg(pl.len().alias("n"), pl.col("hh_size").first())
    assert (sizes["n"] == sizes["hh_size"]).all()
    assert any("hh_size" in n and "computed" in n for n in synth.notes)
    assert "relationship to the head: 'relationship' (by its name)" in synth.notes
    assert "members ordered by 'line_no' (by its name)" in synth.notes


def test_survey_age_gaps(survey, survey_fit):
    _, out, _ = survey_fit
    for code, ks_max, mean_tol in ((2, 0.15, 1.5), (3, 0.1, 2.0)):  # spouse, son/daughter
        real = age_gaps(survey.frame, "hhid", "relationship", code)
        syn = age_gaps(out.frame, "hhid", "relationship", code)
        assert len(syn) > 0.7 * len(real)
        assert ks_2samp(real, syn).statistic < ks_max
        assert abs(real.mean() - syn.mean()) < mean_tol
        # the learned edit rule: never outside the gaps seen in the data
        assert real.min() <= syn.min() and syn.max() <= real.max()
    spouses = out.frame.join(
        out.frame.filter(pl.col("relationship") == 1).select("hhid", pl.col("sex").alias("head_sex")), on="hhid"
    ).filter(pl.col("relationship") == 2)
    assert (spouses["sex"] != spouses["head_sex"]).mean() > 0.97  # always opposite sex in the data


def test_input_never_mutated(survey, survey_fit):
    _, _, (frame, codebook) = survey_fit
    assert survey.frame.equals(frame)
    assert survey.codebook == codebook


def test_same_seed_same_output_other_seed_differs(survey, survey_fit):
    synth, out, _ = survey_fit
    again = HouseholdSynthesizer("hhid", person_order="line_no", relationship="relationship").fit(survey, seed=11)
    assert again.sample(seed=12).frame.equals(out.frame)
    assert synth.sample(seed=12).frame.equals(out.frame)
    assert not synth.sample(seed=13).frame.equals(out.frame)


def test_number_of_households(survey_fit):
    synth, _, _ = survey_fit
    f = synth.sample(40, seed=1).frame
    assert f["hhid"].n_unique() == 40 and f["hhid"].max() == 40
    assert (heads_per_household(f, "hhid", "relationship") == 1).all()


# -- sdcMicro testdata (ori_hid) ---------------------------------------------------------


def test_testdata_household_structure(testdata_ds, testdata_fit):
    synth, out = testdata_fit
    real, f = testdata_ds.frame, out.frame
    assert f.schema == real.schema and f.columns == real.columns
    assert any(n.startswith("household-level variables") and str(HH_TESTDATA) in n for n in synth.notes)
    assert size_tvd(real, f, "ori_hid") < 0.1
    assert (heads_per_household(f, "ori_hid", "relat") == 1).all()
    assert_constant_within(f, "ori_hid", HH_TESTDATA)
    # household_weights is 100 / size in the data: computed from the synthetic size
    w = f.group_by("ori_hid").agg(pl.len().alias("n"), pl.col("household_weights").first())
    assert np.allclose(w["household_weights"] * w["n"], 100.0)
    for code, ks_max in ((2, 0.15), (3, 0.1)):
        real_gap = age_gaps(real, "ori_hid", "relat", code)
        syn_gap = age_gaps(f, "ori_hid", "relat", code)
        assert ks_2samp(real_gap, syn_gap).statistic < ks_max
        assert abs(real_gap.mean() - syn_gap.mean()) < 2.0


def test_households_without_or_with_two_heads(testdata_ds):
    """The share of households with exactly one head is preserved, not forced to 1."""
    f = testdata_ds.frame.with_row_index("row")
    hid = f["ori_hid"]
    headless = hid.is_in(list(range(1, 1001, 10))) & (f["relat"] == 1)  # 100 households
    spouse2 = hid.is_in(list(range(5, 1001, 25))) & (f["relat"] == 2)  # up to 40: two heads
    f = f.with_columns(relat=pl.when(headless).then(7).when(spouse2).then(1).otherwise(pl.col("relat"))).drop("row")
    synth = HouseholdSynthesizer("ori_hid", relationship="relat", head_code=1).fit(Dataset(f), seed=2)
    out = synth.sample(seed=3).frame
    real_heads, syn_heads = heads_per_household(f, "ori_hid", "relat"), heads_per_household(out, "ori_hid", "relat")
    for k in (0, 1, 2):
        assert abs(float((real_heads == k).mean()) - float((syn_heads == k).mean())) < 0.04, k
    # heads come first: members 1..heads are the heads
    pos = out.with_columns(pos=pl.int_range(1, pl.len() + 1).over("ori_hid"))
    per = pos.group_by("ori_hid").agg((pl.col("relat") == 1).sum().alias("h"), pl.col("relat"), pl.col("pos"))
    for heads, rel in zip(per["h"], per["relat"]):
        assert all((r == 1) == (i < heads) for i, r in enumerate(rel))


# -- two files -----------------------------------------------------------------------------


def test_household_file_and_person_file(survey):
    households = survey.with_frame(survey.frame.select(["hhid"] + HH_SURVEY).unique("hhid", maintain_order=True))
    extra = households.frame.head(30).with_columns(pl.col("hhid") + 100000, hh_size=pl.lit(0, dtype=pl.Int32))
    households = households.with_frame(pl.concat([households.frame, extra]))  # 30 without members
    persons = survey.with_frame(survey.frame.select(["hhid"] + PERSON_SURVEY))
    synth = HouseholdSynthesizer("hhid", person_order="line_no", relationship="relationship")
    synth.fit(persons, households=households, seed=4)
    hh, pp = synth.sample_tables(seed=5)
    assert hh.frame.schema == households.frame.schema and pp.frame.schema == persons.frame.schema
    assert hh.frame["hhid"].to_list() == list(range(1, 631))
    counts = pp.frame.group_by("hhid").len()
    joined = hh.frame.join(counts, on="hhid", how="left").with_columns(pl.col("len").fill_null(0))
    assert (joined["len"] == joined["hh_size"]).all()
    assert 10 <= int((hh.frame["hh_size"] == 0).sum()) <= 60
    assert (heads_per_household(pp.frame, "hhid", "relationship") == 1).all()
    flat = synth.sample(seed=5)
    assert flat.columns == persons.columns + HH_SURVEY
    assert flat.frame.equals(pp.frame.join(hh.frame, on="hhid", how="left", maintain_order="left"))
    assert flat.codebook.meta("camp").value_labels == survey.codebook.meta("camp").value_labels


# -- rules hold whatever the model draws -------------------------------------------------


class Scrambled:
    """A model that learnt nothing: every drawn column from its marginal, relationship
    uniform over the codes 1..8 (so heads land anywhere)."""

    def fit(self, ds, *, schema=None, fixed=(), seed=None):
        self.frame, self.fixed, self.ds = ds.frame, list(fixed), ds
        return self

    def sample(self, n=None, *, conditions=None, seed=None):
        rng = np.random.default_rng(seed)
        m = n if conditions is None else conditions.height
        drawn = [
            self.frame[c].gather(rng.integers(0, self.frame.height, m))
            for c in self.frame.columns
            if c not in self.fixed
        ]
        out = pl.DataFrame(drawn)
        if "relationship" in out.columns:
            out = out.with_columns(pl.Series("relationship", rng.integers(1, 9, m), dtype=pl.Int32))
        if conditions is not None:
            out = pl.concat([conditions.select(self.fixed), out], how="horizontal")
        return self.ds.with_frame(out.select(self.frame.columns))


def test_rules_hold_with_a_model_that_learnt_nothing(survey):
    synth = HouseholdSynthesizer(
        "hhid", person_order="line_no", relationship="relationship", synthesizer=Scrambled, max_tries=3
    ).fit(survey, seed=1)
    f = synth.sample(seed=2).frame
    assert (heads_per_household(f, "hhid", "relationship") == 1).all()
    assert (f.filter(pl.col("line_no") == 1)["relationship"] == 1).all()
    assert_constant_within(f, "hhid", HH_SURVEY)
    for code in range(2, 9):
        real, syn = age_gaps(survey.frame, "hhid", "relationship", code), age_gaps(f, "hhid", "relationship", code)
        assert real.min() <= syn.min() and syn.max() <= real.max(), code
    # the scrambled model breaks the rules often: redrawn, and imposed after 3 tries
    assert synth.checks["redrawn"] > 1000
    assert synth.checks["relationship_imposed"] > 0 and synth.checks["age_imposed"] > 0


# -- identifiers of other types ----------------------------------------------------------


def test_string_ids_person_ids_and_explicit_household_level(survey):
    f = survey.frame.select(["hhid"] + HH_SURVEY + PERSON_SURVEY).head(1500)
    f = f.with_columns(pl.format("H{}", "hhid").alias("hhid"), pl.format("P{}", pl.int_range(pl.len())).alias("pid"))
    ds = survey.with_frame(f)
    synth = HouseholdSynthesizer(
        "hhid",
        household_level=["camp", "origin", "hh_size", "weight"],
        person_order="line_no",
        relationship="relationship",
    )
    out = synth.fit(ds, seed=3).sample(seed=4).frame
    assert out.schema == ds.frame.schema
    assert out["hhid"].unique().sort().to_list() == sorted(str(i) for i in range(1, f["hhid"].n_unique() + 1))
    assert out["pid"].n_unique() == out.height and not out["pid"].is_in(f["pid"].implode()).any()
    assert_constant_within(out, "hhid", ["camp", "origin", "hh_size", "weight"])
    assert out.group_by("hhid").agg(pl.col("income").n_unique())["income"].max() > 1  # person-level now


# -- bad input -----------------------------------------------------------------------------


def _small() -> Dataset:
    return Dataset(
        pl.DataFrame(
            {
                "hid": [1, 1, 2, 2, 2, 3],
                "region": [1, 1, 2, 2, 2, 1],
                "rel": [1, 2, 1, 3, 3, 1],
                "age": [40, 38, 50, 20, 18, 30],
            }
        )
    )


@pytest.mark.parametrize(
    "make, fit_kwargs, message, column, row",
    [
        (lambda: HouseholdSynthesizer("hh"), {}, "no household id column", "hh", None),
        (lambda: HouseholdSynthesizer("hid", relationship="relation"), {}, "no such column", "relation", None),
        (lambda: HouseholdSynthesizer("hid", household_level=["age"]), {}, "differs within household 1", "age", 1),
        (lambda: HouseholdSynthesizer("hid", household_level=["zone"]), {}, "not have", "zone", None),
        (
            lambda: HouseholdSynthesizer("hid", relationship="rel", head_code=9),
            {},
            "no member has the head code 9",
            "rel",
            None,
        ),
        (lambda: HouseholdSynthesizer("hid", relationship="rel", head_code="x"), {}, "not a number", "rel", None),
        (
            lambda: HouseholdSynthesizer("hid", age="region", household_level=["region"]),
            {},
            "person-level",
            "region",
            None,
        ),
    ],
)
def test_bad_arguments_name_the_column(make, fit_kwargs, message, column, row):
    with pytest.raises(SafemicroError, match=message) as err:
        make().fit(_small(), **fit_kwargs)
    assert err.value.column == column and err.value.row == row


def test_bad_household_ids():
    ds = _small()
    missing = ds.with_frame(
        ds.frame.with_columns(pl.when(pl.int_range(pl.len()) == 4).then(None).otherwise(pl.col("hid")).alias("hid"))
    )
    with pytest.raises(SafemicroError, match="missing household id") as err:
        HouseholdSynthesizer("hid").fit(missing)
    assert err.value.row == 4
    households = Dataset(pl.DataFrame({"hid": [1, 2, 2], "region": [1, 2, 2]}))
    persons = Dataset(ds.frame.drop("region"))
    with pytest.raises(SafemicroError, match="twice in the household file") as err:
        HouseholdSynthesizer("hid").fit(persons, households=households)
    assert err.value.row == 2
    with pytest.raises(SafemicroError, match="not in the household file") as err:
        HouseholdSynthesizer("hid").fit(persons, households=households.with_frame(households.frame.head(2)))
    assert err.value.row == 5
    with pytest.raises(SafemicroError, match="both the household and the person file") as err:
        HouseholdSynthesizer("hid").fit(ds, households=Dataset(pl.DataFrame({"hid": [1, 2, 3], "region": [1, 2, 1]})))
    assert err.value.column == "region"
    with pytest.raises(SafemicroError, match="reserved"):
        HouseholdSynthesizer("hid").fit(Dataset(ds.frame.with_columns(pl.lit(1).alias("__hh_size"))))


def test_sample_before_fit_and_bad_counts(survey_fit):
    with pytest.raises(SafemicroError, match="before fit"):
        HouseholdSynthesizer("hid").sample()
    synth, _, _ = survey_fit
    for bad in (0, -3, 2.5, True):
        with pytest.raises(SafemicroError, match="n_households"):
            synth.sample(bad)


# -- any roster ------------------------------------------------------------------------------


@st.composite
def rosters(draw):
    """A person file of 8..40 households with 1..6 members, head first."""
    n = draw(st.integers(8, 40))
    sizes = draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    hid = np.repeat(np.arange(1, n + 1) * 7, sizes)
    first = np.r_[True, hid[1:] != hid[:-1]]
    rel = np.where(first, 1, rng.integers(2, 4, len(hid)))
    head_age = np.repeat(rng.integers(20, 70, n), sizes)
    age = np.where(first, head_age, np.clip(head_age - rng.integers(-5, 40, len(hid)), 0, 99))
    return Dataset(
        pl.DataFrame(
            {
                "hid": hid,
                "region": np.repeat(rng.integers(1, 4, n), sizes),
                "rel": rel,
                "sex": rng.integers(1, 3, len(hid)),
                "age": age,
            }
        )
    )


@settings(max_examples=15, deadline=None)
@given(rosters(), st.integers(1, 30))
def test_any_roster_gives_whole_households(ds, n):
    synth = HouseholdSynthesizer("hid", relationship="rel").fit(ds, seed=0)
    f = synth.sample(n, seed=1).frame
    assert f.schema == ds.frame.schema
    assert f["hid"].unique().sort().to_list() == list(range(1, n + 1))
    assert_constant_within(f, "hid", ["region"])
    assert (heads_per_household(f, "hid", "rel") == 1).all()
    real_sizes = set(ds.frame.group_by("hid").len()["len"].to_list())
    assert set(f.group_by("hid").len()["len"].to_list()) <= real_sizes
