"""`safemicro attack link --original` scores against the right original records.

The example plan ends with ``new_ids``, which shuffles the rows: the release no longer lines
up row by row with the original. The bundle keeps an internal row map (never published);
the attack reads it. Ground truth is computed by hand here: per listed person, the released
records agreeing on every linking column (a suppressed cell is a wildcard) are the
candidates; a claim is right with probability 1/(number of candidates) when the person's own
record (found through the pipeline's row ids, independently of the attack code) is one.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from safemicro import anonymize
from safemicro.attack import LinkageEvaluator, release_identities
from safemicro.cli import app
from safemicro.errors import SafemicroError
from safemicro.examples import generate_survey
from safemicro.metadata.nada import INTERNAL_FILES
from safemicro.plan import load_plan
from safemicro.release_rows import ROW_MAP, read_row_map

PLAN = __import__("safemicro.examples", fromlist=["x"]).__path__[0] + "/survey_plan.yaml"
ON = ["camp", "sex", "relationship", "hh_size"]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("rowmap")
    survey = generate_survey(300).frame
    survey = survey.with_columns((pl.col("hhid") * 100 + pl.col("line_no")).alias("pid"))
    survey.write_csv(d / "survey.csv")
    plan = load_plan(PLAN)
    plan.roles.direct_ids.append("pid")  # the identity never reaches the release
    rel = anonymize(d / "survey.csv", plan, show_progress=False)
    rel.write(d / "suf")
    aux = survey.sample(400, seed=3).select("pid", *ON).with_columns(pl.col("hh_size").clip(upper_bound=10))
    aux.write_csv(d / "registration.csv")
    released = pl.read_csv(d / "suf" / "survey.csv")
    return d, survey, released, aux, rel


def _truth_rate(released: pl.DataFrame, aux: pl.DataFrame, true_ids: np.ndarray) -> float:
    """Expected correct claims over listed people in the release, by brute force."""
    ok = np.ones((aux.height, released.height), dtype=bool)
    for c in ON:
        r = released.get_column(c).to_numpy()
        a = aux.get_column(c).to_numpy()
        ok &= (a[:, None] == r[None, :]) | released.get_column(c).is_null().to_numpy()[None, :]
    n_cand = ok.sum(axis=1)
    own = true_ids[None, :] == aux.get_column("pid").to_numpy()[:, None]
    correct = (ok & own).any(axis=1) / np.maximum(n_cand, 1)
    return float(correct.sum() / own.any(axis=1).sum())


def test_row_map_is_internal_and_right(case):
    d, survey, released, _, rel = case
    rows = read_row_map(d / "suf")
    assert ROW_MAP in INTERNAL_FILES and ROW_MAP in (d / "suf" / "SHA256SUMS").read_text()
    assert rows is not None and len(rows) == released.height == survey.height
    assert not np.array_equal(rows, np.arange(len(rows)))  # new_ids shuffled the rows
    # the row map pairs each released row with its original: household members, sex and camp agree
    orig = survey[rows]
    for c in ("camp", "sex", "relationship"):
        assert released.get_column(c).drop_nulls().len() > 0
        same = (released.get_column(c) == orig.get_column(c)) | released.get_column(c).is_null()
        assert same.all(), c
    assert "row_map" not in json.dumps(rel.external())


def test_link_original_scores_the_truth(case):
    d, survey, released, aux, _ = case
    rows = read_row_map(d / "suf")
    truth = _truth_rate(released, aux, survey.get_column("pid").to_numpy()[rows])
    positional = _truth_rate(released, aux, survey.get_column("pid").to_numpy())
    assert abs(truth - positional) > 0.05  # scoring by position is plainly wrong here
    ids = release_identities(d / "suf", d / "survey.csv", "pid")
    api = LinkageEvaluator(released, aux, truth="pid", on=ON, release_ids=ids).evaluate(drivers=False)
    assert api.results()["true_match_rate"] == pytest.approx(truth, abs=1e-12)
    r = CliRunner().invoke(
        app,
        ["attack", "link", str(d / "suf"), str(d / "registration.csv"), "--id", "pid", "--on", ",".join(ON),
         "--original", str(d / "survey.csv"), "--json", str(d / "link.json")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((d / "link.json").read_text())["true_match_rate"] == pytest.approx(truth, abs=1e-12)


def test_link_original_refuses_unknown_correspondence(case, tmp_path):
    d, survey, released, _, _ = case
    released.write_csv(tmp_path / "loose.csv")  # a released file outside its bundle
    with pytest.raises(SafemicroError, match="unknown"):
        release_identities(tmp_path / "loose.csv", d / "survey.csv", "pid")
    survey.reverse().write_csv(tmp_path / "other.csv")  # same records, another order
    with pytest.raises(SafemicroError, match="not the file the release was made from"):
        release_identities(d / "suf", tmp_path / "other.csv", "pid")
    r = CliRunner().invoke(
        app,
        ["attack", "link", str(tmp_path / "loose.csv"), str(d / "registration.csv"), "--id", "pid",
         "--original", str(d / "survey.csv")],
    )  # fmt: skip
    assert r.exit_code != 0 and "unknown" in r.output and "Traceback" not in r.output


def test_public_use_file_scores_against_its_scientific_use_file(case):
    """A PUF is made from the SUF bundle: its row map points into the SUF's rows."""
    d = case[0]
    plan = PLAN.replace("survey_plan.yaml", "survey_plan_puf.yaml")
    anonymize(d / "suf", plan, show_progress=False).write(d / "puf")
    puf = pl.read_csv(d / "puf" / "survey.csv")
    ids = release_identities(d / "puf", d / "suf", "line_no")  # line_no: untouched by both plans
    assert ids.to_list() == puf.get_column("line_no").to_list()
    assert not np.array_equal(read_row_map(d / "puf"), np.arange(puf.height))
    with pytest.raises(SafemicroError, match="the bundle suf/"):
        release_identities(d / "puf", d / "survey.csv", "line_no")
