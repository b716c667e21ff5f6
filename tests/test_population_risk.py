"""k-map and δ-presence against an explicit population (safemicro.risk.population).

References: the definitions of k-map (El Emam & Dankar 2008) and δ-presence (Nergiz,
Atzori & Clifton 2007, as ARX's δ-presence criterion: δ = |release ∩ class| / |class|)
worked by hand on a 10-person population, and a brute-force count (every sample row
compared with every population row) on random data.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from safemicro.assess import assess
from safemicro.cli import app
from safemicro.risk.population import population_frequencies, population_risk

POP = pl.DataFrame(
    {
        "sex": [1] * 4 + [1] * 3 + [2] * 2 + [2],
        "region": ["A"] * 4 + ["B"] * 3 + ["A"] * 2 + ["B"],
    }
)
# (1,A)x2, (1,B), (2,A), (NA,B) -- a suppressed sex matches both sexes -- and (3,A), in no population record
SAMPLE = pl.DataFrame({"sex": [1, 1, 1, 2, None, 3], "region": ["A", "A", "B", "A", "B", "A"]})


def test_hand_checked_population():
    summary, rec = population_risk(SAMPLE, POP, ["sex", "region"], k=3, delta_max=0.4)
    # F by hand: (1,A)=4, (1,B)=3, (2,A)=2, (·,B)=3+1=4, (3,A)=0
    assert rec["pop_Fk"].tolist() == [4, 4, 3, 2, 4, 0]
    # δ = f/F: 2/4, 2/4, 1/3, 1/2, 1/4, undefined
    assert np.allclose(rec["delta"][:5], [0.5, 0.5, 1 / 3, 0.5, 0.25]) and np.isnan(rec["delta"][5])
    assert summary["k_map"] == 2
    assert summary["n_records_below_k"] == 1  # the (2,A) record
    assert summary["n_records_not_in_population"] == 1
    dp = summary["delta_presence"]
    assert dp["observed_min"] == pytest.approx(0.25) and dp["observed_max"] == pytest.approx(0.5)
    assert dp["n_records_outside"] == 3  # (1,A) twice and (2,A): δ = 0.5 > 0.4


def test_frequencies_equal_brute_force():
    rng = np.random.default_rng(4)
    pop = pl.DataFrame({"a": rng.integers(0, 4, 3000), "b": rng.integers(0, 3, 3000), "c": rng.integers(0, 5, 3000)})
    s = pop.sample(400, seed=1).to_numpy().astype(float)
    s[rng.random(s.shape) < 0.1] = np.nan  # suppressed cells: wildcards
    sample = pl.DataFrame(s, schema=["a", "b", "c"], orient="row").fill_nan(None)
    P = pop.to_numpy().astype(float)
    brute = ((P[None, :, :] == s[:, None, :]) | np.isnan(s[:, None, :])).all(axis=2).sum(axis=1)
    assert population_frequencies(sample, pop, ["a", "b", "c"]).tolist() == brute.tolist()


def test_assess_and_cli_report_population(tmp_path):
    data, pop = tmp_path / "survey.csv", tmp_path / "population.csv"
    SAMPLE.head(5).write_csv(data)
    POP.write_csv(pop)
    res = assess(pl.read_csv(data), keys=["sex", "region"], targets={"k": 3, "delta_max": 0.4}, population=pop)
    section = res.summary["population"]
    assert section["k_map"] == 2 and section["n_population"] == 10
    assert res.records.get_column("pop_Fk").to_list() == [4, 4, 3, 2, 4]
    checks = {c["target"]: c for c in res.summary["checks"]}
    assert checks["k-map = 3"]["value"] == 1 and not checks["k-map = 3"]["passed"]
    assert checks["δ-presence in [0, 0.4]"]["value"] == 3
    plan = tmp_path / "plan.yaml"
    plan.write_text("roles:\n  keys: [sex, region]\ntargets:\n  k: 2\npopulation: population.csv\n")
    out = CliRunner().invoke(
        app,
        [
            "assess",
            str(data),
            "--plan",
            str(plan),
            "--json",
            str(tmp_path / "r.json"),
            "--html",
            str(tmp_path / "r.html"),
        ],
    )
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["population"]["k_map"] == 2 and summary["population"]["n_records_below_k"] == 0
    html = (tmp_path / "r.html").read_text()
    assert 'id="population"' in html and "k-map" in html and "δ-presence" in html
    POP.select("sex").write_csv(tmp_path / "no_region.csv")
    bad = CliRunner().invoke(
        app, ["assess", str(data), "--keys", "sex,region", "--population", str(tmp_path / "no_region.csv")]
    )
    assert bad.exit_code != 0 and "lacks the key variables ['region']" in bad.output and "Traceback" not in bad.output


def test_release_counts_the_population_in_the_released_coding(tmp_path):
    """A plan with a population and a recode of a key: risk after compares recoded with recoded."""
    rng = np.random.default_rng(3)
    pop = pl.DataFrame({"age": rng.integers(0, 90, 5000), "sex": rng.integers(1, 3, 5000)})
    pop.write_csv(tmp_path / "pop.csv")
    pop.sample(400, seed=2).write_csv(tmp_path / "survey.csv")
    (tmp_path / "plan.yaml").write_text(
        "roles:\n  keys: [age, sex]\ntargets:\n  k: 50\npopulation: pop.csv\n"
        "steps:\n  - recode: {variable: age, breaks: [-1, 18, 60, 200]}\nseed: 1\n"
    )
    run = CliRunner().invoke(
        app,
        ["anonymize", str(tmp_path / "survey.csv"), "--plan", str(tmp_path / "plan.yaml"), "-o", str(tmp_path / "o")],
    )
    assert run.exit_code == 0, run.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    before, after = report["risk_before"]["population"], report["risk_after"]["population"]
    assert before["k_map"] < 50 and before["n_records_not_in_population"] == 0
    band = np.digitize(pop.get_column("age").to_numpy(), [19, 61])  # R cut: (-1, 18], (18, 60], (60, 200]
    by_hand = np.unique(band * 10 + pop.get_column("sex").to_numpy(), return_counts=True)[1].min()
    assert after["n_records_not_in_population"] == 0 and after["k_map"] == by_hand
