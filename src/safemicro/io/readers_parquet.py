"""Read a Parquet file with the safemicro codebook stored in its metadata, if any."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.codebook_json import codebook_from_json
from safemicro.io.dataset import Codebook, Dataset, VariableMeta
from safemicro.io.readers_common import _check_columns, _check_duplicates, _first_line

PARQUET_CODEBOOK_KEY = "safemicro.codebook"


def _read_parquet(p: Path, file: str, columns: Iterable[str] | None) -> Dataset:
    try:
        schema = pl.read_parquet_schema(p)
        kv = pl.read_parquet_metadata(p) or {}
    except Exception as e:
        raise SafemicroError(f"not a readable Parquet file: {_first_line(e)}", file=file) from None
    names = list(schema.keys())
    _check_duplicates(names, file)
    wanted = _check_columns(names, columns, file)
    try:
        frame = pl.read_parquet(p, columns=wanted)
    except Exception as e:
        raise SafemicroError(f"not a readable Parquet file: {_first_line(e)}", file=file) from None
    cb = Codebook()
    text = kv.get(PARQUET_CODEBOOK_KEY)
    if text:
        try:
            full = codebook_from_json(text)
        except Exception:
            full = Codebook(notes=["the stored safemicro codebook could not be parsed and was ignored"])
        cb = Codebook(
            variables={k: v for k, v in full.variables.items() if k in frame.columns},
            file_label=full.file_label,
            extended_missing={k: v for k, v in full.extended_missing.items() if k in frame.columns},
            notes=full.notes,
        )
    # keep the codebook in frame column order
    ordered = Codebook(
        variables={c: cb.variables.get(c, VariableMeta(name=c)) for c in frame.columns},
        file_label=cb.file_label,
        extended_missing=cb.extended_missing,
        notes=cb.notes,
    )
    return Dataset(frame=frame, codebook=ordered, source=file)
