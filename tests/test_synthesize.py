"""``safemicro.synthesize`` and ``safemicro synthesize``: model choice, safeguards, files.

Each safeguard is tested with a deliberately copying synthesizer: the test fails when the
safeguard is switched off.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import SDC_DATA
from safemicro import io, synthesize
from safemicro.cli import app
from safemicro.examples.survey import generate_survey
from safemicro.io import Dataset
from safemicro.methods.base import take_rows
from safemicro.synth.safeguards import replicated_uniques

TESTDATA = SDC_DATA / "testdata.csv"
KEYS = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


class Copier:
    """A 'synthesizer' that hands back real records: what the safeguards must stop."""

    def fit(self, ds: Dataset, *, seed=None):
        self.ds = ds
        return self

    def sample(self, n=None, *, seed=None):
        rng = np.random.default_rng(seed)
        return take_rows(self.ds, rng.integers(0, self.ds.n, size=n or self.ds.n))


@pytest.fixture(scope="module")
def small() -> Dataset:
    frame = pl.read_csv(TESTDATA).select([*KEYS, "age", "income", "ori_hid"]).head(1500)
    return Dataset(frame)


def test_replicated_uniques_are_replaced_and_the_test_fails_without_the_safeguard(small):
    unsafe = synthesize(small, synthesizer=Copier(), keys=KEYS, seed=1, check_copies=False)
    assert replicated_uniques(small.frame, unsafe.dataset.frame, KEYS).sum() > 0
    safe = synthesize(small, synthesizer=Copier(), keys=KEYS, seed=1)
    assert replicated_uniques(small.frame, safe.dataset.frame, KEYS).sum() == 0
    guard = safe.report["safeguards"]["replicated_uniques"]
    assert guard["found"] > 0 and guard["units_replaced"] + guard["units_dropped"] > 0


def test_copying_fails_the_q_delta_check_and_cart_passes(small):
    copied = synthesize(small, synthesizer=Copier(), keys=KEYS, seed=2)
    assert copied.report["safeguards"]["q_delta"]["passed"] is False
    assert any("Q_δ" in note for note in copied.report["notes"])
    assert copied.report["safeguards"]["exact_matches"]["synth_in_train"] > 0.9
    cart = synthesize(small.with_frame(small.frame.drop("ori_hid")), keys=KEYS, seed=2)
    assert cart.report["method"] == "cart"
    assert cart.report["safeguards"]["exact_matches"]["synth_in_train"] < 0.05


def test_cart_output_keeps_columns_types_and_is_deterministic(small):
    a = synthesize(small, seed=7)
    b = synthesize(small, seed=7)
    assert a.dataset.frame.equals(b.dataset.frame)
    assert a.dataset.frame.schema == small.frame.schema
    assert a.dataset.n == small.n
    assert a.report["seed"] == 7


def test_household_mode_keeps_households_consistent():
    survey = generate_survey(n_households=300, seed=5)
    survey = survey.with_frame(survey.frame.drop(["head_name", "phone", "gps_lat", "gps_lon"]))
    result = synthesize(survey, household="hhid", keys=["camp", "sex", "age"], seed=3)
    frame = result.dataset.frame
    assert result.report["method"] == "household-cart"
    per_household = frame.group_by("hhid").agg(
        pl.col("camp").n_unique().alias("camps"), (pl.col("relationship") == 1).sum().alias("heads")
    )
    assert per_household["camps"].max() == 1
    assert (per_household["heads"] == 1).all()
    assert replicated_uniques(survey.frame, frame, ["camp", "sex", "age"]).sum() == 0
    assert result.dataset.codebook.meta("camp").value_labels == survey.codebook.meta("camp").value_labels


def test_dp_mode_reports_its_budget(small):
    result = synthesize(small.with_frame(small.frame.drop("ori_hid")), epsilon=5.0, seed=4)
    assert result.report["method"] == "mst"
    assert result.report["privacy"]["epsilon"] == pytest.approx(5.0)
    assert result.dataset.frame.columns == [c for c in small.frame.columns if c != "ori_hid"]


def test_cli_writes_the_file_and_the_report(tmp_path):
    survey = generate_survey(n_households=200, seed=9)
    data = tmp_path / "survey.dta"
    with pytest.warns(UserWarning):
        io.write(survey, data)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "roles:\n  direct_ids: [head_name, phone, gps_lat, gps_lon]\n  keys: [camp, sex, age]\n"
        "  household: hhid\n  household_level: [camp]\n"
    )
    out = tmp_path / "synthetic.dta"
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        app, ["synthesize", str(data), "--out", str(out), "--plan", str(plan), "--seed", "1", "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    synthetic = io.read(out)
    assert "head_name" not in synthetic.columns
    assert synthetic.codebook.meta("sex").value_labels == {1: "Male", 2: "Female"}
    assert json.loads(report.read_text())["seed"] == 1


def test_cli_bad_input_is_one_line(tmp_path):
    result = CliRunner().invoke(
        app, ["synthesize", str(TESTDATA), "--out", str(tmp_path / "s.csv"), "--household", "nope"]
    )
    assert result.exit_code == 2
    assert "nope" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s.csv").exists()


def test_cli_evaluate_writes_json_and_html(tmp_path):
    frame = pl.read_csv(TESTDATA).select([*KEYS, "age", "income"])
    frame.head(1200).write_csv(tmp_path / "train.csv")
    frame.tail(400).write_csv(tmp_path / "holdout.csv")
    frame.slice(1200, 1200).write_csv(tmp_path / "other.csv")  # real rows standing in for synthetic
    args = [
        "evaluate",
        str(tmp_path / "train.csv"),
        str(tmp_path / "other.csv"),
        "--holdout",
        str(tmp_path / "holdout.csv"),
        "--keys",
        ",".join(KEYS),
        "--json",
        str(tmp_path / "e.json"),
        "--html",
        str(tmp_path / "e.html"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "e.json").read_text())
    assert evaluation["utility"]["quality"]["score"] > 0.9
    assert "<svg" in (tmp_path / "e.html").read_text()


def test_direct_identifiers_are_never_synthesized_even_without_a_plan():
    survey = generate_survey(n_households=120, seed=2)
    result = synthesize(survey, household="hhid", keys=["camp", "sex"], seed=1)
    for name in ("head_name", "phone", "gps_lat", "gps_lon"):
        assert name not in result.dataset.columns
    assert any("direct identifiers" in note for note in result.report["notes"])


def test_cli_keys_option_drives_the_replicated_uniques_safeguard(tmp_path):
    data = tmp_path / "small.csv"
    pl.read_csv(TESTDATA).select([*KEYS, "age"]).head(1000).write_csv(data)
    report = tmp_path / "r.json"
    args = [
        "synthesize",
        str(data),
        "--out",
        str(tmp_path / "s.csv"),
        "--keys",
        "urbrur,sex,age",
        "--seed",
        "2",
        "--report",
        str(report),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["safeguards"]["replicated_uniques"]["keys"] == ["urbrur", "sex", "age"]
    synthetic = pl.read_csv(tmp_path / "s.csv")
    assert replicated_uniques(pl.read_csv(data), synthetic, ["urbrur", "sex", "age"]).sum() == 0
