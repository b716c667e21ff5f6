"""DP synthesis through the CLI keeps each column's domain (issue 14, item 3).

On NIST MA 2019 (a slice, small ε, so that many categories stay hidden): no column gains
missing values, whole numbers stay integers, and a public hierarchy (industry code ->
industry category, the ACS PUMS code ranges) holds in every synthetic record.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import NIST
from safemicro.cli import app
from safemicro.errors import SafemicroError
from safemicro.synth.dp_domain import load_hierarchy

# first industry code of each ACS industry category (2019 PUMS data dictionary, INDP)
SECTOR_STARTS = [
    170,
    370,
    570,
    770,
    1070,
    4070,
    4670,
    6070,
    6470,
    6870,
    7270,
    7860,
    7970,
    8370,
    8561,
    8770,
    9370,
    9670,
    9920,
]


def industry_hierarchy() -> pl.DataFrame:
    """INDP -> INDP_CAT for the public INDP code list of the MA excerpt."""
    codes = json.loads((NIST / "ma2019.json").read_text())["schema"]["INDP"]["values"]
    nums = [int(c) for c in codes if c != "N"]
    cats = np.searchsorted(SECTOR_STARTS, nums, side="right") - 1
    return pl.DataFrame({"INDP": [str(c) for c in nums] + ["N"], "INDP_CAT": [str(c) for c in cats] + ["N"]})


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dp_domain")
    data = tmp / "ma.csv"
    pl.read_csv(NIST / "ma2019.csv", infer_schema=False)[::5].write_csv(data)  # 1 527 records
    hierarchy = tmp / "indp.csv"
    industry_hierarchy().write_csv(hierarchy)
    out, report = tmp / "synthetic.csv", tmp / "report.json"
    r = CliRunner(env={"SAFEMICRO_DEBUG": None}).invoke(
        app,
        [
            "synthesize",
            str(data),
            "--out",
            str(out),
            "--epsilon",
            "2",
            "--seed",
            "5",
            "--hierarchy",
            str(hierarchy),
            "--report",
            str(report),
        ],
    )
    assert r.exit_code == 0, r.stdout + r.stderr
    return (pl.read_csv(data, infer_schema=False), pl.read_csv(out, infer_schema=False), json.loads(report.read_text()))


def test_no_column_gains_missing_values(dp_run):
    real, synth, report = dp_run
    assert real.null_count().sum_horizontal().item() == 0
    assert {c: synth[c].null_count() for c in synth.columns if synth[c].null_count()} == {}
    # categories were hidden (the case that used to write missing values)
    note = next(n for n in report["notes"] if "threshold" in n)
    assert "INDP (" in note and "DVET (" in note


def test_integer_columns_stay_integers(dp_run):
    real, synth, _ = dp_run
    whole = r"^(N|-?[0-9]+(\.0)?)$"
    integer = [c for c in real.columns if real[c].str.contains(whole).all()]
    assert {"AGEP", "PINCP", "POVPIP", "PWGTP", "INDP"} <= set(integer)
    for c in integer:  # PINCP is written 5000.0 in the input: 5000 in the output
        assert synth[c].str.contains(r"^(N|-?[0-9]+)$").all(), c


def test_public_hierarchy_holds_and_released_values_only(dp_run):
    real, synth, report = dp_run
    pairs = (
        synth.select("INDP", "INDP_CAT").unique().join(industry_hierarchy(), on="INDP", how="left", suffix="_public")
    )
    assert (pairs["INDP_CAT"] == pairs["INDP_CAT_public"]).all()
    assert report["params"]["hierarchies"] == [["INDP", "INDP_CAT"]]
    # only values of the data that cleared the threshold: far fewer industry codes, none rare
    counts = real["INDP"].value_counts()
    rare = counts.filter(pl.col("count") <= 3)["INDP"]
    assert synth["INDP"].n_unique() < counts.height / 2 and not synth["INDP"].is_in(rare.implode()).any()


def test_bad_hierarchy_files(tmp_path):
    bad = tmp_path / "h.csv"
    bad.write_text("INDP,INDP_CAT\n170,0\n170,1\n")
    with pytest.raises(SafemicroError) as e:
        load_hierarchy(bad)
    assert e.value.column == "INDP" and e.value.row == 1
    bad.write_text("INDP\n170\n")
    with pytest.raises(SafemicroError, match="two columns"):
        load_hierarchy(bad)


def test_child_is_drawn_within_the_parent_it_was_given():
    from safemicro.io.dataset import Dataset
    from safemicro.synth.dp import DPSynthesizer

    rng = np.random.default_rng(2)
    n = 4000
    x = rng.integers(0, 2, n)
    parent = np.where(rng.random(n) < 0.9, x, 1 - x)  # the parent follows x
    child = np.where(parent == 0, rng.choice(["a1", "a2"], n, p=[0.7, 0.3]), rng.choice(["b1", "b2"], n))
    ds = Dataset(pl.DataFrame({"x": x, "parent": np.array(["A", "B"])[parent], "child": child}))
    mapping = {"a1": "A", "a2": "A", "b1": "B", "b2": "B"}
    syn = DPSynthesizer(3.0, hierarchies={"child": ("parent", mapping)}).fit(ds, seed=1)
    out = syn.sample(seed=1).frame
    assert (out["child"].replace_strict(mapping) == out["parent"]).all()
    assert ["x", "parent"] in syn.privacy["tree"] or ["parent", "x"] in syn.privacy["tree"]
    assert out.select((pl.col("x") == (pl.col("parent") == "B")).mean()).item() == pytest.approx(0.9, abs=0.03)
    a1 = out.filter(pl.col("parent") == "A")["child"].eq("a1").mean()
    assert a1 == pytest.approx(0.7, abs=0.05)
    with pytest.raises(SafemicroError, match="hierarch"):
        DPSynthesizer(3.0, hierarchies={"child": ("nope", mapping)}).fit(ds, seed=1)


def test_top_code_of_an_integer_column_survives_a_private_range():
    """Income-to-poverty ratio: 0 (a tenth), 1..500 and the top code 501 (a fifth). Its range,
    found privately, is [0, 512]: still one cell per integer, so 501 stays 501."""
    from safemicro.io.dataset import Dataset
    from safemicro.synth.dp import DPSynthesizer

    rng = np.random.default_rng(4)
    n = 5000
    u = rng.random(n)
    ratio = np.where(u < 0.2, 501, np.where(u < 0.3, 0, rng.integers(1, 501, n)))
    syn = DPSynthesizer(3.0).fit(Dataset(pl.DataFrame({"ratio": ratio, "g": rng.integers(0, 3, n)})), seed=2)
    out = syn.sample(seed=2).frame
    assert (out["ratio"] == 501).mean() == pytest.approx(0.2, abs=0.02)
    assert (out["ratio"] == 0).mean() == pytest.approx(0.1, abs=0.02) and out["ratio"].max() <= 512


def test_zero_of_a_wide_integer_column_stays_zero():
    """Incomes: a third are 0, the rest spread to 10^5 (asinh grid, range found privately)."""
    from safemicro.io.dataset import Dataset
    from safemicro.synth.dp import DPSynthesizer

    rng = np.random.default_rng(5)
    n = 5000
    income = np.where(rng.random(n) < 1 / 3, 0, np.exp(rng.uniform(5, 11.5, n)).round()).astype(np.int64)
    syn = DPSynthesizer(3.0).fit(Dataset(pl.DataFrame({"income": income, "g": rng.integers(0, 3, n)})), seed=2)
    out = syn.sample(seed=2).frame
    assert (out["income"] == 0).mean() == pytest.approx(1 / 3, abs=0.03)
