"""Continuous-only data (business surveys: sdcMicro's CASC sets) through the CLI: a plan with
only numeric keys and MDAV runs, gives exactly the numbers of the MDAV function (which
equals sdcMicro's MDAV, see test_microaggregation.py), and the reports show numeric-key risk
before and after, with the k-anonymity measures marked not applicable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import SDC_DATA
from safemicro import io
from safemicro.cli import app
from safemicro.methods.aggregation import microaggregation
from test_microaggregation import plain_mdav

EIA_NUMERIC = [
    "RESREVENUE",
    "RESSALES",
    "COMREVENUE",
    "COMSALES",
    "INDREVENUE",
    "INDSALES",
    "OTHREVENUE",
    "OTHRSALES",
    "TOTREVENUE",
    "TOTSALES",
]


def _numeric_keys(name: str) -> list[str]:
    if name == "EIA":
        return EIA_NUMERIC
    return pl.read_csv(SDC_DATA / f"{name}.csv", n_rows=1).columns


def _plan(tmp_path: Path, keys: list[str]) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "roles:\n  numeric_keys: [" + ", ".join(keys) + "]\n"
        "targets: {k: 3}\nsteps:\n  - microaggregation: {k: 3, method: mdav}\n",
        encoding="utf-8",
    )
    return plan


@pytest.mark.parametrize("name", ["CASCrefmicrodata", "Tarragona", "EIA"])
def test_cli_mdav_on_casc_sets_equals_the_mdav_function(name, tmp_path):
    data = SDC_DATA / f"{name}.csv"
    keys = _numeric_keys(name)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(app, ["anonymize", str(data), "--plan", str(_plan(tmp_path, keys)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "n/a" in result.output and "not met" not in result.output
    # the released file, byte for byte, is the MDAV function's output written the same way
    expected = microaggregation(io.read(data), variables=keys, k=3, method="mdav").dataset
    io.write(expected, tmp_path / "expected.csv")
    assert (out / f"{name}.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()
    released = pl.read_csv(out / f"{name}.csv")
    assert released.drop(keys).equals(pl.read_csv(data).drop(keys))
    # the groups are those of MDAV as sdcMicro defines it (plain_mdav: the oracle written
    # from the definition, sdcMicro's tie rule included)
    x = pl.read_csv(data).select(keys).to_numpy().astype(np.float64)
    group = np.empty(len(x), dtype=np.int64)
    for i, rows in enumerate(plain_mdav(x, 3)):
        group[rows] = i
    sums = np.zeros((group.max() + 1, x.shape[1]))
    np.add.at(sums, group, x)
    means = sums / np.bincount(group)[:, None]
    np.testing.assert_allclose(released.select(keys).to_numpy(), means[group], rtol=1e-12, atol=1e-9)

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    before, after = report["risk_before"], report["risk_after"]
    assert before["k_anonymity"] is None and after["global_risk"] is None
    assert {c["passed"] for c in report["checks"]} == {None} and report["targets_met"]
    assert before["numeric_risk"]["interval_disclosure"] == 1.0
    assert 0 <= after["numeric_risk"]["interval_disclosure"] < 1
    assert after["numeric_risk"]["compared_with"] == "original"
    assert after["numeric_risk"]["linkage_disclosure"] < before["numeric_risk"]["linkage_disclosure"] == 1.0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Interval disclosure" in html and "Record linkage" in html and "not applicable" in html
    assert "Records with an outlying numeric key value" in html
    assert "On the numeric variables" in (out / "external_report.html").read_text(encoding="utf-8")
    assert "Interval disclosure" in (out / "disclosure_risk_assessment.html").read_text(encoding="utf-8")
    dra = json.loads((out / "disclosure_risk_assessment.json").read_text(encoding="utf-8"))
    assert dra["risk_before"]["interval_disclosure"] == 1.0
    assert dra["risk_after"]["linkage_disclosure"] == after["numeric_risk"]["linkage_disclosure"]


def test_cli_assess_without_categorical_keys(tmp_path):
    data = SDC_DATA / "Tarragona.csv"
    keys = _numeric_keys("Tarragona")
    paths = [tmp_path / n for n in ("risk.json", "risk.html", "risk.csv")]
    result = CliRunner().invoke(
        app,
        [
            "assess",
            str(data),
            "--numeric",
            ",".join(keys),
            "--json",
            str(paths[0]),
            "--html",
            str(paths[1]),
            "--records",
            str(paths[2]),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "not applicable" in result.output
    summary = json.loads(paths[0].read_text(encoding="utf-8"))
    assert summary["k_anonymity"] is None and summary["individual_risk"] is None
    nr = summary["numeric_risk"]
    x = pl.read_csv(data).to_numpy().astype(float)
    med = np.median(x, axis=0)
    mad = np.median(np.abs(x - med), axis=0)
    assert nr["variables"]["SALES"]["n_outliers"] == int((0.6745 * np.abs(x[:, 6] - med[6]) / mad[6] > 3.5).sum())
    assert pl.read_csv(paths[2]).columns[:2] == ["row", "outlier_FIXED.ASSETS"]
    assert "Interval disclosure" in paths[1].read_text(encoding="utf-8")


def test_no_keys_at_all_is_one_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["assess", str(SDC_DATA / "Tarragona.csv")])
    assert result.exit_code == 2
    assert "no key variables given" in result.output


def test_attack_simulation_refuses_a_plan_without_categorical_keys():
    """The simulation checks the frequency-based risk of categorical keys; a numeric-only
    plan has none: one clear error before any release is made, not a crash after."""
    from safemicro.attack.simulate import simulate
    from safemicro.errors import SafemicroError
    from safemicro.plan import Plan

    plan = Plan.from_yaml("roles: {numeric_keys: [income, assistance]}\nsteps:\n  - microaggregation: {k: 3}\n")
    with pytest.raises(SafemicroError, match="no categorical keys"):
        simulate(n_households=60, releases={"numeric": plan}, seed=3)
