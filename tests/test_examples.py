"""The example forced-displacement survey: consistency, realism, determinism, file round trip."""

from __future__ import annotations

import io
import warnings

import numpy as np
import polars as pl
import pytest

from safemicro.examples import SURVEY_PLAN, generate_survey, write_example
from safemicro.examples.survey import SITES
from safemicro.plan import load_plan

COLUMNS = [
    "hhid",
    "head_name",
    "phone",
    "gps_lat",
    "gps_lon",
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
HOUSEHOLD_LEVEL = [
    "head_name",
    "phone",
    "gps_lat",
    "gps_lon",
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


@pytest.fixture(scope="module")
def ds():
    return generate_survey()


@pytest.fixture(scope="module")
def f(ds):
    return ds.frame


def ipc_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_ipc(buf)
    return buf.getvalue()


def test_shape_and_columns(f):
    assert f.columns == COLUMNS
    assert f["hhid"].n_unique() == 2000
    assert 8000 <= f.height <= 12000
    assert f["camp"].n_unique() == 8


def test_deterministic():
    a = generate_survey(n_households=300, seed=5).frame
    b = generate_survey(n_households=300, seed=5).frame
    c = generate_survey(n_households=300, seed=6).frame
    assert a.equals(b)
    assert ipc_bytes(a) == ipc_bytes(b)
    assert ipc_bytes(a) != ipc_bytes(c)


def test_household_size_is_the_member_count(f):
    per = f.group_by("hhid").agg(pl.len().alias("n"), pl.col("hh_size").first(), pl.col("line_no").sort())
    assert (per["n"] == per["hh_size"]).all()
    for lines, n in zip(per["line_no"].to_list()[:200], per["n"].to_list()[:200]):
        assert lines == list(range(1, n + 1))
    assert f["hh_size"].max() <= 18


def test_household_variables_are_constant_within_households(f):
    per = f.group_by("hhid").agg([pl.col(c).n_unique().alias(c) for c in HOUSEHOLD_LEVEL])
    for c in HOUSEHOLD_LEVEL:
        assert per[c].max() == 1, c
    # one weight per household, positive, constant within a cluster (design weight x block factor)
    assert (f["weight"] > 0).all()
    assert f.group_by("cluster").agg(pl.col("weight").n_unique())["weight"].max() == 1


def test_design(f):
    assert (f["stratum"] == f["camp"]).all()
    assert (f["cluster"] // 100 == f["camp"]).all()
    # weights vary by stratum; the weighted number of households is near the sites' population
    hh = f.unique("hhid")
    by_camp = hh.group_by("camp").agg(pl.col("weight").mean()).sort("camp")
    assert by_camp["weight"].max() / by_camp["weight"].min() > 1.5
    total = sum(v[4] for v in SITES.values())
    assert abs(hh["weight"].sum() / total - 1) < 0.15


def test_one_adult_head_per_household_and_plausible_ages(f):
    heads = f.filter(pl.col("relationship") == 1)
    assert heads.height == 2000 and heads["hhid"].n_unique() == 2000
    assert (heads["line_no"] == 1).all()
    assert heads["age"].min() >= 18
    head_age = heads.select("hhid", pl.col("age").alias("head_age"))
    g = f.join(head_age, on="hhid")
    children = g.filter(pl.col("relationship") == 3)
    assert (children["age"] <= children["head_age"] - 15).all()
    grand = g.filter(pl.col("relationship") == 4)
    assert (grand["age"] <= grand["head_age"] - 30).all()
    parents = g.filter(pl.col("relationship") == 5)
    assert (parents["age"] >= parents["head_age"] + 15).all()
    spouses = f.filter(pl.col("relationship") == 2)
    assert spouses["age"].min() >= 15
    assert spouses["hhid"].n_unique() == spouses.height  # at most one spouse
    # spouses are of the other sex than the head
    sp = spouses.join(heads.select("hhid", pl.col("sex").alias("head_sex")), on="hhid")
    assert (sp["sex"] != sp["head_sex"]).all()
    assert f["age"].min() >= 0 and f["age"].max() <= 95
    # children are many in a displaced population
    assert 0.35 < (f["age"] < 18).mean() < 0.65


def test_skip_patterns_and_missing_codes(ds, f):
    assert (f["marital"].is_null() == (f["age"] < 12)).all()
    assert (f["protection_incident"].is_null() == (f["age"] < 12)).all()
    assert (f["education"].is_null() == (f["age"] < 6)).all()
    assert (f["disability"].is_null() == (f["age"] < 5)).all()
    assert f["income"].null_count() > 0  # refusals
    cb = ds.codebook.variables
    assert cb["protection_incident"].missing_values == [98, 99]
    assert cb["legal_status"].missing_values == [98, 99]
    assert cb["disability"].missing_values == [98]
    for name in ("protection_incident", "legal_status"):
        codes = set(f[name].drop_nulls().unique().to_list())
        assert {98, 99} <= codes
        analysed = ds.analysis_column(name)
        assert not analysed.is_in([98, 99]).any()
        assert analysed.null_count() > f[name].null_count()
    assert 98 in f["disability"].to_list()


def test_codebook_is_complete(ds, f):
    cb = ds.codebook
    assert cb.file_label
    for name in f.columns:
        meta = cb.variables[name]
        assert meta.label, name
        assert meta.measure in ("nominal", "ordinal", "scale"), name
    categorical = [
        "camp",
        "stratum",
        "origin",
        "livelihood",
        "relationship",
        "sex",
        "marital",
        "education",
        "disability",
        "legal_status",
        "protection_incident",
    ]
    for name in categorical:
        labels = cb.variables[name].value_labels
        assert labels, name
        assert set(f[name].drop_nulls().unique().to_list()) <= set(labels), name
    assert cb.variables["education"].measure == "ordinal"
    assert cb.variables["income"].measure == "scale"


def test_identifiers_look_fake_and_identifying(f):
    hh = f.unique("hhid", keep="first")
    assert hh["head_name"].n_unique() > 0.9 * hh.height
    assert hh["phone"].str.starts_with("+999 ").all()
    assert hh["phone"].n_unique() > 0.99 * hh.height
    assert hh["head_name"].str.contains(r"^[A-Z][a-z]+ [A-Z][a-z]+$").all()
    for code, (_, lat, lon, *_rest) in SITES.items():
        site = hh.filter(pl.col("camp") == code)
        assert (abs(site["gps_lat"] - lat) < 0.1).all() and (abs(site["gps_lon"] - lon) < 0.1).all()
    assert hh.select("gps_lat", "gps_lon").n_unique() == hh.height


def test_correlations(f):
    hh = f.unique("hhid")
    mean_income = dict(hh.group_by("livelihood").agg(pl.col("income").mean()).rows())
    assert mean_income[5] > 3 * mean_income[1]  # salaried vs assistance only
    assert mean_income[4] > mean_income[3]
    assert 0.2 < (hh["income"] == 0).mean() < 0.5  # many zeros
    assert hh["income"].mean() > hh["income"].median()  # skewed
    paid = hh.filter(pl.col("assistance") > 0)
    assert np.corrcoef(paid["assistance"].to_numpy(), paid["hh_size"].to_numpy())[0, 1] > 0.9
    assert 0.5 < paid.height / hh.height < 0.95
    arrival = dict(hh.group_by("origin").agg(pl.col("arrival_year").mean()).rows())
    assert arrival[5] > arrival[4] + 5  # Sudanese arrived recently, Somalis long ago
    recent = hh.filter(pl.col("arrival_year") >= 2024)
    old = hh.filter(pl.col("arrival_year") <= 2015)
    assert (recent["livelihood"] == 1).mean() > (old["livelihood"] == 1).mean()
    adults = f.filter(pl.col("age") >= 25)
    edu = adults.group_by("sex").agg(pl.col("education").mean()).sort("sex")["education"].to_list()
    assert edu[0] > edu[1]  # women have less schooling on average


def test_rare_risky_households(f):
    keys = load_plan(SURVEY_PLAN).roles.keys
    rare = f.filter(
        (pl.col("relationship") == 1)
        & (pl.col("age") >= 70)
        & (pl.col("hh_size") >= 10)
        & pl.col("origin").is_in([7, 8])
    )
    assert rare.height >= 5
    fk = f.group_by(keys).len()
    rare_fk = rare.join(fk, on=keys)["len"]
    assert (rare_fk == 1).all()  # each is a sample unique
    # some sample uniques, but the bulk of the file is not made of them once age is banded
    banded = f.with_columns((pl.col("age") // 10).alias("age"), pl.col("hh_size").clip(upper_bound=10))
    counts = banded.group_by(keys).len()
    share_unique = counts.filter(pl.col("len") == 1).height / f.height
    assert 0.02 < share_unique < 0.4


def test_example_plan_fits_the_survey(f):
    plan = load_plan(SURVEY_PLAN)
    plan.check_columns(f.columns, source="survey")
    r = plan.roles
    assert set(r.direct_ids) == {"head_name", "phone", "gps_lat", "gps_lon"}
    assert (r.household, r.weight, r.strata, r.cluster) == ("hhid", "weight", "stratum", "cluster")
    assert set(r.sensitive) == {"protection_incident", "legal_status"}
    assert plan.scenario.tier == "suf"
    assert all(len(step) == 1 for step in plan.steps)


@pytest.mark.parametrize("ext", ["parquet", "sav", "dta", "csv"])
def test_write_example_round_trip(tmp_path, ext):
    from safemicro.io import read

    path = tmp_path / f"survey.{ext}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Stata has no user-missing codes: the writer warns
        write_example(path, n_households=120, seed=3)
    back = read(path)
    expected = generate_survey(n_households=120, seed=3)
    if ext == "dta":
        # Stata has no user-missing codes: they come back as extended missing (.a, .b)
        declared = [n for n, m in expected.codebook.variables.items() if m.missing_values]
        assert set(back.codebook.extended_missing) == set(declared)
        expected_frame = expected.frame.with_columns(expected.analysis_frame(declared))
        assert back.frame.equals(expected_frame)
        letters = back.codebook.variables["protection_incident"].value_labels
        assert "Refused" in letters.values()
    else:
        assert back.frame.equals(expected.frame)
    if ext in ("parquet", "sav"):
        meta = back.codebook.variables["protection_incident"]
        assert meta.label == expected.codebook.variables["protection_incident"].label
        assert {int(k): v for k, v in meta.value_labels.items()}[99] == "Refused"
        assert [int(v) for v in meta.missing_values] == [98, 99]


def test_demo_writes_every_output(tmp_path):
    """What `make demo` runs: risk outputs, SUF and nested PUF bundles, synthetic households."""
    import json
    from io import StringIO

    from rich.console import Console

    from safemicro.demo import run_demo
    from safemicro.release import verify_bundle

    console = Console(file=StringIO(), width=400)
    paths = run_demo(tmp_path / "out", console=console)
    assert f"safemicro workbench {paths['example data']}" in console.file.getvalue()  # how to open the workbench
    for label, path in paths.items():
        assert path.exists(), label
    assert verify_bundle(paths["SUF bundle"]) == [] and verify_bundle(paths["PUF bundle"]) == []
    assert json.loads((paths["PUF bundle"] / "report.json").read_text())["input"]["derived_from"]["tier"] == "suf"
    synthesis = json.loads(paths["synthesis report"].read_text())
    assert synthesis["method"] == "household-cart"
    assert "<svg" in paths["evaluation"].read_text()
