"""A numeric variable with a few labelled codes (income with −9 "Refused") is numeric with
special codes in synthesis, numeric keys, utility and evaluation, not categorical: files
written by pyreadstat as SPSS and Stata would write them, run through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyreadstat
import pytest
from typer.testing import CliRunner

from safemicro import io
from safemicro.cli import app
from safemicro.io.dataset import VariableMeta
from safemicro.io.special_codes import numeric_part, special_codes

LABELS = {"income": {-9: "Refused"}, "age": {99: "Don't know"}, "sex": {1: "Male", 2: "Female"}}


def survey_frame(n: int = 400, seed: int = 1) -> pd.DataFrame:
    """Households with income (−9 Refused, ~5 %), age (99 Don't know), sex and region."""
    rng = np.random.default_rng(seed)
    income = np.round(np.exp(rng.normal(8, 1, n)))
    income[rng.random(n) < 0.05] = -9
    age = rng.integers(15, 90, n).astype(float)
    age[rng.random(n) < 0.03] = 99
    return pd.DataFrame(
        {
            "sex": rng.integers(1, 3, n).astype(float),
            "region": rng.integers(1, 6, n).astype(float),
            "age": age,
            "income": income,
        }
    )


def curator_sav(path: Path) -> Path:
    """The survey as SPSS holds it: value labels and user-missing codes −9 and 99."""
    pyreadstat.write_sav(
        survey_frame(),
        str(path),
        file_label="Household survey 2024",
        column_labels={"income": "Monthly household income in local currency", "age": "Age in completed years"},
        variable_value_labels=LABELS,
        missing_ranges={"income": [-9], "age": [99]},
        variable_measure={"income": "scale", "age": "scale", "sex": "nominal", "region": "nominal"},
    )
    return path


def curator_dta(path: Path) -> Path:
    """The same survey in Stata: labels, but −9 and 99 are plain values (no user-missing)."""
    pyreadstat.write_dta(survey_frame(), str(path), variable_value_labels=LABELS)
    return path


def _cli(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_which_columns_are_numeric_with_codes(tmp_path):
    ds = io.read(curator_sav(tmp_path / "s.sav"))
    assert ds.special_codes("income") == [-9.0] and ds.special_codes("age") == [99.0]
    assert ds.special_codes("sex") is None and ds.special_codes("region") is None
    income = ds.numeric_column("income")
    assert income.null_count() == int((ds.frame["income"] == -9).sum()) and income.min() > 0
    # a code list (labels on most values) stays categorical; few distinct numbers too
    codes = pl.Series("district", list(range(1, 41)) * 3)
    assert special_codes(codes, VariableMeta("district", value_labels={i: f"D{i}" for i in range(1, 41)})) is None
    assert special_codes(pl.Series("x", [-9, *range(1, 16)]), VariableMeta("x", value_labels={-9: "Refused"})) is None
    # Stata has no measure level: its reader guesses "nominal" for a labelled variable
    assert special_codes(
        pl.Series("x", range(100)), VariableMeta("x", value_labels={0: "none"}, measure="nominal")
    ) == [0]
    assert numeric_part(pl.Series("x", [1, 2]), VariableMeta("x")).to_list() == [1.0, 2.0]


@pytest.mark.parametrize("ext", [".sav", ".csv"])
def test_cli_synthesize_keeps_income_numeric_with_its_code(ext, tmp_path):
    """From SPSS the synthetic income has as few missing values and refusals as the input
    (it had 64.5 % missing against 4.4 % before), as it has from the same data as CSV."""
    sav = curator_sav(tmp_path / "survey.sav")
    data = sav
    if ext == ".csv":
        data = tmp_path / "survey.csv"
        io.write(io.read(sav).frame, data)
    out = tmp_path / "synthetic.sav"
    _cli("synthesize", data, "--out", out, "--seed", "5")
    real, syn = io.read(sav).frame, io.read(out).frame
    assert syn["income"].null_count() == 0
    share = lambda f, v: float((f["income"] == v).mean())
    assert abs(share(syn, -9) - share(real, -9)) < 0.03
    positive = syn["income"].filter(syn["income"] > 0)
    assert positive.n_unique() > 150 and positive.len() > 0.9 * syn.height
    assert 0.5 < positive.median() / real["income"].filter(real["income"] > 0).median() < 2
    assert abs(float((syn["age"] == 99).mean()) - float((real["age"] == 99).mean())) < 0.03
    if ext == ".sav":
        back = io.read(out).codebook
        assert back.meta("income").value_labels == {-9: "Refused"} and back.meta("income").missing_values == [-9]


def test_cli_numeric_key_with_codes_in_risk_anonymization_and_utility(tmp_path):
    """Stata keeps −9 as a plain labelled value: the numeric-key risk, MDAV and the
    utility tables must still read it as a code, not as an income of −9."""
    data = curator_dta(tmp_path / "survey.dta")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "roles:\n  keys: [sex, region]\n  numeric_keys: [income]\n"
        "targets: {k: 2}\nsteps:\n  - microaggregation: {k: 3}\n",
        encoding="utf-8",
    )
    _cli("assess", data, "--plan", plan, "--json", tmp_path / "risk.json")
    nr = json.loads((tmp_path / "risk.json").read_text(encoding="utf-8"))["numeric_risk"]["variables"]["income"]
    real = io.read(data).frame
    refused = int((real["income"] == -9).sum())
    assert nr["min"] > 0 and nr["n_missing"] == refused and nr["special_codes"] == [-9]

    _cli("anonymize", data, "--plan", plan, "--out", tmp_path / "bundle")
    released = io.read(tmp_path / "bundle" / "survey.dta")
    assert int((released.frame["income"] == -9).sum()) == refused  # codes kept, never averaged
    assert released.codebook.meta("income").value_labels == {-9: "Refused"}
    assert released.numeric_column("income").min() > 0
    report = json.loads((tmp_path / "bundle" / "report.json").read_text(encoding="utf-8"))
    rows = {r["variable"]: r for r in report["utility"]["variables"]}
    assert rows["income"]["kind"] == "numeric" and rows["age"]["kind"] == "numeric"
    assert rows["age"]["mean_before"] < 60  # 99 "Don't know" is not an age
    assert real.height - refused - 3 <= rows["income"]["changed"] <= real.height - refused


def test_cli_evaluate_reads_income_as_a_number(tmp_path):
    sav = curator_sav(tmp_path / "survey.sav")
    out = tmp_path / "synthetic.csv"
    _cli("synthesize", sav, "--out", out, "--seed", "2")
    _cli("evaluate", sav, out, "--json", tmp_path / "eval.json", "--n-attacks", "0")
    result = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))
    kinds = result["data"]["kinds"]
    assert kinds["income"] == "numeric" and kinds["age"] == "numeric" and kinds["sex"] == "categorical"
    income = {c["column"]: c for c in result["utility"]["columns"]}["income"]
    assert income["metric"] == "KSComplement" and income["score"] > 0.8
    assert abs(income["missing_synth"] - income["missing_real"]) < 0.03  # the −9 share


def test_synthesis_schema_models_codes_as_states(tmp_path):
    from safemicro.synth.schema import infer_schema, state_name

    ds = io.read(curator_sav(tmp_path / "s.sav"))
    schema = infer_schema(ds)
    income, age, sex = schema["income"], schema["age"], schema["sex"]
    assert income.kind == "numeric" and income.special_values == [-9.0] and income.integral
    assert age.kind == "numeric" and age.special_values == [99.0]
    assert sex.kind == "categorical"
    encoded = schema.encode(ds.frame)
    assert encoded[state_name("income")].to_list().count(1) == int((ds.frame["income"] == -9).sum())
    assert schema.decode(encoded).equals(ds.frame)
