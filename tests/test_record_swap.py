"""Targeted record swapping (sdcMicro ``recordSwap``) and its table information loss (``infoLoss``).

References: sdcMicro 5.8's ``recordSwap`` documentation and its vignette *Targeted Record
Swapping* (definitions: counts per area and risk variables, risky when counts < k,
swaprate of households with both sides of a swap counted, similarity profiles with
fallbacks, carry_along); the invariants below are checked by hand on sdcMicro's household
survey ``testdata`` (1 000 households, 4 580 persons). testdata has no geography, so its
household-level variables urbrur > water play a two-level hierarchy.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from tests.conftest import SDC_DATA

from safemicro.errors import SafemicroError
from safemicro.io import from_frame
from safemicro.methods import STEPS, record_swap
from safemicro.utility.info_loss import table_info_loss

HIER = ["urbrur", "water"]
RISK = ["relat", "sex", "hhcivil"]


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    df = pl.read_csv(SDC_DATA / "testdata.csv")
    return df.with_columns(pl.len().over("ori_hid").alias("hsize"))


@pytest.fixture(scope="module")
def swapped(data):
    kwargs = dict(household="ori_hid", hierarchy=HIER, similar=[["hsize"]], risk_variables=RISK, seed=7)
    return {k: record_swap(from_frame(data), k_anonymity=k, swaprate=0.05, **kwargs) for k in (0, 3)}


def _households(df: pl.DataFrame) -> pl.DataFrame:
    return df.group_by("ori_hid", maintain_order=True).first()


def test_swap_rate_is_met_exactly_without_risk(data, swapped):
    # vignette: k_anonymity = 0, swaprate 0.05 on 10 000 households -> exactly 500 swapped
    out, change = swapped[0]
    n_hh = data["ori_hid"].n_unique()
    assert change.details["households_swapped"] == round(0.05 * n_hh) == 50
    before, after = _households(data), _households(out.frame)
    moved = (before.select(HIER) != after.select(HIER)).sum_horizontal() > 0
    assert int(moved.sum()) == 50  # every swapped household really changed area
    assert change.details["records_swapped"] == int(
        ((data.select(HIER) != out.frame.select(HIER)).sum_horizontal() > 0).sum()
    )


def test_households_move_whole_and_exchange_their_geography(data, swapped):
    for out, change in swapped.values():
        frame = out.frame
        # every member of a household has the same (new) geography
        assert frame.group_by("ori_hid").agg([pl.col(h).n_unique() for h in HIER]).select(HIER).max().row(0) == (1, 1)
        geo_before = dict(zip(_households(data)["ori_hid"], _households(data).select(HIER).rows()))
        geo_after = dict(zip(_households(frame)["ori_hid"], _households(frame).select(HIER).rows()))
        pairs = change.details["swapped_pairs"]
        assert len(pairs) * 2 == change.details["households_swapped"]
        for a, b in pairs:
            assert geo_after[a] == geo_before[b] and geo_after[b] == geo_before[a]
            assert geo_before[a] != geo_before[b]
        # the multiset of household geographies is unchanged (an exchange)
        assert sorted(geo_before.values()) == sorted(geo_after.values())


def test_similar_households_only_and_other_variables_untouched(data, swapped):
    size = dict(zip(_households(data)["ori_hid"], _households(data)["hsize"]))
    for out, change in swapped.values():
        assert all(size[a] == size[b] for a, b in change.details["swapped_pairs"])
        others = [c for c in data.columns if c not in HIER]
        assert out.frame.select(others).equals(data.select(others))  # values and order of every other column
        assert set(change.changed) == set(HIER)


def test_risky_households_are_swapped_first(data, swapped):
    out, change = swapped[3]
    # risky at the lowest level: a member whose (urbrur, water, relat, sex, hhcivil) count is below 3
    counts = data.group_by([*HIER, *RISK]).len()
    risky_ids = set(data.join(counts, on=[*HIER, *RISK]).filter(pl.col("len") < 3)["ori_hid"])
    swapped_ids = {h for pair in change.details["swapped_pairs"] for h in pair}
    assert change.details["no_donor"] == len(risky_ids - swapped_ids)
    assert len(risky_ids - swapped_ids) <= 2  # hsize is a strict profile; nearly all find one
    n_hh = data["ori_hid"].n_unique()
    rate_risky = len(risky_ids & swapped_ids) / len(risky_ids)
    rate_other = len(swapped_ids - risky_ids) / (n_hh - len(risky_ids))
    assert rate_risky > 0.95 and rate_other < 0.1
    # more swaps than the swaprate alone: the risky ones come on top (sdcMicro: risky + rest)
    assert change.details["households_swapped"] > swapped[0].change.details["households_swapped"]


def test_fallback_profile_and_no_donor_note(data):
    ds = from_frame(data)
    strict = record_swap(
        ds, household="ori_hid", hierarchy=HIER, similar=[["hsize", "roof", "walls"]], risk_variables=RISK, seed=1
    )
    both = record_swap(
        ds, household="ori_hid", hierarchy=HIER, similar=[["hsize", "roof", "walls"], []], risk_variables=RISK, seed=1
    )
    assert strict.change.details["no_donor"] > 0 and strict.change.notes
    assert both.change.details["no_donor"] == 0


def test_carry_along_keeps_the_hierarchy_coherent(data):
    # vignette: with carry_along the combinations of nuts1, nuts2, nuts3 stay those of the original
    out, _ = record_swap(
        from_frame(data),
        household="ori_hid",
        hierarchy=["urbrur"],
        carry_along=["water"],
        similar=["hsize"],
        k_anonymity=0,
        swaprate=0.2,
        seed=3,
    )
    before = _households(data).select(HIER).sort(HIER)
    after = _households(out.frame).select(HIER).sort(HIER)
    assert before.equals(after)
    assert out.frame["water"].to_list() != data["water"].to_list()


def test_same_seed_same_release(data):
    run = lambda s: record_swap(  # noqa: E731
        from_frame(data), household="ori_hid", hierarchy=HIER, similar="hsize", risk_variables=RISK, seed=s
    )
    assert run(5).dataset.frame.equals(run(5).dataset.frame)
    assert not run(5).dataset.frame.equals(run(6).dataset.frame)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hierarchy": []}, "hierarchy"),
        ({"hierarchy": ["urbrur"], "swaprate": 2}, "swaprate"),
        ({"hierarchy": ["urbrur"], "k_anonymity": 3, "risk_variables": []}, "risk_variables"),
        ({"hierarchy": ["relat"]}, "differs within household"),
        ({"hierarchy": ["urbrur"], "similar": ["urbrur"]}, "cannot be swapped"),
        ({"hierarchy": ["nope"]}, "no such column"),
    ],
)
def test_errors(data, kwargs, message):
    kwargs = {"risk_variables": RISK, **kwargs}
    with pytest.raises(SafemicroError, match=message):
        record_swap(from_frame(data), household="ori_hid", **kwargs)


def test_step_is_registered():
    spec = STEPS["record_swap"]
    assert spec.random and spec.perturbative


def test_info_loss_on_a_hand_checked_table():
    # original camp x sex: (1,1)=2 (1,2)=1 (2,1)=1; released: (1,1)=1 (1,2)=1 (2,1)=2
    a = pl.DataFrame({"camp": [1, 1, 1, 2], "sex": [1, 1, 2, 1]})
    b = pl.DataFrame({"camp": [1, 1, 2, 2], "sex": [1, 2, 1, 1]})
    loss = table_info_loss(a, b, ["camp", "sex"])
    # cells: 3 inner, camp margins (3, 1) -> (2, 2), sex margins (3, 1) -> (3, 1), total 4 -> 4
    assert loss["cells"] == 3 + 2 + 2 + 1
    absd = sorted([1, 0, 1, 1, 1, 0, 0, 0])
    assert loss["measures"]["absD"]["mean"] == pytest.approx(np.mean(absd))
    assert loss["measures"]["absD"]["q90"] == pytest.approx(np.quantile(absd, 0.9))
    assert loss["measures"]["relabsD"]["max"] == pytest.approx(1.0)  # (2,1): 1 -> 2
    assert loss["measures"]["abssqrtD"]["max"] == pytest.approx(np.sqrt(2) - 1)
    assert loss["false_zero"] == loss["false_nonzero"] == 0
    assert table_info_loss(a, b, ["camp", "sex"], only_inner_cells=True)["cells"] == 3


def test_plan_on_the_example_survey_keeps_swapped_ids_internal(tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    import safemicro
    from safemicro.cli import app
    from safemicro.examples import SURVEY_PLAN, generate_survey
    from safemicro.plan import Plan

    plan = yaml.safe_load(SURVEY_PLAN.read_text())
    step = {
        "record_swap": {
            "hierarchy": ["camp", "cluster"],
            "carry_along": ["stratum"],
            "similar": [["hh_size", "origin"], ["hh_size"]],
            "risk_variables": ["origin", "hh_size"],
            "swaprate": 0.05,
        }
    }
    plan["steps"].insert(-1, step)  # before new_ids: the pairs name the households as the curator knows them
    release = safemicro.anonymize(generate_survey(n_households=400), Plan.model_validate(plan))
    paths = release.write(tmp_path / "bundle")
    internal = json.loads(paths["report.json"].read_text())
    done = next(s for s in internal["steps"] if s["name"] == "record_swap")
    pairs = done["details"]["swapped_pairs"]
    assert pairs and done["details"]["households_swapped"] == 2 * len(pairs)
    assert done["seed"] is not None and done["perturbative"]
    external = paths["external_report.html"].read_text()
    assert "swapped_pairs" not in external and "Targeted record swapping" in external
    assert "swapped_pairs" not in paths["disclosure_risk_assessment.json"].read_text()
    assert "Mean / max abs. cell change" in paths["report.html"].read_text()
    camp_origin = next(t for t in internal["utility"]["tables"] if t["variables"] == ["camp", "origin"])
    assert camp_origin["info_loss"]["measures"]["absD"]["max"] > 0
    listed = CliRunner().invoke(app, ["steps"])
    assert "record_swap" in listed.output


def test_example_swap_plan_runs_end_to_end_through_the_cli(tmp_path):
    import json
    import warnings

    from typer.testing import CliRunner

    import safemicro.io as sio
    from safemicro.cli import app
    from safemicro.examples import SURVEY_SWAP_PLAN, generate_survey

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Stata's limits on notes and user-missing codes
        sio.write(generate_survey(n_households=500), tmp_path / "survey.dta")
    r = CliRunner().invoke(
        app,
        ["anonymize", str(tmp_path / "survey.dta"), "--plan", str(SURVEY_SWAP_PLAN), "--out", str(tmp_path / "suf")],
    )
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "suf" / "report.json").read_text())
    names = [s["name"] for s in report["steps"]]
    assert names.index("record_swap") < names.index("local_suppression")
    swap = report["steps"][names.index("record_swap")]
    assert swap["details"]["households_swapped"] >= round(0.05 * 500)
    checks = {c["target"]: c for c in report["checks"]}
    assert checks["t-closeness ≤ 0.95"]["passed"] is True and checks["k = 3"]["passed"] is True
    for side in ("risk_before", "risk_after"):
        assert set(report[side]["attribute_disclosure"]) == {"protection_incident", "legal_status"}
    html = (tmp_path / "suf" / "report.html").read_text()
    assert "t-closeness of legal_status" in html and "Targeted record swapping" in html
    external = (tmp_path / "suf" / "external_report.html").read_text()
    assert "swapped_pairs" not in external
