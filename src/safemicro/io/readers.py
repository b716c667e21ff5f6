"""Read microdata files (CSV, Parquet, Stata, SPSS, SAS, Excel) into a :class:`Dataset`.

Conventions (see also :mod:`safemicro.io.writers`):

* **User-missing codes** (SPSS) stay in the frame as the original values (``99`` stays
  ``99``); the codebook lists them: discrete codes in ``VariableMeta.missing_values``,
  inclusive ranges in ``VariableMeta.missing_ranges`` (readstat reports discrete SPSS
  codes as ``lo == hi`` ranges; those become discrete codes).
* **Stata extended missing** (``.a`` ... ``.z``) become null in the frame; the letter is
  kept in ``Codebook.extended_missing[column][row_index] = "a"`` (0-based row index) so
  that writing a ``.dta`` restores it. Plain ``.`` is an ordinary null.
* **Dtypes are those of the file**: Stata byte/int/long -> Int8/Int16/Int32, float ->
  Float32, double -> Float64; SPSS numerics are doubles -> Float64; dates come out as
  Polars Date/Datetime. CSV types are inferred from the whole file (Int64, Float64,
  String); ``""`` and ``"NA"`` are read as null.
* Every failure is a :class:`~safemicro.errors.SafemicroError` naming the file (and the
  column/row when known). Row numbers are 1-based data rows (the CSV header is not a row).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from safemicro.errors import SafemicroError
from safemicro.io.codebook_json import codebook_from_json, codebook_to_json
from safemicro.io.dataset import Dataset
from safemicro.io.readers_common import _first_line as _first_line
from safemicro.io.readers_common import _no_records, file_kind
from safemicro.io.readers_csv import _read_csv
from safemicro.io.readers_excel import EXCEL_EXTENSIONS, _read_excel
from safemicro.io.readers_frame import from_frame
from safemicro.io.readers_parquet import PARQUET_CODEBOOK_KEY as PARQUET_CODEBOOK_KEY
from safemicro.io.readers_parquet import _read_parquet
from safemicro.io.readers_readstat import _read_readstat

__all__ = [
    "read",
    "from_frame",
    "READ_EXTENSIONS",
    "codebook_to_json",
    "codebook_from_json",
]

READ_EXTENSIONS = (".csv", ".csv.gz", ".parquet", ".dta", ".sav", ".zsav", ".sas7bdat", *EXCEL_EXTENSIONS)


# --------------------------------------------------------------------------- read


def read(
    path: str | os.PathLike[str],
    *,
    columns: Iterable[str] | None = None,
    encoding: str | None = None,
) -> Dataset:
    """Read a microdata file into a :class:`Dataset`; the format comes from the extension.

    ``columns`` keeps only these columns (in the order given); a name that is not in the
    file is an error naming it. ``encoding`` is the text encoding of a CSV (default:
    UTF-8 or a byte-order mark's, else detected with a warning; see :mod:`safemicro.io.encoding`) or the character encoding passed to readstat
    for Stata/SPSS/SAS files (default: what the file declares).
    """
    p = Path(path)
    file = str(path)
    kind = file_kind(p)
    if not kind:
        raise SafemicroError(
            f"unknown file type {''.join(p.suffixes) or '(no extension)'!r}; "
            f"expected one of {', '.join(READ_EXTENSIONS)}",
            file=file,
        )
    if not p.exists():
        raise SafemicroError("file not found", file=file)
    if p.is_dir():
        raise SafemicroError("is a directory, not a file", file=file)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise SafemicroError(f"cannot access file: {e.strerror or e}", file=file) from None
    if size == 0:
        raise SafemicroError("is empty (0 bytes): has no records", file=file)

    try:
        if kind in ("csv", "csv.gz"):
            ds = _read_csv(p, file, columns, encoding, gz=kind == "csv.gz")
        elif kind == "parquet":
            ds = _read_parquet(p, file, columns)
        elif kind == "excel":
            ds = _read_excel(p, file, columns)
        else:
            ds = _read_readstat(p, file, kind, columns, encoding)
    except SafemicroError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # never leak a dependency's traceback
        raise SafemicroError(f"cannot read file: {type(e).__name__}: {e}", file=file) from None
    if ds.frame.height == 0:
        raise _no_records(file)
    ds.source = file
    return ds
