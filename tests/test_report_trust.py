"""Reports and outputs a curator can trust at a glance (issue 14, items 10-15).

A small household survey saved as SPSS (every number a double, value labels, a variable
label on age, two direct identifiers) goes through a plan that removes columns, bands age
and suppresses; the bundle's CSV and its three pages are then read as a curator would.
"""

from __future__ import annotations

import html
import re

import numpy as np
import polars as pl
import pytest

from safemicro.io import Dataset, read, write
from safemicro.io.dataset import Codebook, VariableMeta
from safemicro.plan import Plan
from safemicro.release import anonymize
from safemicro.report.release_report import render_external_report, render_internal_report

PLAN = """
roles:
  direct_ids: [resp_name, phone]
  keys: [urbrur, sex, age]
  numeric_keys: [income]
  weight: weight
  household: hid
  household_level: [urbrur, income]
targets: {k: 3}
utility:
  regressions:
    - {outcome: income, predictors: [urbrur]}
steps:
  - remove_direct_ids: {}
  - remove_variables: {variables: [cluster]}
  - recode:
      variable: age
      breaks: [0, 15, 25, 45, 65, 120]
      right: false
      labels: {1: "0-14", 2: "15-24", 3: "25-44", 4: "45-64", 5: "65+"}
  - local_suppression: {k: 3, importance: [urbrur, sex, age]}
  - new_ids: {variable: hid}
seed: 7
"""


def _survey() -> Dataset:
    rng = np.random.default_rng(14)
    n_hh = 150
    size = rng.integers(1, 6, n_hh)
    hid = np.repeat(np.arange(1, n_hh + 1), size)
    n = len(hid)
    urbrur = np.repeat(rng.integers(1, 3, n_hh), size)
    income = np.repeat(np.round(rng.lognormal(8, 1, n_hh), 2), size)
    frame = pl.DataFrame(
        {
            "hid": hid.astype(float),
            "resp_name": [f"Person {i}" for i in range(n)],
            "phone": [f"+999 7{i:07d}" for i in range(n)],
            "cluster": np.repeat(rng.integers(1, 9, n_hh), size).astype(float),
            "urbrur": urbrur.astype(float),
            "sex": rng.integers(1, 3, n).astype(float),
            "age": rng.integers(0, 90, n).astype(float),
            "income": income,
            "weight": np.repeat(np.round(rng.uniform(50, 150, n_hh), 4), size),
        }
    )
    cb = Codebook(
        variables={
            "urbrur": VariableMeta("urbrur", "Area", {1: "urban", 2: "rural"}),
            "sex": VariableMeta("sex", "Sex", {1: "male", 2: "female"}),
            "age": VariableMeta("age", "Age in completed years"),
            "income": VariableMeta("income", "Household income"),
        }
    )
    return Dataset(frame, cb)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trust")
    write(_survey(), folder / "survey.sav")
    plan = Plan.from_yaml(PLAN)
    plan.release.copies = ["csv"]  # the CSV copy, asked for (a bundle has none by default)
    release = anonymize(folder / "survey.sav", plan)
    release.write(folder / "bundle")
    return release, folder / "bundle"


@pytest.fixture(scope="module")
def report(bundle) -> dict:
    return bundle[0].report


@pytest.fixture(scope="module")
def internal(bundle) -> str:
    return (bundle[1] / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def external(bundle) -> str:
    return (bundle[1] / "external_report.html").read_text(encoding="utf-8")


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _step_block(page: str, index: int) -> str:
    match = re.search(rf'<article class="step" data-step="{index}">(.*?)</article>', page, re.S)
    assert match, f"step {index} missing"
    return _text(match.group(1))


# -- item 11: dropping columns is a change -----------------------------------------------------


def test_removed_columns_are_reported_as_removed(report, internal, external):
    n = report["input"]["n_records"]
    first, second = report["steps"][0], report["steps"][1]
    assert first["removed"] == ["resp_name", "phone"] and second["removed"] == ["cluster"]
    assert first["records_touched"] == n and second["records_touched"] == n
    block = _step_block(internal, 1)
    assert f"2 columns × {n:,} records removed" in block
    assert "Cells changed 0" not in block and "Records touched 0" not in block
    assert f"1 column × {n:,} records removed" in _step_block(internal, 2)
    assert f"1 column × {n:,} records removed: cluster" in _text(external)


# -- item 12: one change count ----------------------------------------------------------------


def test_step_and_variable_counts_agree(report):
    """A variable one step changed shows the same count in the step table and per variable."""
    per_variable = {r["variable"]: r for r in report["utility"]["variables"] if r.get("status") == "kept"}
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["new_ids"]["changed"]["hid"] == per_variable["hid"]["changed"]
    recode, supp = steps["recode"]["changed"]["age"], steps["local_suppression"]["changed"]["age"]
    # a recoded value later suppressed counts once per variable
    assert max(recode, supp) <= per_variable["age"]["changed"] <= recode + supp
    # banding changes what every age says, even where a band code equals the age (1 -> band 1)
    assert (
        recode == per_variable["age"]["changed"] == report["input"]["n_records"] - per_variable["age"]["missing_before"]
    )
    # numbers compare as numbers: an id written 12.0 before and 12 after is not changed
    from safemicro.methods.base import cells_differ

    differ, suppressed = cells_differ(
        pl.Series([1.0, 2.0, None, float("nan"), 5.0]), pl.Series([1, 3, None, None, None])
    )
    assert differ.tolist() == [False, True, False, False, True]
    assert suppressed.tolist() == [False, False, False, False, True]
    # with the value labels of a recode: what the value says counts
    differ, _ = cells_differ(pl.Series([1.0, 3.0, 7.0]), pl.Series([1, 1, 2]), ({}, {1: "0-4", 2: "5-9"}))
    assert differ.tolist() == [True, True, True]
    differ, _ = cells_differ(pl.Series([1, 2]), pl.Series([1, 2]), ({1: "0-4", 2: "5-9"}, {1: "0-4", 2: "5-14"}))
    assert differ.tolist() == [False, True]


def test_changes_caption_states_the_rule(internal):
    text = _text(internal)
    assert "by the same rule as the step table" in text
    assert "numbers compared as numbers" in text


# -- item 14: the external report says the truth -----------------------------------------------


def test_external_never_offers_direct_identifiers(external):
    text = _text(external)
    assert "Direct identifiers are never released" in text
    ids = re.search(r"Direct identifiers\. (.*?)\. Direct identifiers are never", text)
    assert ids and "resp_name" in ids.group(1) and "phone" in ids.group(1)
    offer = re.search(r"Removed variables\. (.*?)less protected version", text)
    assert offer and "cluster" in offer.group(1)
    assert "resp_name" not in offer.group(1) and "phone" not in offer.group(1)


def test_external_mentions_capping_only_when_values_were_capped(report, external):
    assert not [s for s in report["steps"] if s["name"] in ("topcode", "bottomcode")]
    assert "capped" not in _text(external).lower()
    capped = dict(report)
    capped["steps"] = [
        *report["steps"],
        {
            "index": 9,
            "name": "topcode",
            "description": "Top coding.",
            "changed": {"income": 4},
            "suppressed": {"income": 0},
            "records_touched": 4,
            "perturbative": False,
        },
    ]
    from safemicro.release import external_view

    assert "Extreme values were capped" in _text(render_external_report(external_view(capped)))
    assert "Extreme values were capped" not in _text(render_internal_report(report))


# -- item 15: every number says what it means, cards agree with the checks ----------------------


@pytest.fixture(scope="module")
def risk_page() -> str:
    from safemicro.assess import assess
    from safemicro.report import render_risk_report

    plan = Plan.from_yaml(PLAN + "\n")
    plan.targets.max_global_risk = 0.01
    result = assess(_survey(), plan=plan, suda=True)
    return render_risk_report(result.summary, result.records)


def _cards(page: str) -> dict[str, str]:
    return {
        m.group(1): m.group(2)
        for m in re.finditer(
            r'<div class="card[^"]*" data-card="([^"]+)">(.*?)</div>\s*(?=<div class="card|</div>)', page, re.S
        )
    }


def test_risk_cards_say_what_they_mean_and_agree_with_checks(risk_page):
    cards = {
        k: (re.search(r'class="card ?([a-z]*)"', risk_page[risk_page.index(f'data-card="{k}"') - 40 :]).group(1), v)
        for k, v in _cards(risk_page).items()
    }
    assert {"records", "global-risk", "household-risk", "max-risk"} <= set(cards)
    for key, (status, body) in cards.items():
        assert 'class="means"' in body, key
    # household risk is not in the checks table: its card is neither passed nor failed
    assert (
        "household risk"
        not in _text(risk_page.split("Checks against the targets")[1]).split("Variables and their roles")[0].lower()
    )
    status, body = cards["household-risk"]
    assert status not in ("pass", "fail") and "no target in the plan" in _text(body)
    assert "misses" not in _text(body).lower()
    assert cards["global-risk"][0] in ("pass", "fail") and "target ≤ 1 %" in _text(cards["global-risk"][1])


def test_suda_and_interval_disclosure_are_explained(risk_page):
    text = _text(risk_page)
    assert re.search(r"Highest SUDA score [\d,.]+ SUDA score of the record with the most", text)
    assert re.search(r"Interval disclosure risk [\d.]+ Share of records whose every numeric key value", text)
    assert "baseline" in text


# -- item 10: integers stay integers, decimals at the input's precision, labels in terms ---------


def test_released_csv_writes_codes_as_integers_and_input_precision(bundle):
    release, folder = bundle
    text = (folder / "survey.csv").read_text(encoding="utf-8")
    header, first = text.splitlines()[:2]
    row = dict(zip(header.split(","), first.split(",")))
    for code in ("urbrur", "sex", "age", "hid"):
        assert row[code] == "" or re.fullmatch(r"-?\d+", row[code]), (code, row[code])
    csv = pl.read_csv(folder / "survey.csv")
    assert csv.schema["urbrur"].is_integer() and csv.schema["age"].is_integer()
    decimals = release.report["release"]["decimals"]
    assert decimals["income"] == 2 and decimals["weight"] == 4 and decimals["urbrur"] == 0
    assert all(len(v.split(".")[1]) <= 2 for v in csv["income"].cast(pl.String).drop_nulls() if "." in v)
    # the values are the released ones, only written at their precision
    assert np.allclose(csv["income"].to_numpy(), release.dataset.frame["income"].to_numpy(), atol=0.005, equal_nan=True)
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "income to 2 decimals" in _text(page) and "weight to 4 decimals" in _text(page)


def test_tidy_numbers_rules():
    from safemicro.io.numbers import format_decimals, tidy_numbers

    assert [format_decimals(f) for f in ("F8.2", "F8", "%9.2f", "%8.0g", "A20", None)] == [2, 0, 2, None, None, None]
    ds = Dataset(
        pl.DataFrame({"code": [1.0, 2.0, None], "x": [1.23456789, 2.5, 3.0], "big": [1e20, 2.5, None]}),
        Codebook(variables={"code": VariableMeta("code", value_labels={1: "a", 2: "b"})}),
    )
    out = tidy_numbers(ds, {"x": 2})
    assert out["code"].dtype == pl.Int64 and out["code"].to_list() == [1, 2, None]
    assert out["x"].to_list() == [1.23, 2.5, 3.0] and out["big"].to_list() == [1e20, 2.5, None]


def test_regression_terms_read_codes_with_labels(report, internal):
    terms = [c["term"] for g in report["utility"]["regressions"] for c in g["coefficients"]]
    assert "urbrur=2 · rural" in terms
    assert not any(".0" in t for t in terms)
    assert "urbrur=2 · rural" in _text(internal)


# -- item 13: a recoded variable is compared in its released coding ---------------------------


def test_recoded_variable_compared_on_released_coding(report):
    age = next(r for r in report["utility"]["variables"] if r["variable"] == "age")
    labels = [c["label"] for c in age["marginal"] if c["kind"] == "value"]
    assert set(labels) <= {"0-14", "15-24", "25-44", "45-64", "65+"} and len(labels) == 5
    assert age["categories_before"] == 5 and not age["categories_differ"]
    # only suppression separates the two: the distance is of the order of the suppressed share
    share = age["suppressed"] / report["input"]["n_records"]
    assert age["tvd"] <= share + 1e-9
    assert any(n.startswith("age: recoded by the plan") for n in report["utility"]["notes"])
    steps = {s["name"]: s for s in report["steps"]}
    assert age["changed"] >= steps["recode"]["changed"]["age"] > 0.8 * report["input"]["n_records"]


def test_recoded_variable_label_says_what_it_holds(bundle):
    release, folder = bundle
    assert release.dataset.codebook.meta("age").label == "Age in completed years (banded: 0-14, 15-24, 25-44, 45-64, …)"
    assert read(folder / "survey.sav").codebook.meta("age").label.startswith("Age in completed years (banded: 0-14")
    from safemicro.methods.recode import global_recode

    again = global_recode(
        release.dataset, variable="age", map={1: 1, 2: 1, 3: 2, 4: 2, 5: 3}, labels={1: "0-24", 2: "25-64", 3: "65+"}
    ).dataset
    assert again.codebook.meta("age").label == "Age in completed years (banded: 0-24, 25-64, 65+)"


def test_approval_form_shows_removed_columns(bundle):
    n = bundle[0].report["input"]["n_records"]
    form = _text((bundle[1] / "disclosure_risk_assessment.html").read_text(encoding="utf-8"))
    assert f"2 columns × {n:,} records removed" in form and f"1 column × {n:,} records removed" in form


def test_rounding_to_the_input_precision_never_undoes_noise(tmp_path):
    ds = _survey()
    plan = Plan.from_yaml(
        "roles: {keys: [urbrur, sex], numeric_keys: [income], household: hid, household_level: [urbrur, income]}\n"
        "steps:\n  - noise: {variables: [income], amount: 0.000001}\nseed: 3\n"
    )
    release = anonymize(ds, plan)
    decimals = release.report["release"]["decimals"]
    assert decimals["income"] > 2 and decimals["urbrur"] == 0
    before, after = ds.frame["income"].to_numpy(), release.dataset.frame.sort("hid")["income"].to_numpy()
    assert (np.round(after, 2) == before).mean() > 0.5  # at the input's 2 decimals the noise would vanish
    order = np.argsort(release.dataset.frame["hid"].to_numpy(), kind="stable")
    assert (release.dataset.frame["income"].to_numpy()[order] == before).mean() < 0.01
    assert release.dataset.frame.schema["urbrur"] == pl.Int64  # codes are integers in every file


def test_release_risk_rows_say_what_they_mean_with_their_target(internal):
    text = _text(internal)
    assert (
        re.search(r"Global risk [^|]*? the average individual risk\. No target in the plan\.", text)
        or "the average individual risk. Target: at most" in text
    )
    assert "whole household). No target in the plan (the global-risk target is for persons)." in text
    assert "DIS-SUDA score of the riskiest record" in text
