"""What every reader shares: the format key of a path, the columns= and duplicate-name
checks, the no-records error, the measures a codebook knows, and the first line of a
dependency's message."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from safemicro.errors import SafemicroError

_MEASURES = {"nominal", "ordinal", "scale", "unknown"}


# --------------------------------------------------------------------------- helpers


def file_kind(path: str | os.PathLike[str]) -> str:
    """The format key for a path: 'csv', 'csv.gz', 'parquet', 'dta', 'sav', 'sas7bdat', 'excel'."""
    name = Path(path).name.lower()
    if name.endswith(".csv.gz"):
        return "csv.gz"
    suffix = Path(name).suffix
    if suffix == ".zsav":
        return "sav"
    if suffix in {".csv", ".parquet", ".dta", ".sav", ".sas7bdat"}:
        return suffix[1:]
    if suffix in {".xlsx", ".xlsm", ".xls", ".ods"}:
        return "excel"
    return ""


def _check_columns(available: list[str], columns: Iterable[str] | None, file: str) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [columns]
    wanted = list(columns)
    have = set(available)
    for c in wanted:
        if c not in have:
            raise SafemicroError(
                f"no column named {c!r} (the file has: {', '.join(available[:20])}"
                f"{', ...' if len(available) > 20 else ''})",
                file=file,
                column=c,
            )
    seen: set[str] = set()
    for c in wanted:
        if c in seen:
            raise SafemicroError("column requested twice in columns=", file=file, column=c)
        seen.add(c)
    return wanted


def _check_duplicates(names: list[str], file: str | None) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise SafemicroError("duplicate column name", file=file, column=n)
        seen.add(n)


def _no_records(file: str) -> SafemicroError:
    return SafemicroError("has no records (only a header or no rows)", file=file)


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__
