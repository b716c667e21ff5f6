"""`safemicro mobility ...` end to end on a small run, and the demo's mobile section (a real
node on 127.0.0.1, the analyst's report from protected tables)."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from safemicro.cli import app


def _run(*args):
    r = CliRunner(env={"SAFEMICRO_DEBUG": None}).invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r.output


def test_cli_generate_ingest_features_config(tmp_path):
    raw, ing, node = tmp_path / "raw", tmp_path / "ing", tmp_path / "node"
    _run("mobility", "keygen", tmp_path / "op.key")
    _run("mobility", "generate", raw, "--subscribers", 800, "--days", 6, "--seed", 4, "--origins", "R1D1C1")
    _run(
        "mobility", "ingest", raw / "events", "--cells", raw / "cells.csv", "--bridge", raw / "bridge.csv",
        "--units", raw / "units.csv", "--key", tmp_path / "op.key", "--out", ing,
    )  # fmt: skip
    assert len(json.loads((ing / "qa.json").read_text())["days"]) == 6
    _run(
        "mobility", "features", ing, "--out", node, "--baseline", "2024-01-01:2024-01-04",
        "--followup", "2024-01-04:2024-01-07", "--engine", "duckdb", "--degree-bins", "2,4",
    )  # fmt: skip
    ref = pl.read_parquet(node / "reference.parquet")
    assert ref.height > 500 and {"home0", "home1", "displacement"} <= set(ref.columns)
    _run(
        "mobility", "config", node, "--issuer-public-key", tmp_path / "i.pub", "--signing-key", tmp_path / "n.key",
        "--out", tmp_path / "service.yaml",
    )  # fmt: skip
    text = (tmp_path / "service.yaml").read_text()
    assert "kind: mobility" in text and "- '>=4'" in text  # the provider's degree bins, declared


def test_cli_bad_window_is_one_clear_error(tmp_path):
    r = CliRunner(env={"SAFEMICRO_DEBUG": None}).invoke(
        app,
        [
            "mobility",
            "features",
            str(tmp_path),
            "--out",
            str(tmp_path / "n"),
            "--baseline",
            "2024-01-01",
            "--followup",
            "x",
        ],
    )
    assert r.exit_code != 0 and "START:STOP" in r.output and "Traceback" not in r.output


def test_mobile_demo(tmp_path):
    from safemicro.demo_mobility import run_mobile_demo

    paths = run_mobile_demo(tmp_path, subscribers=3000)
    table = pl.read_csv(paths["displacement table"])
    origin = table.filter(pl.col("home0_admin2") == "R1D1").row(0, named=True)
    assert origin["displaced"] > 16 and 0.2 < origin["share"] < 0.6
    page = paths["displacement report"].read_text()
    assert page.count("<svg") == 2 and "Home-to-home flows" in page
