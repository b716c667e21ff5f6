"""Bad input at scale, through the CLI with ``--engine duckdb``: a column that does not
exist, a value of the wrong type deep in a CSV file, a file of a Parquet dataset whose
column type differs, a truncated Parquet file, a corrupted row group. Each gives one line
naming the file, the column and the row (CSV) or row group (Parquet), exit code 2, and
no output left behind."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from safemicro.cli import app

KEYS = "a,b"
PLAN = """
roles:
  keys: [a, b]
targets: {k: 2}
steps:
  - local_suppression: {k: 2}
"""


def _run(*args) -> tuple[int, str]:
    r = CliRunner(env={"SAFEMICRO_DEBUG": None}).invoke(app, [str(a) for a in args])
    return r.exit_code, r.output


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    n = 40_000
    good = pl.DataFrame({"a": pl.int_range(n, eager=True) % 7, "b": pl.int_range(n, eager=True) % 3})
    good.write_parquet(d / "good.parquet", row_group_size=10_000, compression="uncompressed")
    bad_csv = good.with_columns(pl.col("a").cast(pl.String))
    bad_csv = bad_csv.with_columns(pl.when(pl.int_range(n) == n - 5).then(pl.lit("abc")).otherwise("a").alias("a"))
    bad_csv.write_csv(d / "late_type.csv")
    (d / "lake").mkdir()
    good.head(100).write_parquet(d / "lake" / "part1.parquet")
    good.head(100).with_columns(pl.col("a").cast(pl.String) + "x").write_parquet(d / "lake" / "part2.parquet")
    raw = (d / "good.parquet").read_bytes()
    (d / "truncated.parquet").write_bytes(raw[: len(raw) // 2])
    meta = pq.ParquetFile(d / "good.parquet").metadata
    at = meta.row_group(2).column(0).data_page_offset
    corrupt = bytearray(raw)
    corrupt[at : at + 64] = b"\xff" * 64
    (d / "corrupt.parquet").write_bytes(bytes(corrupt))
    (d / "plan.yaml").write_text(PLAN)
    return d


def test_missing_column(folder):
    out = folder / "r1.json"
    code, text = _run("assess", folder / "good.parquet", "--keys", "a,bb", "--engine", "duckdb", "--json", out)
    assert code == 2
    assert "good.parquet" in text and "column 'bb'" in text and "did you mean 'b'" in text
    assert "Traceback" not in text and not out.exists()


def test_type_mismatch_late_in_csv(folder):
    code, text = _run("assess", folder / "late_type.csv", "--keys", KEYS, "--engine", "duckdb")
    assert code == 2
    assert "late_type.csv" in text and "column 'a'" in text and "row 39996" in text and "'abc'" in text


def test_type_mismatch_in_one_file_of_a_dataset(folder):
    code, text = _run("assess", folder / "lake" / "*.parquet", "--keys", KEYS, "--engine", "duckdb")
    assert code == 2
    assert "part2.parquet" in text and "column 'a'" in text and "VARCHAR" in text


def test_truncated_parquet_leaves_no_output(folder):
    out = folder / "bundle_truncated"
    code, text = _run(
        "anonymize", folder / "truncated.parquet", "--plan", folder / "plan.yaml", "--out", out, "--engine", "duckdb"
    )
    assert code == 2
    assert "truncated.parquet" in text and "Traceback" not in text
    assert not out.exists() and not list(folder.glob(".bundle_truncated*"))


def test_corrupted_row_group_is_named(folder):
    out = folder / "bundle_corrupt"
    code, text = _run(
        "anonymize", folder / "corrupt.parquet", "--plan", folder / "plan.yaml", "--out", out, "--engine", "duckdb"
    )
    assert code == 2
    assert "corrupt.parquet" in text and "row group 2" in text
    assert not out.exists() and not list(folder.glob(".bundle_corrupt*"))


def test_good_file_goes_through(folder):
    out = folder / "bundle_good"
    code, text = _run(
        "anonymize", folder / "good.parquet", "--plan", folder / "plan.yaml", "--out", out, "--engine", "duckdb"
    )
    assert code == 0, text
    assert pq.ParquetFile(out / "good.parquet").num_row_groups == 4
    assert pl.read_parquet(out / "good.parquet").equals(pl.read_parquet(folder / "good.parquet"))


def test_require_targets_unmet_leaves_nothing(folder):
    plan = folder / "recode_only.yaml"
    plan.write_text("roles: {keys: [a, b]}\ntargets: {k: 100000}\nsteps:\n  - recode: {variable: a, map: {1: 0}}\n")
    out = folder / "bundle_unmet"
    code, text = _run(
        "anonymize", folder / "good.parquet", "--plan", plan, "--out", out, "--engine", "duckdb", "--require-targets"
    )
    assert code == 3, text
    assert not out.exists() and not list(folder.glob(".bundle_unmet*"))


def test_steps_the_out_of_core_path_does_not_run_are_refused(folder):
    """A recode of a non-key column and a method other than recode/local_suppression stop
    before anything is written, naming the step."""
    plans = {
        "nonkey.yaml": "roles: {keys: [a]}\nsteps:\n  - recode: {variable: b, map: {1: 0}}\n",
        "pram.yaml": "roles: {keys: [a, b]}\nsteps:\n  - pram: {variables: [a]}\n",
    }
    for name, text in plans.items():
        (folder / name).write_text(text)
        out = folder / f"bundle_{name}"
        code, msg = _run(
            "anonymize", folder / "good.parquet", "--plan", folder / name, "--out", out, "--engine", "duckdb"
        )
        assert code == 2, msg
        assert "step 1" in msg and "Traceback" not in msg
        assert not out.exists()
