"""Every writer accepts every reader's output, long names, labels, notes and strings included:
texts beyond the SPSS/Stata limits are cut with a warning, invalid names replaced, and
errors and warnings name the user's path, never a staging file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pyreadstat
import pytest
from typer.testing import CliRunner

from safemicro import io
from safemicro.cli import app
from safemicro.errors import SafemicroError
from safemicro.io.dataset import Codebook, Dataset, VariableMeta
from safemicro.io.format_limits import fit_bytes, fit_format
from test_special_codes import LABELS, survey_frame

FORMATS = [".csv", ".csv.gz", ".parquet", ".dta", ".sav", ".zsav"]
LONG = "Montant mensuel déclaré du revenu du ménage, toutes sources confondues " * 6  # 432 chars, é
NAMES = ["income", "a" * 70, "1st visit", "FIXED.ASSETS", "ALL", "in", "é" * 40, "all_"]


def _long_metadata() -> Dataset:
    n = 30
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {
            NAMES[0]: [100, *rng.integers(101, 5000, n - 1)],
            NAMES[1]: rng.normal(size=n),
            NAMES[2]: rng.integers(1, 4, n),
            NAMES[3]: rng.integers(0, 10**6, n),
            NAMES[4]: rng.integers(0, 3, n),
            NAMES[5]: rng.integers(0, 3, n),
            NAMES[6]: [("x" * 3000 + "é") if i % 2 else "court" for i in range(n)],
            NAMES[7]: ["dont know" if i % 5 == 0 else "yes" for i in range(n)],
        }
    )
    cb = Codebook(
        variables={
            NAMES[0]: VariableMeta(NAMES[0], label=LONG, value_labels={100: "Refusé " + LONG}, missing_values=[100]),
            NAMES[2]: VariableMeta(NAMES[2], label="Visit", value_labels={1: LONG, 2: "two", 3: "three"}),
            NAMES[7]: VariableMeta(NAMES[7], label=LONG[:90], missing_values=["dont know"]),
        },
        file_label="Enquête " + LONG,
        notes=["Synthetic note: " + LONG, "second note with a very long word " + "x" * 200],
    )
    return Dataset(frame, cb)


def _values(ds: Dataset, codes_missing: bool) -> list[list]:
    """Cell values by position (names may change): strings with nulls as "" (SPSS/Stata have
    none), numbers with user-missing codes as NaN (Stata writes them as extended missing)."""
    out = []
    for s in ds.frame.iter_columns():
        if s.dtype == pl.String:
            out.append(s.fill_null("").to_list())
        else:
            x = (ds.analysis_column(s.name) if codes_missing else s).cast(pl.Float64).fill_null(np.nan).to_numpy()
            out.append(["nan" if np.isnan(v) else round(v, 9) for v in x])
    return out


@pytest.fixture(scope="module")
def reader_outputs(tmp_path_factory) -> dict[str, Dataset]:
    """The dataset written to every format and read back: what each reader gives."""
    folder = tmp_path_factory.mktemp("readers")
    out = {}
    for ext in FORMATS:
        path = folder / f"source{ext}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            io.write(_long_metadata(), path)
        out[ext] = io.read(path)
    return out


@pytest.mark.parametrize("target", FORMATS)
@pytest.mark.parametrize("source", FORMATS)
def test_every_reader_into_every_writer(reader_outputs, source, target, tmp_path):
    ds = reader_outputs[source]
    path = tmp_path / f"out{target}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        io.write(ds, path)
    back = io.read(path)
    assert back.n == ds.n and len(back.columns) == len(ds.columns)
    dta = target == ".dta" or source == ".dta"
    assert _values(back, dta) == _values(ds, dta)
    messages = [str(w.message) for w in caught]
    assert all(m.startswith(str(path)) for m in messages), messages
    if target in (".sav", ".zsav", ".dta"):
        if source in (".csv", ".csv.gz", ".parquet"):  # names valid nowhere else
            assert any("changed to fit" in m and "renamed" in m for m in messages), messages
        names = back.columns
        assert len({n.lower() for n in names}) == len(names)
        cb = back.codebook
        if target == ".dta":
            assert all(len(n) <= 32 and n.isidentifier() for n in names)
            assert all(len(cb.meta(n).label or "") <= 80 for n in names)
        else:
            assert all(len(n.encode()) <= 64 and n.upper() not in {"ALL", "AND", "BY", "TO", "WITH"} for n in names)
            assert all(len((cb.meta(n).label or "").encode()) <= 256 for n in names)
            assert cb.file_label is None or len(cb.file_label.encode()) <= 64
            if source in (".parquet", ".sav", ".zsav"):  # the readers that keep notes
                assert cb.notes and all(len(line.encode()) <= 80 for line in cb.notes)
                assert "".join(cb.notes).replace(" ", "").startswith("Syntheticnote:Montant")
        # the long value label is cut, not lost (CSV has no labels; SPSS none for Stata's .a)
        first = cb.meta(names[0])
        if source not in (".csv", ".csv.gz") and not (source == ".dta" and target != ".dta"):
            assert any(str(v).startswith("Refusé Montant") for v in first.value_labels.values())


def test_cut_at_a_character_boundary():
    assert fit_bytes("é" * 100, 64) == "é" * 30 + "…" and len(fit_bytes("é" * 100, 64).encode()) <= 64
    assert fit_bytes("short", 64) == "short"
    ds, changes = fit_format(_long_metadata(), "sav")
    assert ds.columns[1] == "a" * 64 and ds.columns[2] == "v1st_visit" and ds.columns[7] == "all_"
    assert ds.columns[4] == "ALL__2"  # "ALL_" would be "all_" for SPSS, which ignores case
    assert ds.codebook.meta("v1st_visit").label == "Visit"
    assert ds.codebook.meta("a" * 64).label == "a" * 70  # the old name becomes the label
    assert ds.codebook.meta("all_").missing_values == []  # 9-byte string code: SPSS keeps 8
    assert any("user-missing string codes" in c for c in changes)
    dta, _ = fit_format(_long_metadata(), "dta")
    assert dta.columns[3] == "FIXED_ASSETS" and dta.columns[5] == "in_" and dta.columns[6] == "é" * 32
    assert dta.codebook.notes == []


def test_writer_errors_name_the_users_path(tmp_path):
    ds = Dataset(pl.DataFrame({"x": [[1, 2], [3]]}))
    staged = tmp_path / ".out.sav.tmp.sav"
    with pytest.raises(SafemicroError) as e:
        io.write(ds, staged, report_as=tmp_path / "out.sav")
    assert str(tmp_path / "out.sav") in str(e.value) and ".tmp" not in str(e.value)


def _survey_with_free_text(path: Path) -> Path:
    """An SPSS survey (labels, user-missing codes) with a many-valued text column, about
    which the synthesizer writes a note longer than SPSS's 80-byte note lines."""
    frame = survey_frame()
    rng = np.random.default_rng(4)
    frame["occupation"] = [f"occupation {int(i)}" for i in rng.integers(0, 1000, len(frame))]
    pyreadstat.write_sav(
        frame,
        str(path),
        file_label="Household survey 2024",
        variable_value_labels=LABELS,
        missing_ranges={"income": [-9], "age": [99]},
    )
    return path


def test_cli_synthesize_to_sav_with_long_notes(tmp_path):
    data = _survey_with_free_text(tmp_path / "survey.sav")
    out = tmp_path / "synthetic.sav"
    result = CliRunner().invoke(app, ["synthesize", str(data), "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert ".tmp" not in result.output
    back = io.read(out)
    assert back.n == 400 and back.columns == ["sex", "region", "age", "income", "occupation"]
    assert back.codebook.meta("income").missing_values == [-9]
    assert back.codebook.meta("sex").value_labels == {1: "Male", 2: "Female"}
    notes = back.codebook.notes
    assert len(notes) > 1 and all(len(n.encode()) <= 80 for n in notes)
    assert " ".join(notes).startswith("occupation: ") and "never copied" in notes[-1]
