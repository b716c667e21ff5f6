"""Read a CSV (or gzipped CSV) file: decoded text, checked in one pass, parsed by Polars."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Codebook, Dataset
from safemicro.io.encoding import decode_text
from safemicro.io.readers_common import _check_columns, _check_duplicates, _first_line, _no_records


def _read_csv(p: Path, file: str, columns: Iterable[str] | None, encoding: str | None, gz: bool) -> Dataset:
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise SafemicroError(f"cannot read file: {e.strerror or e}", file=file) from None
    if gz:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise SafemicroError(f"not a valid gzip file: {e}", file=file) from None

    text = decode_text(raw, file, encoding)
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise SafemicroError("is empty (no header, no records): has no records", file=file)

    # One pass with the csv module: header, duplicate names, ragged rows, record count.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as e:
        raise SafemicroError(f"malformed CSV header: {e}", file=file) from None
    _check_duplicates(header, file)
    ncol = len(header)
    nrec = 0
    row = 0
    try:
        for rec in reader:
            row += 1
            if not rec:  # blank line
                continue
            nrec += 1
            if len(rec) != ncol:
                raise SafemicroError(
                    f"ragged row: {len(rec)} fields where the header has {ncol}",
                    file=file,
                    row=row,
                )
    except csv.Error as e:
        raise SafemicroError(f"malformed CSV: {e}", file=file, row=row + 1) from None
    if nrec == 0:
        raise _no_records(file)

    wanted = _check_columns(header, columns, file)
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            infer_schema_length=None,
            null_values=["", "NA"],
            columns=wanted,
        )
    except Exception as e:
        raise SafemicroError(f"cannot parse CSV: {_first_line(e)}", file=file) from None
    if wanted is not None:
        frame = frame.select(wanted)
    return Dataset(frame=frame, codebook=Codebook(), source=file)
