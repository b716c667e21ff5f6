"""Direct identifiers found by header word (many languages) and by content, whatever their
number of distinct values; plan field typos get a "did you mean" naming the file (issue 14, item 17)."""

from __future__ import annotations

import polars as pl
import pytest

from safemicro.draft import draft_plan
from safemicro.io.dataset import Dataset

N = 200
FIRST = ["Amina", "Yusuf", "Grace", "Jean", "Fatuma", "Omar", "Maria", "Ahmed"]
LAST = ["Hassan", "Mukamana", "Okello", "Diallo", "Abdi", "Garcia", "Nkurunziza", "Ali"]


def _frame(**extra) -> Dataset:
    base = {
        "hhid": [i // 4 for i in range(N)],
        "sex": [1 + i % 2 for i in range(N)],
        "region": [i % 3 for i in range(N)],
        "has_phone": [i % 2 for i in range(N)],
        "answer": [["Yes", "No", "Don't know"][i % 3] for i in range(N)],
        "camp_name": [["Kakuma Camp", "Dadaab Camp", "Kalobeyei Settlement"][i % 3] for i in range(N)],
    }
    return Dataset(pl.DataFrame(base | extra))


@pytest.mark.parametrize("n_distinct", [4, 80])
def test_name_column_is_a_direct_identifier_whatever_its_cardinality(n_distinct):
    names = [f"{FIRST[i % 8]} {LAST[(i // 8) % 8]}" for i in range(n_distinct)]
    d = draft_plan(_frame(resp_name=[names[i % n_distinct] for i in range(N)]))
    assert "resp_name" in d.plan.roles.direct_ids, d.reasons["resp_name"]
    assert "resp_name" not in d.plan.roles.keys
    assert "person name" in d.reasons["resp_name"]


@pytest.mark.parametrize("header", ["nombre", "nom", "jina", "magac", "isim", "nome", "vorname"])
def test_name_headers_in_many_languages(header):
    d = draft_plan(_frame(**{header: [FIRST[i % 4] for i in range(N)]}))
    assert header in d.plan.roles.direct_ids, d.reasons[header]


def test_identifiers_found_by_content_without_a_telling_header():
    d = draft_plan(
        _frame(
            col_a=[f"{FIRST[i % 8]} {LAST[(i // 8) % 8]}" for i in range(N)],
            col_b=[f"+254 7{i % 5:02d} 123 45{i % 5}" for i in range(N)],
            col_c=[f"user{i % 6}@example.org" for i in range(N)],
            col_d=[f"ID-{1000000 + i}" for i in range(N)],
        )
    )
    r = d.plan.roles
    assert {"col_a", "col_b", "col_c", "col_d"} <= set(r.direct_ids), d.reasons
    assert "personal names in the values" in d.reasons["col_a"]
    assert "phone numbers" in d.reasons["col_b"] and "e-mail" in d.reasons["col_c"]
    assert "ID numbers" in d.reasons["col_d"]


def test_flags_answers_places_and_dates_are_not_identifiers():
    d = draft_plan(_frame(interview_date=[f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(N)]))
    r = d.plan.roles
    assert not {"has_phone", "answer", "camp_name", "sex", "region", "interview_date"} & set(r.direct_ids), d.reasons


# -- plan typos ---------------------------------------------------------------------------------

from safemicro.errors import SafemicroError  # noqa: E402
from safemicro.plan import load_plan  # noqa: E402


@pytest.mark.parametrize(
    "text, expect",
    [
        ("roles:\n  keyz: [sex]\n", "roles.keyz: unknown field (did you mean 'keys'?)"),
        (
            "targets:\n  max_globl_risk: 0.01\n",
            "targets.max_globl_risk: unknown field (did you mean 'max_global_risk'?)",
        ),
        ("scenaro:\n  tier: suf\n", "scenaro: unknown field (did you mean 'scenario'?)"),
        (
            "utility:\n  indicators:\n    - {variable: x, kind: mean, lable: X}\n",
            "utility.indicators[0].lable: unknown field (did you mean 'label'?)",
        ),
    ],
)
def test_plan_field_typo_gets_did_you_mean_and_names_the_file(tmp_path, text, expect):
    path = tmp_path / "myplan.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SafemicroError) as err:
        load_plan(path)
    assert expect in str(err.value) and str(path) in str(err.value)


def test_step_typos_name_the_plan_file(tmp_path):
    from safemicro.release import anonymize

    data = _frame().frame
    path = tmp_path / "steps.yaml"
    path.write_text("roles: {keys: [sex, region]}\nsteps:\n  - recod: {variable: sex}\n", encoding="utf-8")
    with pytest.raises(SafemicroError) as err:
        anonymize(data, path)
    assert "did you mean 'recode'?" in str(err.value) and f"file {path}" in str(err.value)
    path.write_text("roles: {keys: [sex, region]}\nsteps:\n  - topcode: {variable: sex, valu: 1}\n", encoding="utf-8")
    with pytest.raises(SafemicroError) as err:
        anonymize(data, path)
    assert "valu: unknown parameter (did you mean 'value'?)" in str(err.value) and f"file {path}" in str(err.value)
