"""Plans run end to end: whole-plan validation, the release bundle, reproducibility, nesting.

The contract plan of the issue runs on sdcMicro's testdata through the real console script;
the example survey runs through the library with its reviewed SUF plan and a nested PUF.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import KV7, SDC_DATA
from safemicro import anonymize, io
from safemicro.cli import app
from safemicro.errors import SafemicroError
from safemicro.examples import SURVEY_PLAN, SURVEY_PUF_PLAN
from safemicro.examples.survey import generate_survey
from safemicro.io import Dataset
from safemicro.keys import build_key_table
from safemicro.outputs import MARKER
from safemicro.plan import Plan
from safemicro.release import open_bundle, read_bundle, verify_bundle

SCRIPT = Path(sys.executable).parent / "safemicro"
TESTDATA = SDC_DATA / "testdata.csv"

CONTRACT_PLAN = """
roles:
  keys: [urbrur, roof, walls, water, electcon, relat, sex]
  numeric_keys: [expend, income, savings]
  weight: sampling_weight
  household: ori_hid
steps:
  - local_suppression: {k: 3, method: sdcmicro}
  - microaggregation: {variables: [expend, income, savings], k: 3, method: mdav}
seed: 1
"""

BUNDLE_FILES = {
    "testdata.csv",
    "testdata.parquet",  # the plan's release.copies (default: a Parquet copy; a CSV copy only when asked)
    "report.json",
    "report.html",
    "external_report.html",
    "disclosure_risk_assessment.json",
    "disclosure_risk_assessment.html",
    "plan.lock.yaml",
    "row_map.csv",  # internal: the input row of each released row (attack link --original)
    "SHA256SUMS",
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def testdata_bundle(tmp_path_factory) -> Path:
    """The contract plan run by the installed console script, as a user would."""
    root = tmp_path_factory.mktemp("contract")
    plan = root / "plan.yaml"
    plan.write_text(CONTRACT_PLAN)
    before = _digest(TESTDATA)
    run = subprocess.run(
        [str(SCRIPT), "anonymize", str(TESTDATA), "--plan", str(plan), "--out", str(root / "bundle")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert _digest(TESTDATA) == before  # the input is never modified
    return root / "bundle"


def test_contract_bundle_is_complete_and_verifies(testdata_bundle):
    # the bundle's files, and safemicro's marker (which lets a later --overwrite replace it)
    assert {p.name for p in testdata_bundle.iterdir()} == BUNDLE_FILES | {MARKER}
    assert verify_bundle(testdata_bundle) == []
    sums = (testdata_bundle / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == len(BUNDLE_FILES) - 1
    # the same check a user runs: sha256sum -c
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=testdata_bundle, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_contract_report_shape_and_parity(testdata_bundle, reference):
    report = json.loads((testdata_bundle / "report.json").read_text())
    names = [s["name"] for s in report["steps"]]
    assert names == ["local_suppression", "microaggregation"]
    for step in report["steps"]:
        assert {"name", "params", "changed"} <= set(step)
    # sdcMicro-mode suppression gives sdcMicro's counts, inside the bundle too
    assert report["steps"][0]["changed"] == reference["localSuppression"]["supps"]
    assert report["steps"][0]["params"]["method"] == "sdcmicro"
    assert set(report["steps"][1]["changed"]) == {"expend", "income", "savings"}
    for side in ("risk_before", "risk_after"):
        assert {"n_records", "k_anonymity", "global_risk", "individual_risk"} <= set(report[side])
    assert report["risk_before"]["k_anonymity"]["violations"]["3"] > 0
    assert report["risk_after"]["k_anonymity"]["violations"]["3"] == 0
    assert report["targets_met"] is True
    assert report["utility"]["numeric"]["il1s"] == pytest.approx(
        reference["microaggregation"]["utility"]["il1s"], rel=1e-9
    )


def test_contract_release_keeps_columns_and_rows(testdata_bundle, testdata):
    released = pl.read_csv(testdata_bundle / "testdata.csv")
    assert released.columns == testdata.columns
    assert released.height == testdata.height
    untouched = [c for c in testdata.columns if c not in KV7 + ["expend", "income", "savings"]]
    assert released.select(untouched).equals(testdata.select(untouched))
    kt = build_key_table(released, KV7)
    assert kt.record_fk().min() >= 3


def test_rerun_gives_identical_bytes(testdata_bundle, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(CONTRACT_PLAN)
    result = CliRunner().invoke(
        app, ["anonymize", str(TESTDATA), "--plan", str(plan), "--out", str(tmp_path / "again")]
    )
    assert result.exit_code == 0, result.output
    assert _tree(tmp_path / "again") == _tree(testdata_bundle)


def test_lock_plan_reproduces_a_seedless_plan(tmp_path):
    plan = Plan.from_yaml(CONTRACT_PLAN.replace("seed: 1", "") + "\n")
    plan.steps.append({"noise": {"variables": ["expend"], "amount": 0.05}})
    first = anonymize(TESTDATA, plan)
    assert first.plan.seed is not None
    again = anonymize(TESTDATA, first.plan)
    assert again.dataset.frame.equals(first.dataset.frame)
    first.write(tmp_path / "a")
    again.write(tmp_path / "b")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_internal_report_has_seeds_external_does_not(testdata_bundle):
    lock = (testdata_bundle / "plan.lock.yaml").read_text()
    assert "seed: 1" in lock
    external = (testdata_bundle / "external_report.html").read_text()
    assert "plan.lock" not in external
    dra = json.loads((testdata_bundle / "disclosure_risk_assessment.json").read_text())
    assert dra["tier"] == "suf" and dra["key_variables"] == KV7
    assert "seed" not in json.dumps(dra["methods"])


# -- whole-plan validation --------------------------------------------------------------------


def _plan(steps: str, extra: str = "") -> Plan:
    return Plan.from_yaml(
        "roles:\n  keys: [urbrur, roof, walls, water, electcon, relat, sex]\n"
        "  direct_ids: [ori_hid]\n" + extra + "steps:\n" + steps + "seed: 5\n"
    )


@pytest.mark.parametrize(
    "steps, expected",
    [
        ("  - local_supression: {k: 3}\n", "did you mean 'local_suppression'"),
        ("  - local_suppression: {k: 3, metod: optimal}\n", "metod"),
        ("  - microaggregation: {variables: [expnd], k: 3}\n", "'expnd'"),
        (
            "  - remove_direct_ids: {}\n  - pram: {variables: [ori_hid], keep: 0.8}\n",
            "removed by an earlier step",
        ),
    ],
)
def test_bad_plans_are_rejected_before_anything_runs(steps, expected, tmp_path):
    with pytest.raises(SafemicroError) as info:
        anonymize(TESTDATA, _plan(steps))
    message = str(info.value)
    assert expected in message
    assert "step " in message


def test_bad_plan_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(_plan("  - remove_direct_ids: {}\n  - pram: {variables: [ori_hid]}\n").to_yaml())
    result = CliRunner().invoke(app, ["anonymize", str(TESTDATA), "--plan", str(plan), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "ori_hid" in result.output and "step 2 (pram)" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "b").exists()


def test_bad_data_names_the_step_and_the_column(tmp_path):
    data = tmp_path / "bad.csv"
    frame = pl.read_csv(TESTDATA).with_columns(pl.col("income").cast(pl.String))
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 6).then(pl.lit("n/a")).otherwise(pl.col("income")).alias("income")
    )
    frame.write_csv(data)
    before = _digest(data)
    plan = tmp_path / "plan.yaml"
    plan.write_text(_plan("  - noise: {variables: [income], amount: 0.01}\n").to_yaml())
    result = CliRunner().invoke(app, ["anonymize", str(data), "--plan", str(plan), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "step 1 (noise)" in result.output and "'income'" in result.output
    assert "Traceback" not in result.output
    assert _digest(data) == before and not (tmp_path / "b").exists()


def test_failure_while_writing_leaves_no_partial_bundle(tmp_path, monkeypatch):
    release = anonymize(TESTDATA, _plan("  - local_suppression: {k: 2}\n"))

    def broken(_):
        raise OSError("disk full")

    monkeypatch.setattr("safemicro.report.release_report.render_external_report", broken)
    with pytest.raises(OSError):
        release.write(tmp_path / "bundle")
    assert list(tmp_path.iterdir()) == []


def test_existing_bundle_needs_overwrite(tmp_path):
    release = anonymize(TESTDATA, _plan("  - local_suppression: {k: 2}\n"))
    release.write(tmp_path / "b")
    with pytest.raises(SafemicroError, match="not empty"):
        release.write(tmp_path / "b")
    release.write(tmp_path / "b", overwrite=True)
    assert verify_bundle(tmp_path / "b") == []


def test_tampered_bundle_is_detected(testdata_bundle, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(testdata_bundle, copy)
    data = copy / "testdata.csv"
    data.write_text(data.read_text().replace(",", ";", 1))
    assert verify_bundle(copy) == ["testdata.csv: checksum differs"]
    result = CliRunner().invoke(app, ["verify", str(copy)])
    assert result.exit_code == 1
    with pytest.raises(SafemicroError, match="does not verify"):
        anonymize(copy, _plan("  - local_suppression: {k: 5}\n"))


# -- the example survey: SUF from raw, PUF nested on the SUF bundle ---------------------------


def _cli_anonymize(data: Path, plan: Path, out: Path) -> None:
    result = CliRunner().invoke(app, ["anonymize", str(data), "--plan", str(plan), "--out", str(out)])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def survey_suf(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("survey")
    raw = root / "survey.dta"
    io.write(generate_survey(), raw)
    before = _digest(raw)
    _cli_anonymize(raw, SURVEY_PLAN, root / "suf")
    assert _digest(raw) == before
    return raw, root / "suf"


def test_survey_bundle_is_reproducible_with_random_steps(survey_suf, tmp_path):
    """PRAM-free SUF plan still has noise and new ids: the seed makes the bytes identical."""
    raw, suf = survey_suf
    _cli_anonymize(raw, SURVEY_PLAN, tmp_path / "again")
    assert _tree(tmp_path / "again") == _tree(suf)
    assert verify_bundle(suf) == []


def test_same_file_from_another_folder_gives_the_same_bundle(survey_suf, tmp_path):
    """The bundle depends on the input's bytes and name, not on the folder it lies in (the
    workbench releases its project copy of the file: same bytes as the CLI on the original)."""
    raw, suf = survey_suf
    (tmp_path / "elsewhere").mkdir()
    copy = tmp_path / "elsewhere" / raw.name
    copy.write_bytes(raw.read_bytes())
    _cli_anonymize(copy, SURVEY_PLAN, tmp_path / "again")
    assert _tree(tmp_path / "again") == _tree(suf)


def test_survey_suf_meets_targets_and_keeps_labels(survey_suf):
    raw, suf = survey_suf
    report = json.loads((suf / "report.json").read_text())
    assert report["targets_met"], report["checks"]
    original = io.read(raw)
    released = io.read(suf / "survey.dta")
    plan = Plan.from_yaml(SURVEY_PLAN.read_text())
    for direct in plan.roles.direct_ids:
        assert direct not in released.columns
    assert (suf / "survey.parquet").exists() and not (suf / "survey.csv").exists()  # CSV only when asked
    assert io.read(suf / "survey.parquet").frame.equals(released.frame)
    # labels travel: variable labels of untouched variables and value labels of keys
    for name in ("sex", "camp", "relationship"):
        assert released.codebook.meta(name).label == original.codebook.meta(name).label
        assert released.codebook.meta(name).value_labels
    assert released.codebook.meta("age").value_labels  # recoded into labelled bands
    # Stata extended missing values (.a "Don't know", .b "Refused") keep their labels and
    # their count, although new_ids reordered the rows
    assert released.codebook.meta("legal_status").value_labels == original.codebook.meta("legal_status").value_labels
    for name, cells in original.codebook.extended_missing.items():
        assert sorted(released.codebook.extended_missing[name].values()) == sorted(cells.values())
    assert released.n == original.n


def test_puf_only_from_a_suf_bundle(survey_suf, tmp_path):
    raw, suf = survey_suf
    with pytest.raises(SafemicroError, match="never from raw"):
        anonymize(raw, SURVEY_PUF_PLAN)
    puf = anonymize(suf, SURVEY_PUF_PLAN)
    assert puf.report["input"]["derived_from"]["tier"] == "suf"
    assert puf.targets_met, puf.report["checks"]
    puf.write(tmp_path / "puf")
    assert verify_bundle(tmp_path / "puf") == []
    _cli_anonymize(suf, SURVEY_PUF_PLAN, tmp_path / "puf2")  # PRAM, suppression, new ids: same bytes
    assert _tree(tmp_path / "puf2") == _tree(tmp_path / "puf")
    after = puf.report["risk_after"]["k_anonymity"]["violations"]
    assert after["5"] == 0


def test_open_bundle_reads_each_file_once_and_matches_read_bundle(testdata_bundle):
    """The report comes back parsed (documentation needs no second read of report.json) and the
    provenance hashes are those SHA256SUMS lists, checked against hashlib on the files."""
    import hashlib

    bundle = open_bundle(testdata_bundle)
    assert bundle.report == json.loads((testdata_bundle / "report.json").read_text(encoding="utf-8"))
    for name, digest in (
        ("testdata.csv", bundle.origin["sha256"]),
        ("report.json", bundle.origin["derived_from"]["report_sha256"]),
    ):
        assert digest == hashlib.sha256((testdata_bundle / name).read_bytes()).hexdigest()
        assert f"{digest}  {name}\n" in (testdata_bundle / "SHA256SUMS").read_text(encoding="utf-8")
    ds, origin = read_bundle(testdata_bundle)
    assert origin == bundle.origin and ds.frame.equals(bundle.dataset.frame)


def test_bundle_has_normal_permissions(testdata_bundle):
    import os

    mask = os.umask(0)
    os.umask(mask)
    assert (testdata_bundle.stat().st_mode & 0o777) == 0o777 & ~mask
    for p in testdata_bundle.iterdir():
        assert (p.stat().st_mode & 0o777) == 0o666 & ~mask, p.name


def test_unmet_targets_with_require_targets_write_nothing(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(_plan("  - recode: {variable: water, breaks: 3}\n", extra="targets: {k: 3}\n").to_yaml())
    out = tmp_path / "b"
    result = CliRunner().invoke(
        app, ["anonymize", str(TESTDATA), "--plan", str(plan), "--out", str(out), "--require-targets"]
    )
    assert result.exit_code == 3
    assert "not met" in result.output
    assert not out.exists()
    result = CliRunner().invoke(app, ["anonymize", str(TESTDATA), "--plan", str(plan), "--out", str(out)])
    assert result.exit_code == 0 and "targets not met" in result.output
    assert json.loads((out / "report.json").read_text())["targets_met"] is False


def test_spss_input_gives_an_spss_release_with_labels(tmp_path):
    from safemicro.io import Codebook, Dataset, VariableMeta

    frame = pl.read_csv(TESTDATA)
    labels = {1: "urban", 2: "rural"}
    ds = Dataset(frame, Codebook(variables={"urbrur": VariableMeta("urbrur", label="Area", value_labels=labels)}))
    io.write(ds, tmp_path / "survey.sav")
    release = anonymize(tmp_path / "survey.sav", _plan("  - local_suppression: {k: 3}\n"))
    release.write(tmp_path / "b")
    assert {"survey.sav", "survey.parquet"} <= {p.name for p in (tmp_path / "b").iterdir()}
    released = io.read(tmp_path / "b" / "survey.sav")
    assert released.codebook.meta("urbrur").label == "Area"
    assert released.codebook.meta("urbrur").value_labels == labels
    assert build_key_table(released.frame, KV7).record_fk().min() >= 3


def test_steps_command_lists_every_step_with_its_parameters():
    from safemicro.methods import STEPS

    result = CliRunner().invoke(app, ["steps"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name, spec in STEPS.items():
        assert name in result.output
        assert spec.params.__doc__, f"{name}: its parameter model needs a one-line docstring"
    assert "keep (0.8)" in result.output


def test_csv_copy_only_when_asked(tmp_path):
    """A bundle holds the input's format and a Parquet copy; ``--copy csv`` (or the plan's
    ``release.copies``) adds the CSV, and the lock plan records it, so the lock reproduces it."""
    source = tmp_path / "survey.sav"
    io.write(Dataset(pl.read_csv(TESTDATA)), source)
    plan = tmp_path / "plan.yaml"
    plan.write_text(_plan("  - local_suppression: {k: 3}\n").to_yaml())
    plain, with_csv = tmp_path / "plain", tmp_path / "with_csv"
    for out, extra in ((plain, []), (with_csv, ["--copy", "csv"])):
        result = CliRunner().invoke(app, ["anonymize", str(source), "--plan", str(plan), "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
    assert {p.suffix for p in plain.glob("survey.*")} == {".sav", ".parquet"}
    assert {p.suffix for p in with_csv.glob("survey.*")} == {".sav", ".parquet", ".csv"}
    report = json.loads((with_csv / "report.json").read_text())
    assert report["release"]["files"] == {"data": "survey.sav", "parquet": "survey.parquet", "csv": "survey.csv"}
    assert pl.read_csv(with_csv / "survey.csv").height == io.read(with_csv / "survey.sav").n
    assert verify_bundle(with_csv) == []
    lock = tmp_path / "lock.yaml"
    lock.write_text((with_csv / "plan.lock.yaml").read_text())
    assert Plan.from_yaml(lock.read_text()).release.copies == ["parquet", "csv"]
    again = tmp_path / "again"
    result = CliRunner().invoke(app, ["anonymize", str(source), "--plan", str(lock), "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert _tree(again) == _tree(with_csv)
    bad = CliRunner().invoke(
        app, ["anonymize", str(source), "--plan", str(plan), "--out", str(tmp_path / "x"), "--copy", "xls"]
    )
    assert bad.exit_code == 2 and "--copy takes csv, parquet, dta or sav" in bad.output
    assert not (tmp_path / "x").exists()
