"""Excel workbooks in: values and types from the cells, the first sheet with a warning naming
the others, and one clear error for a damaged workbook or an unknown column."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from safemicro import io
from safemicro.cli import app
from safemicro.errors import SafemicroError

pytest.importorskip("fastexcel")
xlsxwriter = pytest.importorskip("xlsxwriter")

FRAME = pl.DataFrame(
    {
        "camp": ["A", "A", "B", "B", "C"],
        "sex": [1, 2, 1, 2, 1],
        "age": [34, 7, 61, None, 22],
        "assistance": [120.5, 0.0, 88.25, 40.0, None],
    }
)


def _workbook(path, sheets: dict[str, pl.DataFrame]) -> None:
    with xlsxwriter.Workbook(str(path)) as wb:
        for name, frame in sheets.items():
            frame.write_excel(wb, worksheet=name)


def test_an_xlsx_sheet_reads_with_its_values_and_types(tmp_path):
    path = tmp_path / "registration.xlsx"
    _workbook(path, {"households": FRAME})
    ds = io.read(path)
    assert ds.frame.columns == FRAME.columns
    assert ds.frame.get_column("camp").to_list() == ["A", "A", "B", "B", "C"]
    assert ds.frame.get_column("age").to_list() == [34, 7, 61, None, 22]
    assert ds.frame.get_column("assistance").to_list() == [120.5, 0.0, 88.25, 40.0, None]
    assert ds.frame.schema["sex"].is_numeric() and ds.frame.schema["camp"] == pl.String
    assert io.read(path, columns=["age", "camp"]).frame.columns == ["age", "camp"]


def test_only_the_first_sheet_is_read_and_the_others_are_named(tmp_path):
    path = tmp_path / "survey.xlsx"
    _workbook(path, {"members": FRAME, "codes": pl.DataFrame({"code": [1, 2]})})
    with pytest.warns(UserWarning, match="'codes'"):
        ds = io.read(path)
    assert ds.n == FRAME.height


def test_a_damaged_workbook_or_an_unknown_column_is_one_clear_error(tmp_path):
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(SafemicroError, match="not a readable Excel workbook") as e:
        io.read(broken)
    assert "broken.xlsx" in str(e.value)
    good = tmp_path / "good.xlsx"
    _workbook(good, {"s": FRAME})
    with pytest.raises(SafemicroError, match="nope"):
        io.read(good, columns=["camp", "nope"])


def test_assess_reads_an_xlsx_from_the_command_line(tmp_path):
    path = tmp_path / "list.xlsx"
    _workbook(path, {"s": FRAME})
    result = CliRunner().invoke(app, ["assess", str(path), "--keys", "camp,sex", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert '"n_records": 5' in (tmp_path / "r.json").read_text(encoding="utf-8")
