"""CSV files in the encodings curators get (Excel and older systems) read correctly without
a flag: UTF-8 with or without a byte-order mark, else the detected Windows code page, said in
a warning that names ``--encoding``; a wrong ``--encoding`` names the option, not Python's
``encoding=``."""

from __future__ import annotations

import codecs

import pytest
from typer.testing import CliRunner

from safemicro.cli import app
from safemicro.errors import SafemicroError
from safemicro.io import read

# accented labels as they appear in displacement surveys
FRENCH = (
    "id,region,statut\n1,Île-de-France,Réfugié\n2,Côte d'Ivoire,Déplacé interne\n3,Franche-Comté,Demandeur d'asile\n"
)
WINDOWS = "id,region,statut\n1,Côte d’Ivoire,Réfugié – reconnu\n2,Bogotá,Œuvre “d’accueil”\n3,Nariño,Déplacé\n"
ARABIC = "id,governorate,status\n1,دمشق,لاجئ\n2,حلب,نازح داخليا\n3,درعا,طالب لجوء\n4,حمص,عائد\n"


def _write(tmp_path, text: str, encoding: str, bom: bytes = b"") -> object:
    p = tmp_path / f"survey_{encoding}.csv"
    p.write_bytes(bom + text.encode(encoding))
    return p


def _column(ds, name):
    return ds.frame.get_column(name).to_list()


@pytest.mark.parametrize(
    "text, encoding, said",
    [
        (FRENCH, "latin-1", "cp1252"),  # latin-1 letters read the same in cp1252
        (WINDOWS, "cp1252", "cp1252"),  # curly quotes, dash, Œ: only cp1252 has them
        (ARABIC, "cp1256", "cp1256"),
    ],
    ids=["latin-1", "cp1252", "cp1256"],
)
def test_legacy_encodings_are_detected_and_reported(tmp_path, text, encoding, said):
    p = _write(tmp_path, text, encoding)
    with pytest.warns(UserWarning, match=f"read as {said}.*--encoding") as caught:
        ds = read(p)
    assert str(p) in str(caught[0].message)
    expected = [line.split(",") for line in text.splitlines()[1:]]
    assert _column(ds, ds.columns[1]) == [row[1] for row in expected]
    assert _column(ds, "status" if "status" in ds.columns else "statut") == [row[2] for row in expected]


@pytest.mark.parametrize("encoding, bom", [("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE)])
def test_byte_order_mark_decides(tmp_path, recwarn, encoding, bom):
    ds = read(_write(tmp_path, WINDOWS, encoding, bom))
    assert ds.columns == ["id", "region", "statut"]  # no BOM glued to the first name
    assert _column(ds, "statut")[1] == "Œuvre “d’accueil”"
    assert not [w for w in recwarn if "read as" in str(w.message)]  # nothing guessed


def test_plain_utf8_is_read_without_a_warning(tmp_path, recwarn):
    ds = read(_write(tmp_path, ARABIC, "utf-8"))
    assert _column(ds, "governorate")[0] == "دمشق"
    assert not [w for w in recwarn if "read as" in str(w.message)]


def test_wrong_encoding_names_the_option(tmp_path):
    p = _write(tmp_path, FRENCH, "latin-1")
    with pytest.raises(SafemicroError) as e:
        read(p, encoding="utf-8")
    msg = str(e.value)
    assert "row 1" in msg and "--encoding" in msg and "encoding=" not in msg


def test_undetectable_bytes_name_the_option(tmp_path):
    p = tmp_path / "binary.csv"
    p.write_bytes(b"a,b\n1,\x81\x8d\x8f\x90\x9d\x00\xff\xfe\n")
    with pytest.raises(SafemicroError, match="could not be detected; give it with --encoding"):
        read(p)


def test_cli_reports_the_detected_encoding_on_one_line(tmp_path):
    p = _write(tmp_path, WINDOWS, "cp1252")
    r = CliRunner(env={"SAFEMICRO_DEBUG": None}).invoke(app, ["init", str(p), "--out", str(tmp_path / "plan.yaml")])
    assert r.exit_code == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if "read as" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "--encoding" in lines[0]
    assert "Côte d’Ivoire" in r.stderr  # the sample lets the curator check the guess


def test_bad_bytes_after_a_byte_order_mark_are_located_in_the_file(tmp_path):
    """The offset, line and bytes named are the file's own (the mark counts)."""
    raw = codecs.BOM_UTF8 + b"a,b\n1,2\n3,\xff\n"
    path = tmp_path / "bom_bad.csv"
    path.write_bytes(raw)
    with pytest.raises(SafemicroError) as err:
        read(path)
    message, offset = str(err.value), raw.index(b"\xff")
    assert f"byte offset {offset} " in message and "bytes ff 0a" in message
    assert "line 3" in message and err.value.row == 2
