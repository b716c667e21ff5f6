"""Read the first sheet of an Excel workbook (``.xlsx``, ``.xlsm``, ``.xls``, ``.ods``).

Many field offices keep their registration lists and needs assessments in
Excel. The sheet's first row holds the names; the types come from the cells (calamine
through ``fastexcel``: ``pip install safemicro[excel]``). A workbook with several sheets is
read from its first sheet with a warning naming the others, so nobody assumes a merge.
Blank cells are nulls; nothing else is recoded.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Codebook, Dataset, VariableMeta
from safemicro.io.readers_common import _check_columns, _check_duplicates, _first_line

EXCEL_EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".ods")


def _read_excel(p: Path, file: str, columns: Iterable[str] | None) -> Dataset:
    try:
        import fastexcel
    except ImportError:
        raise SafemicroError(
            "reading Excel workbooks needs fastexcel: pip install 'safemicro[excel]'", file=file
        ) from None
    try:
        book = fastexcel.read_excel(str(p))
        sheets = list(book.sheet_names)
    except Exception as e:
        raise SafemicroError(f"not a readable Excel workbook: {_first_line(e)}", file=file) from None
    if not sheets:
        raise SafemicroError("the workbook has no sheets", file=file)
    if len(sheets) > 1:
        others = ", ".join(repr(s) for s in sheets[1:])
        warnings.warn(f"{file}: read sheet {sheets[0]!r} only; the workbook also has {others}", stacklevel=3)
    try:
        frame = pl.read_excel(p, sheet_id=1, engine="calamine")
    except Exception as e:
        raise SafemicroError(f"cannot read sheet {sheets[0]!r}: {_first_line(e)}", file=file) from None
    names = [str(c) for c in frame.columns]
    _check_duplicates(names, file)
    wanted = _check_columns(names, columns, file)
    if wanted is not None:
        frame = frame.select(wanted)
    frame = frame.filter(~pl.all_horizontal(pl.all().is_null()))  # Excel's trailing blank rows
    codebook = Codebook(
        variables={c: VariableMeta(name=c) for c in frame.columns},
        notes=[f"read from sheet {sheets[0]!r}"],
    )
    return Dataset(frame=frame, codebook=codebook, source=file)
