"""Read Stata, SPSS and SAS files through pyreadstat: labels, user-missing codes and ranges,
Stata's extended missing letters, and the file's own dtypes."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Codebook, Dataset, VariableMeta
from safemicro.io.readers_common import _MEASURES, _check_columns, _check_duplicates, _first_line

_STATA_DTYPES: dict[str, pl.DataType] = {
    "int8": pl.Int8,
    "int16": pl.Int16,
    "int32": pl.Int32,
    "float": pl.Float32,
    "double": pl.Float64,
}


def _read_readstat(p: Path, file: str, kind: str, columns: Iterable[str] | None, encoding: str | None) -> Dataset:
    import pyreadstat

    fn = {"dta": pyreadstat.read_dta, "sav": pyreadstat.read_sav, "sas7bdat": pyreadstat.read_sas7bdat}[kind]
    what = {"dta": "Stata .dta", "sav": "SPSS .sav", "sas7bdat": "SAS .sas7bdat"}[kind]
    kw: dict[str, Any] = {}
    if encoding:
        kw["encoding"] = encoding
    try:
        _, meta0 = fn(str(p), metadataonly=True, **kw)
    except Exception as e:
        raise SafemicroError(
            f"not a readable {what} file (corrupt, truncated or another format): {_first_line(e)}",
            file=file,
        ) from None
    names = list(meta0.column_names)
    _check_duplicates(names, file)
    wanted = _check_columns(names, columns, file)
    try:
        df, meta = fn(str(p), user_missing=True, output_format="polars", usecols=wanted, **kw)
    except Exception as e:
        raise SafemicroError(
            f"not a readable {what} file (corrupt, truncated or another format): {_first_line(e)}",
            file=file,
        ) from None
    if not isinstance(df, pl.DataFrame):  # very old pyreadstat: pandas output
        df = pl.from_pandas(df)

    cb = Codebook(file_label=meta.file_label or None, notes=list(getattr(meta, "notes", None) or []))
    rs_types: dict[str, str] = dict(getattr(meta, "readstat_variable_types", {}) or {})
    formats: dict[str, str] = dict(getattr(meta, "original_variable_types", {}) or {})
    labels: dict[str, str | None] = dict(getattr(meta, "column_names_to_labels", {}) or {})
    vlabels: dict[str, dict] = dict(getattr(meta, "variable_value_labels", {}) or {})
    measures: dict[str, str] = dict(getattr(meta, "variable_measure", {}) or {})
    ranges: dict[str, list] = dict(getattr(meta, "missing_ranges", {}) or {})

    cols: list[pl.Series] = []
    for name in df.columns:
        s = df.get_column(name)
        target = _STATA_DTYPES.get(rs_types.get(name, "")) if kind == "dta" else None
        if s.dtype == pl.Object:
            s, letters = _split_extended(s, target)
            if letters:
                cb.extended_missing[name] = letters
        if kind == "dta" and target is not None and s.dtype.is_numeric() and s.dtype != target:
            s = s.cast(target, strict=False)
        cols.append(s)
    frame = pl.DataFrame(cols) if cols else df
    if wanted is not None:
        frame = frame.select(wanted)

    for name in frame.columns:
        m = VariableMeta(name=name)
        lab = labels.get(name)
        m.label = lab if lab else None
        m.value_labels = dict(vlabels.get(name) or {})
        m.format = formats.get(name) or None
        if kind == "sav":
            for r in ranges.get(name, []) or []:
                lo, hi = r.get("lo"), r.get("hi")
                if lo == hi:
                    m.missing_values.append(lo)
                else:
                    m.missing_ranges.append((lo, hi))
            meas = measures.get(name, "unknown")
            m.measure = meas if meas in _MEASURES else "unknown"  # type: ignore[assignment]
        elif kind == "sas7bdat":
            # SAS special missing (.A-.Z, ._) arrive like Stata's; keep them the same way.
            m.measure = _guess_measure(frame.schema[name], bool(m.value_labels))
        else:  # Stata
            m.measure = _guess_measure(frame.schema[name], bool(m.value_labels))
        cb.variables[name] = m
    return Dataset(frame=frame, codebook=cb, source=file)


def _guess_measure(dtype: pl.DataType, labelled: bool) -> str:
    if labelled:
        return "nominal"
    if dtype.is_float():
        return "scale"
    if dtype == pl.String:
        return "nominal"
    return "unknown"


def _split_extended(s: pl.Series, target: pl.DataType | None) -> tuple[pl.Series, dict[int, str]]:
    """An Object column from readstat with user_missing=True: values plus letter codes."""
    values: list[Any] = []
    letters: dict[int, str] = {}
    for i, v in enumerate(s.to_list()):
        if isinstance(v, str):
            letters[i] = v
            values.append(None)
        elif isinstance(v, float) and math.isnan(v):
            values.append(None)
        else:
            values.append(v)
    dtype = target
    if dtype is None:
        non_null = [v for v in values if v is not None]
        dtype = pl.Float64 if non_null and all(isinstance(v, (int, float)) for v in non_null) else None
        if not non_null:
            dtype = pl.Float64
    if dtype is not None and dtype.is_numeric():
        out = pl.Series(s.name, [float(v) if v is not None else None for v in values], dtype=pl.Float64)
        out = out.cast(dtype, strict=False)
    else:
        out = pl.Series(s.name, values, strict=False)
    return out, letters
