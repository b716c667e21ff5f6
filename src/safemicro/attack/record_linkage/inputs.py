"""The intruder's files: checked against the release and combined into the mosaic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.utility.tables import common_dtype


def _frame(data: Any, what: str) -> pl.DataFrame:
    from safemicro.io.dataset import Dataset

    if isinstance(data, Dataset):
        return data.frame
    if isinstance(data, pl.DataFrame):
        return data
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pl.from_pandas(data)
    except ImportError:  # pragma: no cover
        pass
    raise SafemicroError(f"the {what} data must be a Polars or pandas frame, got {type(data).__name__}")


def _source(data: Any) -> str | None:
    return getattr(data, "source", None)


def _kind(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_numeric():
        return "number"
    if dtype.is_temporal():
        return "date/time"
    return "text"


def check_inputs(
    release: pl.DataFrame,
    aux: pl.DataFrame,
    on: Sequence[str],
    *,
    release_file: str | None = None,
    aux_file: str | None = None,
) -> None:
    """Empty files, linking columns missing from either file and type mismatches are errors."""
    if release.height == 0:
        raise SafemicroError("the released file has no records", file=release_file)
    if aux.height == 0:
        raise SafemicroError("the auxiliary file has no records", file=aux_file)
    if not on:
        raise SafemicroError("the auxiliary file shares no column with the release to link on", file=aux_file)
    for name in on:
        if name not in aux.columns:
            raise SafemicroError("the auxiliary file has no such column", file=aux_file, column=name)
        if name not in release.columns:
            raise SafemicroError("the auxiliary column is not in the released file", file=release_file, column=name)
        kr, ka = _kind(release.schema[name]), _kind(aux.schema[name])
        if kr != ka:
            bad = aux.get_column(name)
            row = None
            if ka == "text" and kr == "number":  # name the first value that is not a number
                parsed = bad.cast(pl.Float64, strict=False)
                idx = np.flatnonzero((parsed.is_null() & bad.is_not_null()).to_numpy())
                row = int(idx[0]) + 1 if len(idx) else None
            raise SafemicroError(
                f"type mismatch: {kr} in the release, {ka} in the auxiliary file",
                file=aux_file,
                column=name,
                row=row,
            )
        if release.get_column(name).null_count() == release.height:
            raise SafemicroError("the column is missing for every released record", file=release_file, column=name)


def combine_auxiliary(
    frames: Sequence[pl.DataFrame], on: str, *, files: Sequence[str | None] | None = None
) -> pl.DataFrame:
    """The mosaic: auxiliary files joined on the intruder's identifier ``on`` (full join).

    A column held by several files takes the first file's value where it has one, else the
    next file's. Identifiers repeated within a file are an error (a list names a person once).
    """
    files = list(files) if files is not None else [None] * len(frames)
    out: pl.DataFrame | None = None
    for frame, file in zip(frames, files):
        if on not in frame.columns:
            raise SafemicroError("the auxiliary file has no identifier column", file=file, column=on)
        if frame.height == 0:
            raise SafemicroError("the auxiliary file has no records", file=file)
        dup = frame.get_column(on).is_duplicated().to_numpy()
        if dup.any():
            raise SafemicroError(
                "identifier repeated in the auxiliary file", file=file, column=on, row=int(np.flatnonzero(dup)[0]) + 1
            )
        if out is None:
            out = frame
            continue
        shared = [c for c in frame.columns if c in out.columns and c != on]
        for c in shared:
            if _kind(out.schema[c]) != _kind(frame.schema[c]):
                raise SafemicroError(
                    f"type mismatch between auxiliary files: {_kind(out.schema[c])} and {_kind(frame.schema[c])}",
                    file=file,
                    column=c,
                )
        left_id, right_id = common_dtype(out.get_column(on), frame.get_column(on))
        right = frame.with_columns(right_id.alias(on)).rename({c: f"{c}__right" for c in shared})
        joined = out.with_columns(left_id.alias(on)).join(right, on=on, how="full", coalesce=True)
        fixes = []
        for c in shared:
            a, b = common_dtype(joined.get_column(c), joined.get_column(f"{c}__right"))
            fixes.append(pl.Series(c, a).fill_null(pl.Series(b)) if a.dtype == b.dtype else a)
        out = joined.with_columns(fixes).drop([f"{c}__right" for c in shared])
    assert out is not None
    return out
