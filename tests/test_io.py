"""Tests for safemicro.io: round trips, labels, missing codes, errors, atomic writes."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import os
from pathlib import Path

import polars as pl
import pyreadstat
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from safemicro.errors import SafemicroError
from safemicro.io import Codebook, Dataset, VariableMeta, from_frame, read, write

TESTDATA = Path(__file__).resolve().parent / "data" / "sdcmicro" / "testdata.csv"


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def labelled_dataset() -> Dataset:
    """A small survey-like dataset with labels and both kinds of missing."""
    frame = pl.DataFrame(
        {
            "id": pl.Series([1, 2, 3, 4, 5], dtype=pl.Int32),
            "sex": pl.Series([1, 2, 2, 1, 2], dtype=pl.Int32),
            "income": [1200.5, None, 99.0, -5.0, 300.25],
            "region": ["north", "south", "east", "west", "north"],
        }
    )
    cb = Codebook(file_label="Test survey 2024")
    cb.variables["id"] = VariableMeta("id", label="Respondent id", measure="scale")
    cb.variables["sex"] = VariableMeta(
        "sex", label="Sex of respondent", value_labels={1: "male", 2: "female"}, measure="nominal"
    )
    cb.variables["income"] = VariableMeta("income", label="Monthly income", measure="scale")
    cb.variables["region"] = VariableMeta("region", label="Region", measure="nominal")
    return Dataset(frame=frame, codebook=cb)


# --------------------------------------------------------------------------- CSV


def test_read_testdata_csv_values_match_csv_module():
    before = sha(TESTDATA)
    ds = read(TESTDATA)
    assert sha(TESTDATA) == before
    with TESTDATA.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert ds.columns == header
    assert ds.n == len(body) == 4580
    assert ds.frame.schema["age"] == pl.Int64
    assert ds.frame.schema["income"] == pl.Float64
    ages = [int(r[header.index("age")]) for r in body]
    assert ds.frame["age"].to_list() == ages
    incomes = [float(r[header.index("income")]) for r in body]
    assert ds.frame["income"].to_list() == incomes
    assert ds.source == str(TESTDATA)
    assert set(ds.codebook.variables) == set(header)


def test_read_testdata_columns_subset_in_requested_order():
    ds = read(TESTDATA, columns=["sex", "age", "urbrur"])
    assert ds.columns == ["sex", "age", "urbrur"]
    full = read(TESTDATA)
    assert_frame_equal(ds.frame, full.frame.select(["sex", "age", "urbrur"]))


def test_csv_nulls_and_types(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("x,y,z\n1,NA,foo\n2,,\n3,2.5,bar\n", encoding="utf-8")
    ds = read(p)
    assert ds.frame.schema == pl.Schema({"x": pl.Int64, "y": pl.Float64, "z": pl.String})
    assert ds.frame["y"].to_list() == [None, None, 2.5]
    assert ds.frame["z"].to_list() == ["foo", None, "bar"]


def test_csv_type_inferred_from_whole_file(tmp_path):
    p = tmp_path / "late.csv"
    lines = ["v"] + ["1"] * 5000 + ["1.5"]
    p.write_text("\n".join(lines) + "\n")
    ds = read(p)
    assert ds.frame.schema["v"] == pl.Float64
    assert ds.frame["v"][-1] == 1.5


def test_csv_bom_is_ignored(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufeffa,b\n1,2\n".encode("utf-8"))
    assert read(p).columns == ["a", "b"]


@pytest.mark.parametrize("name", ["out.csv", "out.csv.gz"])
def test_csv_round_trip(tmp_path, name):
    ds = labelled_dataset()
    target = write(ds, tmp_path / name)
    assert leftovers(tmp_path) == [name]
    back = read(target)
    expected = ds.frame.with_columns(pl.col("id", "sex").cast(pl.Int64))
    assert_frame_equal(back.frame, expected)
    # CSV carries values only: no labels, no sidecar files
    assert back.codebook.variables["sex"].value_labels == {}
    if name.endswith(".gz"):
        assert gzip.decompress(target.read_bytes()).startswith(b"id,sex,income,region\n")


def test_csv_bytes_are_the_bytes_write_puts_in_a_csv(tmp_path):
    from safemicro.io.writers import csv_bytes

    ds = labelled_dataset()
    ds.codebook.variables["income"].missing_values = [99.0]
    assert csv_bytes(ds) == write(ds, tmp_path / "m.csv").read_bytes()
    assert gzip.decompress(write(ds, tmp_path / "m.csv.gz").read_bytes()) == csv_bytes(ds)


def test_csv_write_keeps_user_missing_codes_as_values(tmp_path):
    ds = labelled_dataset()
    ds.codebook.variables["income"].missing_values = [99.0]
    write(ds, tmp_path / "m.csv")
    text = (tmp_path / "m.csv").read_text().splitlines()
    assert text[0] == "id,sex,income,region"
    assert text[3] == "3,2,99.0,east"
    assert text[2] == "2,2,,south"


# --------------------------------------------------------------------------- Parquet


def test_parquet_round_trip_with_codebook(tmp_path):
    ds = labelled_dataset()
    ds.codebook.variables["income"].missing_values = [99.0]
    ds.codebook.variables["income"].missing_ranges = [(-9.0, -1.0)]
    ds.codebook.variables["sex"].value_labels = {1: "male", 2: "female"}
    ds.codebook.extended_missing = {"income": {1: "a"}}
    ds.codebook.notes = ["a note"]
    write(ds, tmp_path / "d.parquet")
    back = read(tmp_path / "d.parquet")
    assert_frame_equal(back.frame, ds.frame)  # dtypes exact
    assert back.codebook == ds.codebook
    # value types survive the JSON trip (int codes stay int, float codes stay float)
    assert list(back.codebook.variables["sex"].value_labels) == [1, 2]
    assert isinstance(back.codebook.variables["income"].missing_values[0], float)
    # user-missing codes become null only in the analysis view
    assert back.frame["income"].to_list()[2:4] == [99.0, -5.0]
    assert back.analysis_column("income").to_list() == [1200.5, None, None, None, 300.25]


def test_parquet_columns_subset_filters_codebook(tmp_path):
    ds = labelled_dataset()
    write(ds, tmp_path / "d.parquet")
    back = read(tmp_path / "d.parquet", columns=["sex"])
    assert back.columns == ["sex"]
    assert list(back.codebook.variables) == ["sex"]
    assert back.codebook.variables["sex"].value_labels == {1: "male", 2: "female"}


def test_plain_parquet_without_codebook(tmp_path):
    p = tmp_path / "plain.parquet"
    pl.DataFrame({"a": [1, 2]}).write_parquet(p)
    back = read(p)
    assert back.frame["a"].to_list() == [1, 2]
    assert back.codebook.variables["a"] == VariableMeta("a")


# --------------------------------------------------------------------------- Stata


def test_dta_round_trip_labels_and_extended_missing(tmp_path):
    ds = labelled_dataset()
    # rows 1 and 3 of income are Stata .a / .b; row 1 is null in the frame
    frame = ds.frame.with_columns(pl.Series("income", [1200.5, None, 99.0, None, None]))
    ds = ds.with_frame(frame)
    ds.codebook.extended_missing = {"income": {1: "a", 3: "b"}}  # row 4 stays plain "."
    ds.codebook.variables["income"].format = "%9.2f"

    write(ds, tmp_path / "s.dta")
    assert leftovers(tmp_path) == ["s.dta"]
    back = read(tmp_path / "s.dta")

    assert back.columns == ds.columns
    assert back.frame["id"].to_list() == [1, 2, 3, 4, 5]
    assert back.frame["sex"].to_list() == [1, 2, 2, 1, 2]
    assert back.frame["income"].to_list() == [1200.5, None, 99.0, None, None]
    assert back.frame["region"].to_list() == ["north", "south", "east", "west", "north"]
    assert back.frame.schema["sex"] == pl.Int32  # Stata long
    assert back.frame.schema["income"] == pl.Float64  # Stata double
    assert back.codebook.extended_missing == {"income": {1: "a", 3: "b"}}
    assert back.codebook.file_label == "Test survey 2024"
    for name in ds.columns:
        assert back.codebook.variables[name].label == ds.codebook.variables[name].label
    assert back.codebook.variables["sex"].value_labels == {1: "male", 2: "female"}
    assert back.codebook.variables["sex"].measure == "nominal"
    assert back.codebook.variables["income"].measure == "scale"
    assert back.codebook.variables["income"].format == "%9.2f"

    # the letters really are in the file (read independently of safemicro)
    raw, meta = pyreadstat.read_dta(str(tmp_path / "s.dta"), user_missing=True)
    assert list(raw["income"])[1] == "a" and list(raw["income"])[3] == "b"
    assert sorted(meta.missing_user_values["income"]) == ["a", "b"]

    # a second trip changes nothing (dtypes included)
    write(back, tmp_path / "s2.dta")
    again = read(tmp_path / "s2.dta")
    assert_frame_equal(again.frame, back.frame)
    assert again.codebook.variables == back.codebook.variables
    assert again.codebook.extended_missing == back.codebook.extended_missing


def test_read_dta_written_by_pyreadstat(tmp_path):
    import pandas as pd

    p = tmp_path / "ext.dta"
    df = pd.DataFrame(
        {
            "q": pd.Series([1.0, "a", float("nan"), "z", 5.0], dtype=object),
            "k": pd.Series([1, 2, 1, 2, 1], dtype="int32"),
        }
    )
    pyreadstat.write_dta(
        df,
        str(p),
        file_label="FL",
        column_labels={"q": "Question", "k": "Kind"},
        variable_value_labels={"k": {1: "yes", 2: "no"}},
        missing_user_values={"q": ["a", "z"]},
    )
    before = sha(p)
    ds = read(p)
    assert sha(p) == before
    assert ds.frame["q"].to_list() == [1.0, None, None, None, 5.0]
    assert ds.frame["k"].to_list() == [1, 2, 1, 2, 1]
    assert ds.frame.schema["k"] == pl.Int32
    assert ds.codebook.extended_missing == {"q": {1: "a", 3: "z"}}
    assert ds.codebook.variables["q"].label == "Question"
    assert ds.codebook.variables["k"].value_labels == {1: "yes", 2: "no"}
    assert ds.codebook.file_label == "FL"
    # extended missing count as missing in analysis
    assert ds.analysis_column("q").null_count() == 3


def test_dta_columns_subset_keeps_extended_missing(tmp_path):
    ds = labelled_dataset()
    ds = ds.with_frame(ds.frame.with_columns(pl.Series("income", [None, 1.0, 2.0, 3.0, 4.0])))
    ds.codebook.extended_missing = {"income": {0: "c"}}
    write(ds, tmp_path / "s.dta")
    back = read(tmp_path / "s.dta", columns=["income", "sex"])
    assert back.columns == ["income", "sex"]
    assert back.codebook.extended_missing == {"income": {0: "c"}}


def test_dta_warns_about_spss_missing_codes(tmp_path):
    ds = labelled_dataset()
    ds.codebook.variables["income"].missing_values = [99.0]
    assert ds.frame["income"][2] == 99.0
    with pytest.warns(UserWarning, match=r"user-missing codes written as Stata extended missing \(99 as \.a\)"):
        write(ds, tmp_path / "w.dta")
    back = read(tmp_path / "w.dta")
    # Stata has no user-missing codes: the code becomes the extended missing value .a
    assert back.frame["income"][2] is None
    assert back.codebook.extended_missing["income"] == {2: "a"}
    assert ds.frame["income"][2] == 99.0  # the dataset written is not modified


# --------------------------------------------------------------------------- SPSS


def spss_dataset() -> Dataset:
    ds = labelled_dataset()
    frame = ds.frame.with_columns(
        pl.Series("q1", [1.0, 99.0, -5.0, 2.0, 3.0]),
        pl.Series("q2", [97.0, 98.0, 1.0, 99.0, 2.0]),
    )
    ds = Dataset(frame=frame, codebook=ds.codebook)
    ds.codebook.variables["q1"] = VariableMeta(
        "q1",
        label="Satisfaction",
        value_labels={1.0: "low", 2.0: "mid", 3.0: "high", 99.0: "refused"},
        missing_values=[99.0],
        missing_ranges=[(-9.0, -1.0)],
        measure="ordinal",
    )
    ds.codebook.variables["q2"] = VariableMeta(
        "q2", label="Trust", missing_values=[97.0, 98.0, 99.0], measure="ordinal"
    )
    ds.codebook.variables["region"].value_labels = {"north": "Northern", "south": "Southern"}
    ds.codebook.notes = ["collected in 2024"]
    return ds


@pytest.mark.parametrize("name", ["p.sav", "p.zsav"])
def test_sav_round_trip_user_missing_and_labels(tmp_path, name):
    ds = spss_dataset()
    write(ds, tmp_path / name)
    assert leftovers(tmp_path) == [name]
    back = read(tmp_path / name)

    # codes are kept in the frame, not turned into nulls
    assert back.frame["q1"].to_list() == [1.0, 99.0, -5.0, 2.0, 3.0]
    assert back.frame["q2"].to_list() == [97.0, 98.0, 1.0, 99.0, 2.0]
    assert back.frame["income"].to_list() == [1200.5, None, 99.0, -5.0, 300.25]
    assert back.frame["sex"].to_list() == [1.0, 2.0, 2.0, 1.0, 2.0]  # SPSS numerics are doubles
    assert back.frame.schema["sex"] == pl.Float64
    assert back.frame["region"].to_list() == ["north", "south", "east", "west", "north"]

    q1, q2 = back.codebook.variables["q1"], back.codebook.variables["q2"]
    assert q1.missing_values == [99.0]
    assert q1.missing_ranges == [(-9.0, -1.0)]
    assert sorted(q2.missing_values) == [97.0, 98.0, 99.0]
    assert q2.missing_ranges == []
    assert q1.value_labels == {1.0: "low", 2.0: "mid", 3.0: "high", 99.0: "refused"}
    assert back.codebook.variables["region"].value_labels == {"north": "Northern", "south": "Southern"}
    assert back.codebook.variables["sex"].value_labels == {1.0: "male", 2.0: "female"}
    for n in ds.columns:
        assert back.codebook.variables[n].label == ds.codebook.variables[n].label
        assert back.codebook.variables[n].measure == ds.codebook.variables[n].measure
    assert back.codebook.file_label == "Test survey 2024"
    assert back.codebook.notes == ["collected in 2024"]
    assert back.codebook.variables["sex"].format == "F8.0"

    assert back.analysis_column("q1").to_list() == [1.0, None, None, 2.0, 3.0]
    assert back.analysis_column("q2").to_list() == [None, None, 1.0, None, 2.0]

    # second trip is a fixpoint
    write(back, tmp_path / ("again" + Path(name).suffix))
    again = read(tmp_path / ("again" + Path(name).suffix))
    assert_frame_equal(again.frame, back.frame)
    assert again.codebook.variables == back.codebook.variables


def test_read_sav_written_by_pyreadstat(tmp_path):
    p = tmp_path / "ext.sav"
    df = pl.DataFrame({"v": [1.0, 8.0, 9.0, 4.0], "s": ["a", "b", "c", "d"]})
    pyreadstat.write_sav(
        df,
        str(p),
        column_labels={"v": "Value"},
        variable_value_labels={"v": {8.0: "dk", 9.0: "na"}},
        missing_ranges={"v": [{"lo": 8.0, "hi": 9.0}]},
        variable_measure={"v": "scale", "s": "nominal"},
    )
    before = sha(p)
    ds = read(p)
    assert sha(p) == before
    assert ds.frame["v"].to_list() == [1.0, 8.0, 9.0, 4.0]
    assert ds.codebook.variables["v"].missing_ranges == [(8.0, 9.0)]
    assert ds.codebook.variables["v"].missing_values == []
    assert ds.codebook.variables["v"].measure == "scale"
    assert ds.codebook.variables["s"].measure == "nominal"
    assert ds.analysis_column("v").to_list() == [1.0, None, None, 4.0]


def test_dates_survive_dta_and_sav(tmp_path):
    frame = pl.DataFrame({"d": [dt.date(2020, 1, 31), None, dt.date(1999, 12, 1)], "x": [1, 2, 3]})
    for name in ["t.dta", "t.sav", "t.parquet"]:
        write(frame, tmp_path / name)
        back = read(tmp_path / name)
        assert back.frame["d"].to_list() == frame["d"].to_list(), name


# --------------------------------------------------------------------------- from_frame


def test_from_frame_polars_and_dataset():
    df = pl.DataFrame({"a": [1, 2]})
    ds = from_frame(df, source="mem")
    assert ds.frame is df and ds.source == "mem"
    assert from_frame(ds) is ds
    assert from_frame(df.lazy()).frame["a"].to_list() == [1, 2]


def test_from_frame_pandas_types_and_categoricals(tmp_path):
    pd = pytest.importorskip("pandas")
    pdf = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "f": [1.5, float("nan"), 2.5],
            "s": ["x", None, "z"],
            "cat": pd.Categorical(["low", None, "high"], categories=["low", "high"]),
            "ord": pd.Categorical(["b", "a", "b"], categories=["a", "b"], ordered=True),
            "numcat": pd.Categorical([10, 20, 10]),
        },
        index=[7, 8, 9],
    )
    ds = from_frame(pdf)
    assert ds.columns == ["n", "f", "s", "cat", "ord", "numcat"]
    assert ds.frame["n"].to_list() == [1, None, 3]
    assert ds.frame["f"].to_list()[0] == 1.5 and ds.frame["f"].to_list()[2] == 2.5
    assert ds.frame["s"].to_list() == ["x", None, "z"]
    assert ds.frame.schema["cat"] == pl.Int32
    assert ds.frame["cat"].to_list() == [1, None, 2]
    assert ds.codebook.variables["cat"].value_labels == {1: "low", 2: "high"}
    assert ds.codebook.variables["cat"].measure == "nominal"
    assert ds.frame["ord"].to_list() == [2, 1, 2]
    assert ds.codebook.variables["ord"].measure == "ordinal"
    assert ds.frame["numcat"].to_list() == [10, 20, 10]
    assert ds.codebook.variables["numcat"].value_labels == {}

    # pandas -> .dta keeps the categorical as labelled codes
    write(pdf, tmp_path / "pd.dta")
    back = read(tmp_path / "pd.dta")
    assert back.frame["cat"].to_list() == [1, None, 2]
    assert back.codebook.variables["cat"].value_labels == {1: "low", 2: "high"}


def test_from_frame_pandas_duplicate_columns():
    pd = pytest.importorskip("pandas")
    pdf = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(SafemicroError, match="duplicate") as e:
        from_frame(pdf, source="input.xlsx")
    assert e.value.column == "a"
    assert "input.xlsx" in str(e.value)


def test_from_frame_pandas_mixed_object_column():
    pd = pytest.importorskip("pandas")
    pdf = pd.DataFrame({"ok": [1, 2], "bad": pd.Series([1, "x"], dtype=object)})
    with pytest.raises(SafemicroError) as e:
        from_frame(pdf)
    assert e.value.column == "bad"


def test_from_frame_rejects_other_objects():
    with pytest.raises(SafemicroError):
        from_frame([1, 2, 3])


# --------------------------------------------------------------------------- read errors


def _err(path, **kw) -> SafemicroError:
    with pytest.raises(SafemicroError) as e:
        read(path, **kw)
    assert str(path) in str(e.value), str(e.value)
    assert e.value.file == str(path)
    return e.value


def test_missing_file(tmp_path):
    e = _err(tmp_path / "nope.csv")
    assert "not found" in str(e)


def test_unknown_extension(tmp_path):
    p = tmp_path / "data.numbers"
    p.write_bytes(b"x")
    assert "unknown file type" in str(_err(p))


@pytest.mark.parametrize("name", ["e.csv", "e.dta", "e.sav", "e.parquet", "e.csv.gz"])
def test_zero_byte_file(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"")
    assert "no records" in str(_err(p))


def test_header_only_csv(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("a,b,c\n")
    assert "has no records" in str(_err(p))


def test_zero_row_parquet_and_dta(tmp_path):
    empty = pl.DataFrame({"a": pl.Series([], dtype=pl.Float64)})
    empty.write_parquet(tmp_path / "z.parquet")
    assert "has no records" in str(_err(tmp_path / "z.parquet"))
    pyreadstat.write_dta(empty, str(tmp_path / "z.dta"))
    assert "has no records" in str(_err(tmp_path / "z.dta"))


def test_non_utf8_csv_names_row_and_latin1_works(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("name,age\nAnna,30\nJos\u00e9,41\n".encode("latin-1"))
    e = _err(p, encoding="utf-8")  # a wrong encoding given: the row and the option named
    assert e.row == 2
    assert "row 2" in str(e)
    assert "UTF-8".lower() in str(e).lower() and "--encoding" in str(e)
    ds = read(p, encoding="latin-1")
    assert ds.frame["name"].to_list() == ["Anna", "Jos\u00e9"]
    assert ds.frame["age"].to_list() == [30, 41]


def test_unknown_encoding(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("a\n1\n")
    assert "unknown encoding" in str(_err(p, encoding="no-such-codec"))


@pytest.mark.parametrize("text,row", [("a,b\n1,2\n3,4,5\n6,7\n", 2), ("a,b\n1,2\n3,4\n5\n", 3)])
def test_ragged_csv_names_row(tmp_path, text, row):
    p = tmp_path / "r.csv"
    p.write_text(text)
    e = _err(p)
    assert e.row == row
    assert f"row {row}" in str(e) and "ragged" in str(e)


def test_duplicate_csv_columns(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,b,a\n1,2,3\n")
    e = _err(p)
    assert e.column == "a" and "duplicate" in str(e)


def test_columns_not_in_file(tmp_path):
    ds = labelled_dataset()
    for name in ["c.csv", "c.parquet", "c.dta", "c.sav"]:
        write(ds, tmp_path / name)
        e = _err(tmp_path / name, columns=["sex", "agee"])
        assert e.column == "agee" and "'agee'" in str(e)


def test_corrupt_dta_and_sav(tmp_path):
    ds = labelled_dataset()
    write(ds, tmp_path / "ok.dta")
    write(ds, tmp_path / "ok.sav")
    (tmp_path / "trunc.dta").write_bytes((tmp_path / "ok.dta").read_bytes()[:150])
    (tmp_path / "trunc.sav").write_bytes((tmp_path / "ok.sav").read_bytes()[:300])
    (tmp_path / "junk.sav").write_bytes(b"this is not SPSS " * 20)
    (tmp_path / "junk.dta").write_bytes(b"\x00\x01garbage" * 30)
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "junk.sas7bdat").write_bytes(b"\x00" * 2048)
    for name in ["trunc.dta", "trunc.sav", "junk.sav", "junk.dta", "junk.parquet", "junk.sas7bdat"]:
        e = _err(tmp_path / name)
        assert "readable" in str(e) or "cannot read" in str(e), str(e)


def test_bad_gzip(tmp_path):
    p = tmp_path / "x.csv.gz"
    p.write_bytes(b"not gzip at all")
    assert "gzip" in str(_err(p))


# --------------------------------------------------------------------------- atomic writes


def test_write_unknown_extension_and_missing_dir(tmp_path):
    ds = labelled_dataset()
    with pytest.raises(SafemicroError, match="cannot write file type"):
        write(ds, tmp_path / "x.xlsx")
    with pytest.raises(SafemicroError, match="does not exist"):
        write(ds, tmp_path / "no" / "x.csv")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["bad.dta", "bad.sav", "bad.csv"])
def test_unwritable_column_leaves_nothing(tmp_path, name):
    frame = pl.DataFrame({"a": [1, 2], "nested": [[1, 2], [3]]})
    with pytest.raises(SafemicroError) as e:
        write(frame, tmp_path / name)
    assert name in str(e.value) and e.value.column == "nested"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fn,name", [("write_sav", "p.sav"), ("write_dta", "p.dta")])
def test_failure_midway_leaves_no_file_and_keeps_old_target(tmp_path, monkeypatch, fn, name):
    target = tmp_path / name
    ds = labelled_dataset()
    write(ds, target)
    before = sha(target)

    def broken(df, dst_path, **kw):
        Path(dst_path).write_bytes(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(pyreadstat, fn, broken)
    with pytest.raises(SafemicroError) as e:
        write(ds, target)
    assert name in str(e.value) and "disk full" in str(e.value)
    assert leftovers(tmp_path) == [name]
    assert sha(target) == before

    target.unlink()
    with pytest.raises(SafemicroError):
        write(ds, target)
    assert leftovers(tmp_path) == []


def test_failure_in_parquet_writer_leaves_nothing(tmp_path, monkeypatch):
    def broken(self, file, **kw):
        Path(file).write_bytes(b"PAR1")
        raise OSError("boom")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", broken)
    with pytest.raises(SafemicroError, match="boom"):
        write(labelled_dataset(), tmp_path / "x.parquet")
    assert leftovers(tmp_path) == []


def test_invalid_stata_value_labels_raise_cleanly(tmp_path):
    ds = labelled_dataset()
    ds.codebook.variables["sex"].value_labels = {1.5: "one and a half"}
    with pytest.warns(UserWarning, match="value labels"):
        write(ds, tmp_path / "v.dta")
    assert read(tmp_path / "v.dta").codebook.variables["sex"].value_labels == {}


def test_spss_too_many_missing_codes_is_safemicro_error(tmp_path):
    ds = labelled_dataset()
    ds.codebook.variables["income"].missing_values = [1.0, 2.0, 3.0]
    ds.codebook.variables["income"].missing_ranges = [(-9.0, -1.0)]
    with pytest.raises(SafemicroError) as e:
        write(ds, tmp_path / "m.sav")
    assert "m.sav" in str(e.value)
    assert leftovers(tmp_path) == []


def test_written_file_has_normal_permissions(tmp_path):
    write(labelled_dataset(), tmp_path / "perm.csv")
    mode = (tmp_path / "perm.csv").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


@pytest.mark.parametrize("ext", ["csv", "parquet", "dta", "sav"])
def test_testdata_round_trip_all_formats(tmp_path, ext):
    ds = read(TESTDATA)
    write(ds, tmp_path / f"t.{ext}")
    back = read(tmp_path / f"t.{ext}")
    assert back.columns == ds.columns
    for name in ds.columns:
        assert_series_equal(back.frame[name].cast(pl.Float64), ds.frame[name].cast(pl.Float64), check_names=True)


@pytest.mark.parametrize("ext", ["dta", "sav", "zsav"])
def test_timestamp_makes_stata_and_spss_reproducible(tmp_path, ext):
    frame = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    when = dt.datetime(2026, 11, 1, 12, 30)
    write(frame, tmp_path / f"one.{ext}", timestamp=when)
    write(frame, tmp_path / f"two.{ext}", timestamp=when)
    assert (tmp_path / f"one.{ext}").read_bytes() == (tmp_path / f"two.{ext}").read_bytes()
    reader = pyreadstat.read_dta if ext == "dta" else pyreadstat.read_sav
    meta = reader(str(tmp_path / f"one.{ext}"), metadataonly=True)[1]
    assert meta.creation_time == when


def test_stata_to_stata_keeps_labels_of_extended_missing(tmp_path):
    ds = Dataset(
        pl.DataFrame({"status": [1, 2, 98, 99, 1]}, schema={"status": pl.Int32}),
        Codebook(
            variables={
                "status": VariableMeta(
                    "status", value_labels={1: "Yes", 2: "No", 98: "Don't know", 99: "Refused"}, missing_values=[98, 99]
                )
            }
        ),
    )
    with pytest.warns(UserWarning, match="extended missing"):
        write(ds, tmp_path / "one.dta")
    first = read(tmp_path / "one.dta")
    write(first, tmp_path / "two.dta")  # no warning: everything is representable
    second = read(tmp_path / "two.dta")
    assert second.codebook.meta("status").value_labels == {1: "Yes", 2: "No", "a": "Don't know", "b": "Refused"}
    assert second.codebook.extended_missing == first.codebook.extended_missing == {"status": {2: "a", 3: "b"}}


@pytest.mark.parametrize(
    "values, codes",
    [([1.0, -9.0, None], [-9]), ([1, -9, None], [-9.0, 2.5]), (["a", "-9", None], ["-9"])],
)
def test_missing_codes_of_another_numeric_type_still_match(values, codes):
    ds = Dataset(pl.DataFrame({"x": values}), Codebook(variables={"x": VariableMeta("x", missing_values=codes)}))
    assert ds.frame.select(ds.missing_expr("x"))["x"].to_list() == [False, True, True]
