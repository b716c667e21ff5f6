"""The release plan: YAML <-> pydantic, errors that name the file and the field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safemicro.errors import SafemicroError
from safemicro.plan import Plan, Roles, load_plan, save_plan

GOOD = """\
roles:
  direct_ids: [name, phone]
  keys: [camp, sex, age]
  numeric_keys: [income]
  sensitive: [gbv]
  weight: wgt
  household: hhid
  strata: camp
  cluster: block
  ghost: {camp_name: camp}
  household_level: [camp, income]
scenario:
  description: nosy neighbour
  tier: puf
targets: {k: 5, max_global_risk: 0.02, max_individual_risk: 0.05}
alpha: 0.5
steps:
  - remove_direct_ids: {}
  - recode: {variable: age, breaks: [0, 15, 65, 120]}
  - local_suppression
seed: 42
"""


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(tmp_path: Path, text: str) -> SafemicroError:
    p = write(tmp_path, text)
    with pytest.raises(SafemicroError) as info:
        load_plan(p)
    assert info.value.file == str(p)
    assert str(p) in str(info.value)
    return info.value


def test_load_full_plan(tmp_path):
    plan = load_plan(write(tmp_path, GOOD))
    r = plan.roles
    assert r.direct_ids == ["name", "phone"]
    assert r.keys == ["camp", "sex", "age"]
    assert r.numeric_keys == ["income"]
    assert r.sensitive == ["gbv"]
    assert (r.weight, r.household, r.strata, r.cluster) == ("wgt", "hhid", "camp", "block")
    assert r.ghost == {"camp_name": "camp"}
    assert r.household_level == ["camp", "income"]
    assert plan.scenario.tier == "puf"
    assert plan.scenario.description == "nosy neighbour"
    assert (plan.targets.k, plan.targets.max_global_risk, plan.targets.max_individual_risk) == (5, 0.02, 0.05)
    assert plan.alpha == 0.5
    assert plan.seed == 42
    # steps are kept as written; a bare name becomes a step without parameters
    assert plan.steps == [
        {"remove_direct_ids": {}},
        {"recode": {"variable": "age", "breaks": [0, 15, 65, 120]}},
        {"local_suppression": {}},
    ]
    assert r.role_of("camp") == ["key", "strata"]
    assert r.role_of("nothing") == []


def test_defaults_from_an_empty_file(tmp_path):
    plan = load_plan(write(tmp_path, ""))
    assert plan.roles.keys == [] and plan.roles.weight is None
    assert plan.scenario.tier == "suf"
    assert plan.targets.k == 3
    assert plan.targets.max_global_risk == 0.01
    assert plan.targets.max_individual_risk is None
    assert plan.alpha == 1.0
    assert plan.steps == [] and plan.seed is None


@pytest.mark.parametrize(
    "text, field, words",
    [
        ("roles: {kyes: [a]}\n", "roles.kyes", "unknown field"),
        ("rolse: {keys: [a]}\n", "rolse", "unknown field"),
        ("targets: {k: 3, max_risk: 0.1}\n", "targets.max_risk", "unknown field"),
        ("scenario: {tier: public}\n", "scenario.tier", "'puf'"),
        ("targets: {k: many}\n", "targets.k", "integer"),
        ("targets: {k: 0}\n", "targets.k", "greater than or equal to 1"),
        ("targets: {max_global_risk: 1.5}\n", "targets.max_global_risk", "less than or equal to 1"),
        ("alpha: 2\n", "alpha", "less than or equal to 1"),
        ("roles: {keys: [sex, age, sex]}\n", "roles.keys", "'sex' is listed twice in keys"),
        ("roles: {direct_ids: [n, n]}\n", "roles.direct_ids", "'n' is listed twice"),
        ("roles: {keys: [a], direct_ids: [a]}\n", "roles", "'a' cannot be both direct_id and key"),
        ("roles: {keys: [w], weight: w}\n", "roles", "'w' cannot be both key and weight"),
        ("roles: {keys: [h], household: h}\n", "roles", "'h' cannot be both key and household"),
        ("roles: {keys: [x], numeric_keys: [x]}\n", "roles", "'x' cannot be both key and numeric_key"),
        ("roles: {keys: [x], sensitive: [x]}\n", "roles", "'x' cannot be both key and sensitive"),
        ("roles: {weight: w, strata: w}\n", "roles", "'w' cannot be both weight and strata"),
        ("roles: {keys: [a], ghost: {g: b}}\n", "roles", "ghost variable 'g' is linked to 'b', which is not a key"),
        ("roles: {keys: [a], ghost: {a: a}}\n", "roles", "'a' cannot be both key and ghost"),
        ("roles: {keys: [a], household: h, household_level: [b]}\n", "roles", "'b', which is not a key"),
        ("roles: {keys: [a], household_level: [a]}\n", "roles", "household id"),
        ("steps: [{recode: {a: 1}, topcode: {b: 2}}]\n", "steps", "single-key mapping"),
        ("steps: [{recode: 5}]\n", "steps", "parameters must be a mapping"),
        ("steps: {recode: {}}\n", "steps", "must be a list"),
        ("seed: abc\n", "seed", "integer"),
    ],
)
def test_invalid_plans_name_the_field(tmp_path, text, field, words):
    err = error_of(tmp_path, text)
    assert f"{field}:" in err.message
    assert words in err.message
    assert field in err.fields


def test_several_errors_are_all_reported(tmp_path):
    err = error_of(tmp_path, "roles: {kyes: [a]}\ntargets: {k: x}\n")
    assert err.fields == ["roles.kyes", "targets.k"]


def test_compatible_roles_are_accepted():
    roles = Roles(keys=["camp", "block"], strata="camp", cluster="block", sensitive=["s"], ghost={"s": "camp"})
    assert roles.role_of("camp") == ["key", "strata"]
    assert roles.role_of("s") == ["sensitive", "ghost"]


def test_invalid_yaml_reports_the_line(tmp_path):
    err = error_of(tmp_path, "roles:\n  keys: [a, b\n  weight: w\n")
    assert "invalid YAML at line 3" in err.message


def test_bad_indentation_reports_the_line(tmp_path):
    err = error_of(tmp_path, "roles:\n  keys: [a]\n   weight: w\n")
    assert "invalid YAML at line 3" in err.message


def test_a_plan_must_be_a_mapping(tmp_path):
    err = error_of(tmp_path, "- keys\n- sex\n")
    assert "mapping" in err.message


def test_missing_file(tmp_path):
    with pytest.raises(SafemicroError, match="plan file not found") as info:
        load_plan(tmp_path / "nope.yaml")
    assert info.value.file == str(tmp_path / "nope.yaml")


def test_yaml_round_trip_and_atomic_save(tmp_path):
    plan = load_plan(write(tmp_path, GOOD))
    again = Plan.from_yaml(plan.to_yaml())
    assert again == plan
    out = tmp_path / "saved.yaml"
    out.write_text("old content", encoding="utf-8")
    save_plan(plan, out)
    assert load_plan(out) == plan
    assert out.read_text(encoding="utf-8") == plan.to_yaml()
    assert sorted(os.listdir(tmp_path)) == ["plan.yaml", "saved.yaml"]  # no temporary file left


def test_to_yaml_keeps_step_parameters_exactly():
    plan = Plan.from_yaml("steps:\n  - recode: {variable: origin, map: {6: 9, 7: 9}}\n")
    text = plan.to_yaml()
    assert Plan.from_yaml(text).steps == [{"recode": {"variable": "origin", "map": {6: 9, 7: 9}}}]
    assert text.index("roles:") < text.index("scenario:") < text.index("targets:") < text.index("steps:")


def test_assignment_is_validated():
    plan = Plan()
    with pytest.raises(Exception):
        plan.alpha = 3.0


def test_check_columns_names_the_unknown_column_and_its_role(tmp_path):
    plan = load_plan(write(tmp_path, GOOD))
    cols = ["name", "phone", "camp", "sex", "age", "income", "gbv", "wgt", "hhid", "block", "camp_name"]
    plan.check_columns(cols, source="survey.sav")
    with pytest.raises(SafemicroError) as info:
        plan.check_columns([c for c in cols if c != "wgt"] + ["wgt2"], source="survey.sav")
    err = info.value
    assert err.column == "wgt" and err.file == "survey.sav"
    assert "roles.weight" in err.message and "did you mean 'wgt2'" in err.message
    with pytest.raises(SafemicroError) as info:
        plan.check_columns([c for c in cols if c != "age"])
    assert info.value.column == "age" and "roles.keys" in info.value.message
    assert info.value.file is None
    with pytest.raises(SafemicroError) as info:
        plan.check_columns([c for c in cols if c != "camp_name"])
    assert info.value.column == "camp_name" and "roles.ghost" in info.value.message


def test_variables_lists_each_name_once(tmp_path):
    plan = load_plan(write(tmp_path, GOOD))
    names = plan.variables()
    assert len(names) == len(set(names))
    assert set(names) == {"name", "phone", "camp", "sex", "age", "income", "gbv", "wgt", "hhid", "block", "camp_name"}


names = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), unique=True, max_size=12)


@settings(max_examples=60, deadline=None)
@given(names, st.integers(1, 10), st.floats(0, 1), st.sampled_from(["puf", "suf", "enclave"]))
def test_round_trip_property(vars_, k, alpha, tier):
    third = len(vars_) // 3
    plan = Plan.model_validate(
        {
            "roles": {"keys": vars_[:third], "sensitive": vars_[third : 2 * third], "direct_ids": vars_[2 * third :]},
            "targets": {"k": k},
            "alpha": alpha,
            "scenario": {"tier": tier},
        }
    )
    assert Plan.from_yaml(plan.to_yaml()) == plan
