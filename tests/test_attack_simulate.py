"""The simulation study on the example survey, the household attack, reports and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from safemicro.attack.report import render_attack_html, write_attack_outputs
from safemicro.attack.simulate import PERSON, default_releases, draw_sample, household_attack, simulate
from safemicro.examples.survey import generate_survey

KEYS = ["camp", "origin", "hh_size", "relationship", "sex", "age"]


@pytest.fixture(scope="module")
def study() -> dict:
    return simulate(n_households=1500, sample_fraction=0.2, seed=3)


def _by_name(study):
    return {e["name"]: e for e in study["releases"]}


def test_raw_release_matches_population_frequencies(study):
    """Raw release, full list, no errors: the measured expected re-identifications are
    Σ 1/F over released records, F the population count of the record's key."""
    pop = generate_survey(n_households=1500, seed=3).frame.with_row_index(PERSON)
    sample = draw_sample(
        generate_survey(n_households=1500, seed=3).with_frame(pop),
        fraction=0.2,
        household="hhid",
        strata="stratum",
        rng=np.random.default_rng(3),
        weight="weight",
    ).frame
    F = pop.group_by(KEYS).len()
    f = sample.join(F, on=KEYS, how="left").get_column("len").to_numpy()
    raw = _by_name(study)["raw"]["measured"]
    assert _by_name(study)["raw"]["n_released"] == sample.height
    assert raw["expected_reidentifications"] == pytest.approx((1.0 / f).sum())
    assert raw["records_with_one_candidate"] == int((f == 1).sum())
    assert raw["records_with_one_candidate_correct"] == raw["records_with_one_candidate"]


def test_promised_against_measured(study):
    r = _by_name(study)
    rate = {k: v["measured"]["reidentification_rate"] for k, v in r.items()}
    assert rate["raw"] > rate["k=3"] > rate["k=5"] > 0
    # k=3 holds in the sample, yet people are re-identified, more than the frequency model promises
    assert r["k=3"]["frequency"]["sample_uniques"] == 0
    assert r["k=3"]["frequency"]["k_violations"]["3"] == 0
    assert rate["k=3"] > r["k=3"]["frequency"]["global_risk_percent"] / 100
    # PRAM: single-candidate claims are no longer always right
    p = r["PRAM"]["measured"]
    assert p["records_with_one_candidate_correct"] < p["records_with_one_candidate"]
    assert r["PRAM"]["frequency"]["perturbative"]
    # household composition identifies nearly every raw household
    assert r["raw"]["households"]["share_of_released_households_reidentified"] > 0.95
    assert r["k=5"]["households"]["share_of_released_households_reidentified"] < 1.0
    json.dumps(study, allow_nan=False)


def test_intruder_errors_and_coverage_lower_success():
    plans = {"raw": default_releases()["raw"]}
    clean = simulate(n_households=600, sample_fraction=0.2, releases=plans, seed=4, households=False)
    noisy = simulate(
        n_households=600, sample_fraction=0.2, releases=plans, seed=4, households=False, error_rate=0.3, coverage=0.5
    )
    a, b = clean["releases"][0]["measured"], noisy["releases"][0]["measured"]
    assert b["n_listed"] < a["n_listed"]
    assert b["reidentification_rate"] < 0.7 * a["reidentification_rate"]


def test_household_attack_by_hand():
    release = pl.DataFrame(
        {"hh": [1, 1, 2, 2, 3], "pid": [10, 11, 20, 21, 30], "sex": [1, 2, 1, 2, 1], "age": [30, None, 30, 5, 70]}
    )
    listed = pl.DataFrame(
        {
            "lhh": [100, 100, 200, 200, 300, 400],
            "pid": [10, 11, 20, 21, 30, 40],
            "sex": [1, 2, 1, 2, 1, 1],
            "age": [30, 28, 30, 5, 70, 70],
        }
    )
    r = household_attack(release, listed, ["sex", "age"], household="hh", intruder_household="lhh", truth="pid")
    # listed 100 (m 30, f 28) fits released 1 only (its woman's age suppressed; 2 has a girl of 5);
    # 200 (m 30, f 5) fits 1 (wildcard) and 2; 300 and 400 (a man of 70 each) fit 3 alone —
    # 400 is not in the release, so its single candidate is a wrong claim
    assert r["n_listed_households"] == 4 and r["n_listed_in_release"] == 3
    assert r["expected_correct_households"] == pytest.approx(1 + 0.5 + 1)
    assert r["reidentified_households"] == 3 and r["reidentified_households_correct"] == 2
    assert r["persons_in_reidentified_households"] == 3


def test_report_files(study, tmp_path):
    html = render_attack_html(study)
    assert html.count("<svg") == 3 and "Promised against measured" in html
    assert "<script" not in html and "<link" not in html and 'src="http' not in html  # self-contained
    paths = write_attack_outputs(study, json_path=tmp_path / "s.json", html_path=tmp_path / "s.html")
    assert json.loads(paths[0].read_text())["kind"] == "simulation"
    assert render_attack_html(study) == html  # same result, same bytes


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("safemicro")
    return subprocess.run([str(exe), "attack", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_link_mosaic_and_bad_input(tmp_path, testdata):
    people = testdata.with_row_index("pid")
    people.write_csv(tmp_path / "release.csv")
    people.select("pid", "urbrur", "roof", "walls", "water").write_csv(tmp_path / "a.csv")
    people.select("pid", "electcon", "relat", "sex").write_csv(tmp_path / "b.csv")
    r = _run(
        "link", "release.csv", "a.csv", "b.csv", "--id", "pid", "--json", "out.json", "--html", "out.html", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "out.json").read_text())
    assert res["kind"] == "linkage" and res["reidentified_correct"] >= 157
    assert (tmp_path / "out.html").read_text().count("<svg") == 3
    # auxiliary column missing from the release: one line, exit 2, nothing written
    people.select("pid", "urbrur", "age").rename({"age": "age_years"}).write_csv(tmp_path / "c.csv")
    people.drop("urbrur").write_csv(tmp_path / "rel2.csv")
    r = _run("link", "rel2.csv", "c.csv", "--id", "pid", "--on", "urbrur", "--json", "x.json", cwd=tmp_path)
    assert r.returncode == 2 and "urbrur" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_cli_simulate_and_attacks(tmp_path, testdata):
    from typer.testing import CliRunner

    from safemicro.cli import app

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "attack",
            "simulate",
            "--households",
            "400",
            "--fraction",
            "0.25",
            "--json",
            str(tmp_path / "sim.json"),
            "--html",
            str(tmp_path / "sim.html"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "measured re-identification" in res.output
    assert len(json.loads((tmp_path / "sim.json").read_text())["releases"]) == 4
    a, b = testdata[:2000], testdata[2000:3000]
    a.write_csv(tmp_path / "ori.csv")
    b.write_csv(tmp_path / "ctl.csv")
    testdata[3000:].write_csv(tmp_path / "rel.csv")
    res = runner.invoke(
        app,
        [
            "attack",
            "inference",
            str(tmp_path / "ori.csv"),
            str(tmp_path / "rel.csv"),
            "--control",
            str(tmp_path / "ctl.csv"),
            "--known",
            "urbrur,sex,age",
            "--secret",
            "hhcivil",
            "--n-attacks",
            "100",
            "--html",
            str(tmp_path / "inf.html"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "inference of hhcivil" in res.output and (tmp_path / "inf.html").exists()
    res = runner.invoke(
        app,
        [
            "attack",
            "inference",
            str(tmp_path / "ori.csv"),
            str(tmp_path / "rel.csv"),
            "--known",
            "urbrur,nope",
            "--secret",
            "hhcivil",
        ],
    )
    assert res.exit_code == 2
