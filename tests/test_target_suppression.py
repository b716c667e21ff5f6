"""Local suppression to attribute-disclosure and k-map targets (``target_suppression``).

References: pycanon 1.3.6 (PyPI; CSIC, Apache-2.0) measures the released file — t-closeness,
δ-disclosure, basic β-likeness, l-diversity and (α,k)-anonymity by its own code, with every
suppressed value written as "*" (ARX's suppressed value, a value of its own, as our classes
treat it; pandas' group-by would otherwise drop those records); k-map is re-measured by
:func:`population_risk`; the suppression choice is checked by hand on a ten-record case.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import polars as pl
import pytest
from tests.conftest import SDC_DATA

from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.methods import target_suppression
from safemicro.risk.population import population_risk

pycanon = pytest.importorskip("pycanon.anonymity", reason="pycanon is the reference (pip install --no-deps pycanon)")

KEYS = ["urbrur", "roof", "sex", "relat"]


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    df = pl.read_csv(SDC_DATA / "testdata.csv").select([*KEYS, "hhcivil", "water", "ori_hid"]).drop_nulls()
    return df.with_columns(pl.col("hhcivil").cast(pl.String).alias("civil_text"))


def _pycanon_frame(frame: pl.DataFrame):
    return frame.with_columns([pl.col(k).cast(pl.String).fill_null("*") for k in KEYS]).to_pandas()


@pytest.mark.parametrize(
    "sensitive, target, measure",
    [
        ("water", {"t_closeness": 0.15}, lambda df, s: pycanon.t_closeness(df, KEYS, [s]) <= 0.15 + 1e-12),
        ("civil_text", {"t_closeness": 0.5}, lambda df, s: pycanon.t_closeness(df, KEYS, [s]) <= 0.5 + 1e-12),
        ("civil_text", {"l_diversity": 3}, lambda df, s: pycanon.l_diversity(df, KEYS, [s]) >= 3),
        ("civil_text", {"delta_disclosure": 3.0}, lambda df, s: pycanon.delta_disclosure(df, KEYS, [s]) <= 3.0),
        ("civil_text", {"beta_likeness": 5.0}, lambda df, s: pycanon.basic_beta_likeness(df, KEYS, [s]) <= 5.0),
        (
            "civil_text",
            {"max_sensitive_share": 0.9, "k": 2},
            lambda df, s: (lambda a, k: a <= 0.9 + 1e-12 and k >= 2)(*pycanon.alpha_k_anonymity(df, KEYS, [s])),
        ),
    ],
)
def test_release_meets_the_target_by_pycanons_measure(data, sensitive, target, measure):
    assert not measure(_pycanon_frame(data), sensitive)  # the raw file does not
    # marital status and relationship to the head go together: these targets cost many records
    res = target_suppression(Dataset(data), keys=KEYS, sensitive=[sensitive], max_suppression=0.99, **target)
    out = res.dataset.frame
    assert res.change.details["records_with_suppression"] < 0.99 * data.height
    assert measure(_pycanon_frame(out), sensitive)
    # only key values were suppressed, nothing else changed
    assert out.drop(KEYS).equals(data.drop(KEYS))
    assert res.change.details["cells_suppressed"] == sum(res.change.suppressed.values()) > 0


def test_the_suppression_choice_by_hand():
    # classes (region, sex): A1 [x y]  A2 [x x]  A3 [y]  B1 [x y y]  B2 [y]; target l = 2.
    # region is more important, so sex goes first: A2, A3, B2 fail -> sex suppressed:
    # (A, -) = [x x y] passes, (B, -) = [y] fails -> region suppressed too: (-, -) = [y]
    # fails; the smallest passing class that makes it pass joins it: A1 (2 records) -> [y x y].
    df = pl.DataFrame(
        {
            "region": ["A", "A", "A", "A", "A", "B", "B", "B", "B"],
            "sex": [1, 1, 2, 2, 3, 1, 1, 1, 2],
            "status": ["x", "y", "x", "x", "y", "x", "y", "y", "y"],
        }
    )
    res = target_suppression(
        Dataset(df),
        keys=["region", "sex"],
        sensitive=["status"],
        l_diversity=2,
        importance=["region", "sex"],
        max_suppression=1.0,
    )
    out = res.dataset.frame
    assert out["region"].to_list() == [None, None, "A", "A", "A", "B", "B", "B", None]
    assert out["sex"].to_list() == [None, None, None, None, None, 1, 1, 1, None]
    d = res.change.details
    assert d["records_with_suppression"] == 6 and d["records_fully_suppressed"] == 3
    assert d["classes_merged_into_suppressed"] == 1 and d["suppression_order"] == ["sex", "region"]


def test_a_target_that_cannot_be_met_is_refused_clearly(data):
    with pytest.raises(
        SafemicroError, match=r"needs key values suppressed in \d+ records .* more than max_suppression 0.01"
    ):
        target_suppression(Dataset(data), keys=KEYS, sensitive=["water"], t_closeness=0.1, max_suppression=0.01)
    share = data["civil_text"].value_counts(sort=True)["count"][0] / data.height
    with pytest.raises(SafemicroError, match="the whole file, as one class, fails it"):
        target_suppression(Dataset(data), keys=KEYS, sensitive=["civil_text"], max_sensitive_share=share / 2)
    with pytest.raises(SafemicroError, match="needs the population"):
        target_suppression(Dataset(data), keys=KEYS, k_map=3)


def test_k_map_against_a_population(data):
    rng = np.random.default_rng(1)
    population = data.select(KEYS)
    sample = data[np.sort(rng.choice(data.height, 600, replace=False))]
    before, _ = population_risk(sample.select(KEYS), population, KEYS, k=5)
    assert before["n_records_below_k"] > 0
    res = target_suppression(Dataset(sample), keys=KEYS, k_map=5, population=Dataset(population), max_suppression=0.5)
    after, _ = population_risk(res.dataset.frame.select(KEYS), population, KEYS, k=5)
    assert after["n_records_below_k"] == 0 and after["k_map"] >= 5
    # records below k before are the ones touched; the others keep every key
    assert res.change.details["records_with_suppression"] <= before["n_records_below_k"]


def test_household_level_keys_are_suppressed_for_the_whole_household(data):
    res = target_suppression(
        Dataset(data),
        keys=KEYS,
        sensitive=["water"],
        t_closeness=0.15,
        importance=["relat", "sex"],
        household="ori_hid",
        household_level=["urbrur", "roof"],
        max_suppression=0.5,
    )
    out = res.dataset.frame
    for key in ("urbrur", "roof"):
        per_hh = out.group_by("ori_hid").agg(pl.col(key).is_null().n_unique().alias("kinds"))
        assert per_hh["kinds"].max() == 1  # all members or none
    assert pycanon.t_closeness(_pycanon_frame(out), KEYS, ["water"]) <= 0.15 + 1e-12


def test_example_tclose_plan_runs_end_to_end_through_the_cli(tmp_path):
    from typer.testing import CliRunner

    from safemicro.cli import app
    from safemicro.examples import SURVEY_TCLOSE_PLAN, write_example

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Stata's limits on notes and user-missing codes
        survey = write_example(tmp_path / "survey.dta")  # the demo's 2 000 households
    args = ["anonymize", str(survey), "--plan", str(SURVEY_TCLOSE_PLAN), "--out", str(tmp_path / "suf")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "suf" / "report.json").read_text())
    names = [s["name"] for s in report["steps"]]
    step = report["steps"][names.index("target_suppression")]
    assert step["details"]["cells_suppressed"] > 0
    checks = {c["target"]: c for c in report["checks"]}
    assert checks["t-closeness ≤ 0.9"]["passed"] is True and checks["k = 3"]["passed"] is True
    before = report["risk_before"]["attribute_disclosure"]
    assert max(v["t_closeness"] for v in before.values()) > 0.9
    # the released file, by pycanon: every key group t-close for both sensitive variables
    released = pl.read_parquet(next((tmp_path / "suf").glob("*.parquet")))
    keys = ["camp", "origin", "hh_size", "relationship", "sex", "age"]
    frame = released.select([*keys, "protection_incident", "legal_status"]).with_columns(
        [pl.col(k).cast(pl.String).fill_null("*") for k in keys]
    )
    for s in ("protection_incident", "legal_status"):
        sub = frame.filter(pl.col(s).is_not_null()).with_columns(pl.col(s).cast(pl.String)).to_pandas()
        assert pycanon.t_closeness(sub, keys, [s]) <= 0.9 + 1e-12


def test_the_cli_refuses_a_target_it_cannot_meet_in_one_line(tmp_path, data):
    from typer.testing import CliRunner

    from safemicro.cli import app

    data.write_csv(tmp_path / "data.csv")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "roles: {keys: [urbrur, roof, sex, relat], sensitive: [water]}\n"
        "targets: {k: 1, max_global_risk: null, t_closeness: 0.1}\n"
        "steps:\n  - target_suppression: {max_suppression: 0.02}\n"
    )
    r = CliRunner().invoke(
        app, ["anonymize", str(tmp_path / "data.csv"), "--plan", str(plan), "--out", str(tmp_path / "x")]
    )
    assert r.exit_code == 2, r.output
    assert "step 1 (target_suppression)" in r.output and "more than max_suppression 0.02" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "x").exists()


def test_plan_targets_without_sensitive_variables_are_not_aimed_at():
    from safemicro.methods import STEPS
    from safemicro.methods.base import StepContext
    from safemicro.plan import Roles, Targets

    ctx = StepContext(Roles(keys=KEYS), Targets(t_closeness=0.2), 1.0, 1, 1, tuple(KEYS))
    params = STEPS["target_suppression"].params.model_validate({})
    with pytest.raises(ValueError, match="no target"):
        params.check(ctx)
    params = STEPS["target_suppression"].params.model_validate({"t_closeness": 0.3})
    with pytest.raises(ValueError, match="need sensitive variables"):
        params.check(ctx)
    search = STEPS["recode_search"].params.model_validate({"hierarchies": {"urbrur": [{1: 1, 2: 1}]}})
    search.check(ctx)  # a plan target alone does not make recode_search need sensitive variables
    assert not search.class_targets(ctx).given()


@pytest.mark.parametrize("distance", ["equal", "ordered", "hierarchical"])
def test_the_suppressed_group_takes_in_passing_groups_until_it_meets_t(distance):
    # camps 4-6 are all "a": each fails, and so does their union (all "a"); passing camps
    # with b and c must join the suppressed group. Checked by attribute_disclosure itself.
    from safemicro.risk.attribute import attribute_disclosure

    # p = (15, 8, 7) / 30; camps 1-3 (2 a 2 b 2 c, t = 0.167) and camp 7 (3 a 2 b 1 c, t = 0.067)
    # pass t <= 0.2; camps 4-6 (2 a each) fail, so does their union; a camp 1-3 joins it
    # (8 a 2 b 2 c: t = 0.167), camp 7 would not (9 a 2 b 1 c: t = 0.25) — equal distance
    v = ["a", "b", "c"] * 6 + ["a", "a", "a", "b", "b", "c"] + ["a"] * 6
    camp = [1] * 6 + [2] * 6 + [3] * 6 + [7] * 6 + [4, 4, 5, 5, 6, 6]
    df = pl.DataFrame({"camp": camp, "v": v})
    tree = {"a": ["ab"], "b": ["ab"], "c": ["c"]}
    hierarchies = {"v": tree} if distance == "hierarchical" else None
    res = target_suppression(
        Dataset(df),
        keys=["camp"],
        sensitive=["v"],
        t_closeness=0.2,
        distance={"v": distance},
        hierarchies=hierarchies,
        max_suppression=1.0,
    )
    d = res.change.details
    assert d["classes_merged_into_suppressed"] >= 1 and d["records_with_suppression"] < df.height
    out = res.dataset.frame
    measured = attribute_disclosure(out, ["camp"], ["v"], distance={"v": distance}, hierarchies=hierarchies)
    assert measured.variables["v"]["t_closeness"] <= 0.2 + 1e-12
    assert set(out.filter(pl.col("camp").is_not_null())["camp"].to_list()) <= {1, 2, 3, 7}
    if distance == "equal":  # by hand: the first of the equally good camps 1-3 joins
        assert out["camp"].to_list() == [None] * 6 + [2] * 6 + [3] * 6 + [7] * 6 + [None] * 6
