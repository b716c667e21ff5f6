"""Drafting a plan from the data: planted identifiers, household id, weight, keys."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from safemicro.draft import Draft, draft_plan
from safemicro.examples import generate_survey
from safemicro.io.dataset import Dataset
from safemicro.plan import Plan

TESTDATA = str(Path(__file__).resolve().parent / "data" / "sdcmicro" / "testdata.csv")


@pytest.fixture(scope="module")
def testdata() -> Dataset:
    return Dataset(pl.read_csv(TESTDATA), source=TESTDATA)


@pytest.fixture(scope="module")
def survey() -> Dataset:
    return generate_survey(n_households=600, seed=7)


def test_testdata(testdata):
    d = draft_plan(testdata)
    assert isinstance(d, Draft)
    r = d.plan.roles
    assert r.household == "ori_hid"
    assert r.weight == "sampling_weight"  # not household_weights
    assert r.direct_ids == []
    assert {"urbrur", "roof", "walls", "water", "electcon", "relat", "sex", "age"} <= set(r.keys)
    assert set(r.keys) <= {"urbrur", "roof", "walls", "water", "electcon", "relat", "sex", "age", "hhcivil"}
    assert r.numeric_keys == ["expend", "income", "savings"]
    assert r.sensitive == []
    assert "household_weights" not in r.keys + r.numeric_keys
    # dwelling characteristics are constant within households in testdata
    assert {"urbrur", "roof", "walls", "water", "electcon"} <= set(r.household_level)
    assert not {"sex", "age", "relat"} & set(r.household_level)
    assert list(d.reasons) == testdata.columns
    assert d.reasons["ori_hid"].startswith("household id") and "1000 households" in d.reasons["ori_hid"]
    assert "another weight" in d.reasons["household_weights"]
    assert "age bands" in d.reasons["age"]
    d.plan.check_columns(testdata.columns, source=TESTDATA)


def test_survey(survey):
    d = draft_plan(survey)
    r = d.plan.roles
    assert r.direct_ids == ["head_name", "phone", "gps_lat", "gps_lon"]
    assert r.household == "hhid"
    assert r.weight == "weight"
    assert r.strata == "stratum"
    assert r.cluster == "cluster"
    assert {"camp", "origin", "hh_size", "relationship", "sex", "age", "marital"} <= set(r.keys)
    assert "line_no" not in r.keys and "line number" in d.reasons["line_no"]
    assert set(r.numeric_keys) == {"income", "assistance"}
    assert set(r.sensitive) == {"protection_incident", "legal_status"}
    assert {"camp", "origin", "hh_size", "arrival_year", "income", "assistance"} <= set(r.household_level)
    assert "sex" not in r.household_level
    assert "person name" in d.reasons["head_name"]
    assert "phone" in d.reasons["phone"]
    assert "GPS" in d.reasons["gps_lat"] and "GPS" in d.reasons["gps_lon"]
    assert set(d.reasons) == set(survey.columns)
    d.plan.check_columns(survey.columns)
    assert Plan.from_yaml(d.plan.to_yaml()) == d.plan


def test_identifiers_found_by_their_values(survey):
    """Rename the planted identifiers: GPS by range and precision, phones and e-mails by pattern."""
    f = survey.frame.rename({"gps_lat": "y", "gps_lon": "x", "phone": "contact"})
    f = f.with_columns(
        (pl.lit("user") + pl.col("hhid").cast(pl.String) + pl.lit("@example.org")).alias("reach"),
        pl.int_range(pl.len()).alias("rowref"),
    )
    f = f.with_columns(pl.format("R{}", pl.col("rowref")).alias("textref"))
    d = draft_plan(Dataset(f))
    ids = set(d.plan.roles.direct_ids)
    assert {"y", "x", "contact", "reach", "rowref", "textref", "head_name"} <= ids
    assert "GPS" in d.reasons["y"]
    assert "phone numbers in the values" in d.reasons["contact"]
    assert "e-mail" in d.reasons["reach"]
    assert "record id" in d.reasons["rowref"]
    assert "mostly unique text" in d.reasons["textref"]


def test_header_words_in_other_languages():
    n = 60
    frame = pl.DataFrame(
        {
            "id_menage": [i // 4 for i in range(n)],
            "nom_chef": [f"Nom{i // 4}" for i in range(n)],
            "ism": [f"Ism{i}" for i in range(n)],
            "telefono": [f"+999 {1000000 + i}" for i in range(n)],
            "num_passeport": [f"P{i:06d}" for i in range(n)],
            "unhcr_id": [f"{900 + i}-00C{i}" for i in range(n)],
            "progres_case_no": [f"C{i // 4}" for i in range(n)],
            "adresse": [f"{i} rue X" for i in range(n)],
            "date_of_birth": [f"19{i % 90 + 10}-01-01" for i in range(n)],
            "sexe": [1 + i % 2 for i in range(n)],
            "camp_name": [["North", "South", "East"][i % 3] for i in range(n)],
            "camp_id": [i % 3 for i in range(n)],
            "has_phone": [i % 2 for i in range(n)],
            "poids": [10.0 + (i // 4) % 5 for i in range(n)],
            "sante_mentale": [i % 3 for i in range(n)],
            "religion": [i % 4 for i in range(n)],
        }
    )
    d = draft_plan(Dataset(frame), tier="puf")
    r = d.plan.roles
    assert r.household == "id_menage"
    assert r.weight == "poids"
    assert set(r.direct_ids) == {
        "nom_chef",
        "ism",
        "telefono",
        "num_passeport",
        "unhcr_id",
        "progres_case_no",
        "adresse",
        "date_of_birth",
    }
    assert {"sexe", "camp_name", "camp_id", "religion"} <= set(r.keys)
    assert "has_phone" not in r.direct_ids
    assert "sante_mentale" in r.sensitive
    assert "also sensitive" in d.reasons["religion"]
    assert d.plan.scenario.tier == "puf" and d.plan.targets.k == 5


def test_user_missing_codes_do_not_count_as_categories():
    frame = pl.DataFrame({"hhid": [i // 3 for i in range(90)], "sex": [1, 2, 98] * 30})
    ds = Dataset(frame)
    ds.codebook.meta("sex").missing_values = [98]
    assert "2 categories" in draft_plan(ds).reasons["sex"]


def test_no_household_or_weight_is_noted():
    d = draft_plan(Dataset(pl.DataFrame({"sex": [1, 2] * 10, "age": list(range(20))})))
    assert d.plan.roles.household is None and d.plan.roles.weight is None
    assert any("household" in n for n in d.notes) and any("weight" in n for n in d.notes)
    assert d.plan.roles.keys == ["sex", "age"]


def test_bad_tier():
    with pytest.raises(ValueError):
        draft_plan(Dataset(pl.DataFrame({"a": [1]})), tier="public")  # type: ignore[arg-type]
