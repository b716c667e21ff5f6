"""The command line: user errors end in one line and exit code 2, leaving no output behind;
the real console script assesses the sdcMicro test data with sdcMicro's numbers.

A few cases run the installed ``safemicro`` script in a subprocess (what a user runs:
real stdout/stderr pipes, no terminal); the rest use typer's CliRunner, which is faster.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import KV7, SDC_DATA, SDC_REF
from safemicro import io
from safemicro.cli import app

SCRIPT = Path(sys.executable).parent / "safemicro"
TESTDATA = SDC_DATA / "testdata.csv"
FK_REF = SDC_REF / "testdata_freqCalc_7keys.csv"


RECORD_COLUMNS = [
    "fk",
    "Fk",
    "risk",
    "hh_risk",
    "suda_score",
    "dis_suda",
    "ldiv_hhcivil_distinct",
    "ldiv_hhcivil_entropy",
    "ldiv_hhcivil_recursive",
]


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str


def run_script(*args: str | Path) -> Run:
    """The installed console script, in a subprocess with pipes (not a terminal)."""
    exe = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "safemicro.cli"]
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE", "SAFEMICRO_DEBUG"}}
    env["COLUMNS"] = "80"
    p = subprocess.run([*exe, *map(str, args)], capture_output=True, text=True, encoding="utf-8", env=env, timeout=120)
    return Run(p.returncode, p.stdout, p.stderr)


def run_cli(*args: str | Path) -> Run:
    """The typer app in-process."""
    r = CliRunner(env={"SAFEMICRO_DEBUG": None}).invoke(app, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Run(r.exit_code, r.stdout, r.stderr)


def outputs(tmp_path: Path) -> dict[str, Path]:
    out = tmp_path / "out"
    return {"--json": out / "risk.json", "--records": out / "risk.csv", "--html": out / "risk.html"}


def output_args(tmp_path: Path) -> list[str]:
    return [x for flag, path in outputs(tmp_path).items() for x in (flag, str(path))]


def assert_user_error(r: Run, tmp_path: Path, *needles: str) -> str:
    """Exit 2, one line on stderr naming what is wrong, no traceback, nothing written."""
    assert r.exit_code == 2, (r.exit_code, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    for path in outputs(tmp_path).values():
        assert not path.exists(), path
    out_dir = tmp_path / "out"
    assert not out_dir.exists() or not any(out_dir.iterdir()), list(out_dir.iterdir())
    return line


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return pl.read_csv(TESTDATA)


def with_value(df: pl.DataFrame, column: str, row: int, value) -> pl.DataFrame:
    """``df`` with ``column`` set to ``value`` at 1-based data row ``row``."""
    s = df.get_column(column)
    if isinstance(value, str):
        s = s.cast(pl.String)
    elif isinstance(value, float):
        s = s.cast(pl.Float64)
    values = s.to_list()
    values[row - 1] = value
    return df.with_columns(pl.Series(column, values, dtype=s.dtype))


def write_csv(df: pl.DataFrame, path: Path) -> Path:
    df.write_csv(path)
    return path


# --------------------------------------------------------------------------- 1. unknown columns


def test_unknown_key_script(tmp_path):
    r = run_script("assess", TESTDATA, "--keys", "urbrur,nosuchvar", *output_args(tmp_path))
    line = assert_user_error(r, tmp_path, str(TESTDATA), "'nosuchvar'", "not a column")
    assert "did you mean" not in line


def test_unknown_key_near_miss_hint(tmp_path):
    r = run_cli("assess", TESTDATA, "--keys", "urbrur,Roof", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(TESTDATA), "'Roof'", "did you mean 'roof'")


def test_unknown_weight_and_household(tmp_path):
    r = run_cli("assess", TESTDATA, "--keys", "urbrur", "--weight", "wgt", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(TESTDATA), "'wgt'")
    r = run_cli("assess", TESTDATA, "--keys", "urbrur", "--household", "HHID", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(TESTDATA), "'HHID'")


def test_markup_like_column_name_is_shown_verbatim(tmp_path):
    # rich markup in a user's column name must neither crash nor vanish from the message
    for name in ("[/x]", "[red]x"):
        r = run_cli("assess", TESTDATA, "--keys", f"urbrur,{name}", *output_args(tmp_path))
        assert_user_error(r, tmp_path, f"'{name}'")
    # ... nor crash the summary table of a successful run
    data = tmp_path / "d.csv"
    data.write_text("[/x],sex\n1,1\n1,2\n2,1\n")
    r = run_cli("assess", data, "--keys", "[/x],sex", "--json", tmp_path / "s.json")
    assert r.exit_code == 0, r.stderr
    assert "[/x], sex" in r.stdout


# --------------------------------------------------------------------------- 2. all-missing key


def test_key_with_only_missing_values(tmp_path, frame):
    data = write_csv(frame.head(200).with_columns(pl.lit(None, pl.Int64).alias("roof")), tmp_path / "d.csv")
    r = run_cli("assess", data, "--keys", "urbrur,roof", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(data), "'roof'", "only missing")


# --------------------------------------------------------------------------- 3. weights


@pytest.mark.parametrize("value", [0, -1.5])
def test_weight_not_positive_names_row(tmp_path, frame, value):
    data = write_csv(with_value(frame.head(200), "sampling_weight", 10, value), tmp_path / "d.csv")
    r = run_cli("assess", data, "--keys", "urbrur,roof", "--weight", "sampling_weight", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(data), "'sampling_weight'", "row 10", "positive")


def test_weight_missing_names_row(tmp_path, frame):
    data = write_csv(with_value(frame.head(200), "sampling_weight", 5, None), tmp_path / "d.csv")
    r = run_cli("assess", data, "--keys", "urbrur,roof", "--weight", "sampling_weight", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(data), "'sampling_weight'", "row 5", "missing")


def test_weight_not_numeric(tmp_path, frame):
    data = write_csv(with_value(frame.head(200), "sampling_weight", 7, "abc"), tmp_path / "d.csv")
    r = run_cli("assess", data, "--keys", "urbrur,roof", "--weight", "sampling_weight", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(data), "'sampling_weight'", "numeric", "row 7", "'abc'")


# --------------------------------------------------------------------------- 4. household level


def test_household_level_differs_within_household(tmp_path, frame):
    df = frame.head(300)
    hid = df.get_column("ori_hid")
    assert hid[0] == hid[1]  # rows 1 and 2 are one household
    walls = df.get_column("walls")[0]
    data = write_csv(with_value(df, "walls", 2, walls + 1), tmp_path / "d.csv")
    r = run_cli(
        "assess", data, "--keys", "urbrur,walls", "--household", "ori_hid",
        "--household-level", "urbrur,walls", *output_args(tmp_path),
    )  # fmt: skip
    assert_user_error(r, tmp_path, str(data), "'walls'", "row 2", "household")


def test_household_level_constant_is_accepted(tmp_path, frame):
    data = write_csv(frame.head(300), tmp_path / "d.csv")
    r = run_cli(
        "assess", data, "--keys", "urbrur,walls", "--household", "ori_hid",
        "--household-level", "urbrur,walls", "--json", tmp_path / "s.json",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert json.loads((tmp_path / "s.json").read_text())["household_risk"]["n_households"] > 0


# --------------------------------------------------------------------------- 5. empty files


def test_empty_file(tmp_path):
    data = tmp_path / "empty.csv"
    data.write_bytes(b"")
    r = run_cli("assess", data, "--keys", "urbrur", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(data), "empty")


def test_header_only_csv(tmp_path):
    data = tmp_path / "header.csv"
    data.write_text(TESTDATA.read_text().splitlines()[0] + "\n")
    r = run_cli("assess", data, "--keys", "urbrur", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(data), "no records")


# --------------------------------------------------------------------------- 6. encodings


def test_latin1_csv_script(tmp_path, frame):
    df = frame.head(100).with_columns(pl.Series("place", ["Bogotá" if i % 3 else "Medellín" for i in range(100)]))
    data = tmp_path / "latin.csv"
    data.write_bytes(df.write_csv().encode("latin-1"))
    args = ["assess", data, "--keys", "urbrur,place", *output_args(tmp_path)]
    r = run_script(*args, "--encoding", "utf-8")
    assert_user_error(r, tmp_path, str(data), "row 1", "utf-8", "--encoding")
    r = run_script(*args)  # detected, and said so
    assert r.exit_code == 0 and "read as cp1252" in r.stderr and "--encoding" in r.stderr, r.stderr

    r = run_script(*args, "--encoding", "latin-1")
    assert r.exit_code == 0, r.stderr
    assert "Traceback" not in r.stderr
    for path in outputs(tmp_path).values():
        assert path.exists()
    records = pl.read_csv(outputs(tmp_path)["--records"])
    assert records.height == 100


def test_unknown_encoding(tmp_path):
    r = run_cli("assess", TESTDATA, "--keys", "urbrur", "--encoding", "klingon-8", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(TESTDATA), "klingon-8")


# --------------------------------------------------------------------------- 7. broken .dta


@pytest.fixture(scope="module")
def example_dta(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("example") / "survey.dta"
    r = run_cli("example", path, "--households", "300")
    assert r.exit_code == 0, r.stderr
    assert "Traceback" not in r.stderr
    return path


def test_corrupt_dta_script(tmp_path):
    data = tmp_path / "random.dta"
    data.write_bytes(random.Random(7).randbytes(4096))
    r = run_script("assess", data, "--keys", "sex", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(data), "Stata")


def test_truncated_dta(tmp_path, example_dta):
    raw = example_dta.read_bytes()
    data = tmp_path / "truncated.dta"
    data.write_bytes(raw[: len(raw) // 2])
    r = run_cli("assess", data, "--keys", "sex", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(data), "Stata")


# --------------------------------------------------------------------------- 8./9. plans


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "plan.yaml"
    r = run_cli("init", TESTDATA, "--out", path)
    assert r.exit_code == 0, r.stderr
    assert path.exists()
    return path


def test_init_then_assess_with_plan(tmp_path, plan_file):
    r = run_cli("assess", TESTDATA, "--plan", plan_file, *output_args(tmp_path))
    assert r.exit_code == 0, r.stderr
    summary = json.loads(outputs(tmp_path)["--json"].read_text())
    assert summary["n_records"] == 4580
    assert summary["roles"]["weight"] == "sampling_weight"
    assert summary["roles"]["household"] == "ori_hid"
    assert summary["household_risk"] is not None
    assert summary["checks"]  # the plan's targets are checked


def test_init_refuses_to_overwrite(tmp_path, plan_file):
    before = sha256(plan_file)
    r = run_cli("init", TESTDATA, "--out", plan_file)
    assert r.exit_code == 2
    assert str(plan_file) in r.stderr and "--force" in r.stderr
    assert sha256(plan_file) == before


def test_plan_unknown_field(tmp_path, plan_file):
    plan = tmp_path / "bad.yaml"
    plan.write_text(plan_file.read_text() + "kanonymity: 3\n")
    r = run_cli("assess", TESTDATA, "--plan", plan, *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(plan), "kanonymity", "unknown field")


def test_plan_names_missing_column(tmp_path, plan_file):
    text = plan_file.read_text()
    assert "- roof\n" in text
    plan = tmp_path / "typo.yaml"
    plan.write_text(text.replace("- roof\n", "- rooof\n"))
    r = run_cli("assess", TESTDATA, "--plan", plan, *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(plan), "'rooof'", "did you mean 'roof'")


def test_plan_file_not_found(tmp_path):
    plan = tmp_path / "nope.yaml"
    r = run_cli("assess", TESTDATA, "--plan", plan, *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(plan), "not found")


def test_plan_and_keys_refused(tmp_path, plan_file):
    r = run_cli("assess", TESTDATA, "--plan", plan_file, "--keys", "urbrur", *output_args(tmp_path))
    assert_user_error(r, tmp_path, str(plan_file), "--plan", "--keys")


# --------------------------------------------------------------------------- outputs


def test_output_is_a_directory(tmp_path):
    (tmp_path / "out").mkdir()
    html = tmp_path / "out" / "risk.html"
    html.mkdir()
    json_out = tmp_path / "out" / "risk.json"
    r = run_cli("assess", TESTDATA, "--keys", "urbrur", "--json", json_out, "--html", html)
    assert r.exit_code == 2, r.stderr
    assert "Traceback" not in r.stderr and str(html) in r.stderr
    assert not json_out.exists()  # all outputs or none
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["risk.html"]


def test_output_over_the_input_refused(tmp_path):
    data = tmp_path / "d.csv"
    data.write_bytes(TESTDATA.read_bytes())
    before = sha256(data)
    r = run_cli("assess", data, "--keys", "urbrur", "--records", data)
    assert r.exit_code == 2 and "input" in r.stderr
    assert sha256(data) == before


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The console script on a copy of testdata, outputs beside the input."""
    work = tmp_path_factory.mktemp("e2e")
    data = work / "testdata.csv"
    data.write_bytes(TESTDATA.read_bytes())
    before = (sha256(data), sha256(TESTDATA))
    paths = {"json": work / "risk.json", "records": work / "risk_records.csv", "html": work / "report.html"}
    r = run_script(
        "assess", data, "--keys", ",".join(KV7), "--weight", "sampling_weight", "--household", "ori_hid",
        "--suda", "--sensitive", "hhcivil", "--numeric", "expend,income,savings",
        "--json", paths["json"], "--records", paths["records"], "--html", paths["html"],
    )  # fmt: skip
    return r, data, before, paths


def test_assess_end_to_end(full_run):
    r, data, before, paths = full_run
    assert r.exit_code == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    s = json.loads(paths["json"].read_text())
    assert s["n_records"] == 4580
    assert s["keys"] == KV7
    assert s["k_anonymity"]["violations"] == {"2": 157, "3": 281, "5": 458}
    assert s["global_risk"]["expected_reidentifications"] == pytest.approx(10.7782989187348, rel=1e-12)
    assert s["household_risk"]["expected_reidentifications"] == pytest.approx(51.8129274359607, rel=1e-10)
    assert s["suda2"]["sum_score"] == 4890
    assert set(s["numeric_risk"]["variables"]) == {"expend", "income", "savings"}


def test_records_in_input_order(full_run):
    _, _, _, paths = full_run
    records = pl.read_csv(paths["records"])
    assert records.height == 4580
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    assert not missing
    ref = pl.read_csv(FK_REF)
    assert ref.get_column("row").to_list() == list(range(1, 4581))
    assert records.get_column("fk").cast(pl.Int64).to_list() == ref.get_column("fk").to_list()
    assert records.get_column("Fk").to_list() == pytest.approx(ref.get_column("Fk").cast(pl.Float64).to_list())


def test_html_report(full_run):
    _, _, _, paths = full_run
    html = paths["html"].read_text(encoding="utf-8")
    assert "<svg" in html


def test_input_never_modified(full_run):
    r, data, before, paths = full_run
    assert r.exit_code == 0
    assert (sha256(data), sha256(TESTDATA)) == before
    # only the requested outputs appear beside the input: no temporary files left over
    assert sorted(p.name for p in data.parent.iterdir()) == sorted([data.name, *(p.name for p in paths.values())])


def test_no_escape_codes_when_not_a_terminal(full_run):
    r, *_ = full_run
    assert "\x1b" not in r.stdout
    assert "\x1b" not in r.stderr
    assert "4,580" in r.stdout  # the summary table itself is printed


def test_extra_k(tmp_path):
    out = tmp_path / "s.json"
    r = run_cli("assess", TESTDATA, "--keys", ",".join(KV7), "--k", "4", "--k", "10", "--json", out)
    assert r.exit_code == 0, r.stderr
    violations = json.loads(out.read_text())["k_anonymity"]["violations"]
    fk = pl.read_csv(FK_REF).get_column("fk")
    assert list(violations) == ["2", "3", "4", "5", "10"]
    for k, v in violations.items():
        assert v == int((fk < int(k)).sum()), k
    assert violations["2"] == 157 and violations["3"] == 281 and violations["5"] == 458


# --------------------------------------------------------------------------- example


def test_example_reads_back_with_labels(example_dta):
    ds = io.read(example_dta)
    assert ds.n > 0
    labelled = [c for c in ds.frame.columns if ds.codebook.meta(c).value_labels]
    assert labelled, "no value labels survived"
    m = ds.codebook.meta(labelled[0])
    assert all(isinstance(v, str) and v for v in m.value_labels.values())


def test_example_warnings_are_one_line_script(tmp_path):
    # a subprocess: under pytest, Python warnings would be captured and never reach stderr
    r = run_script("example", tmp_path / "s.dta", "--households", "20")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "s.dta").exists()
    for line in r.stderr.splitlines():
        assert line.startswith("warning: "), line


def test_outputs_get_ordinary_permissions(tmp_path):
    """Outputs are staged in private temporary files but land with 0666 less the umask."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    r = run_cli("assess", TESTDATA, "--keys", "urbrur,sex", *output_args(tmp_path))
    assert r.exit_code == 0, r.stderr
    for path in outputs(tmp_path).values():
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask
