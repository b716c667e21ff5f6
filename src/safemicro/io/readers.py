"""Read microdata files (CSV, Parquet, Stata, SPSS, SAS) into a :class:`Dataset`.

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

import csv
import gzip
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Codebook, Dataset, VariableMeta
from safemicro.io.encoding import decode_text

__all__ = [
    "read",
    "from_frame",
    "READ_EXTENSIONS",
    "codebook_to_json",
    "codebook_from_json",
]

READ_EXTENSIONS = (".csv", ".csv.gz", ".parquet", ".dta", ".sav", ".zsav", ".sas7bdat")

PARQUET_CODEBOOK_KEY = "safemicro.codebook"

_STATA_DTYPES: dict[str, pl.DataType] = {
    "int8": pl.Int8,
    "int16": pl.Int16,
    "int32": pl.Int32,
    "float": pl.Float32,
    "double": pl.Float64,
}

_MEASURES = {"nominal", "ordinal", "scale", "unknown"}


# --------------------------------------------------------------------------- helpers


def file_kind(path: str | os.PathLike[str]) -> str:
    """The format key for a path: 'csv', 'csv.gz', 'parquet', 'dta', 'sav', 'sas7bdat'."""
    name = Path(path).name.lower()
    if name.endswith(".csv.gz"):
        return "csv.gz"
    suffix = Path(name).suffix
    if suffix == ".zsav":
        return "sav"
    if suffix in {".csv", ".parquet", ".dta", ".sav", ".sas7bdat"}:
        return suffix[1:]
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


# --------------------------------------------------------------------------- codebook JSON


def _scalar_out(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return {"float": repr(v)}
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def _scalar_in(v: Any) -> Any:
    if isinstance(v, dict) and "float" in v:
        return float(v["float"])
    return v


def codebook_to_json(codebook: Codebook) -> str:
    """Serialise a codebook; value types (int/float/str) survive the trip."""
    variables = []
    for name, m in codebook.variables.items():
        variables.append(
            {
                "name": name,
                "label": m.label,
                "value_labels": [[_scalar_out(k), v] for k, v in m.value_labels.items()],
                "missing_values": [_scalar_out(v) for v in m.missing_values],
                "missing_ranges": [[_scalar_out(lo), _scalar_out(hi)] for lo, hi in m.missing_ranges],
                "measure": m.measure,
                "format": m.format,
            }
        )
    doc = {
        "version": 1,
        "file_label": codebook.file_label,
        "notes": list(codebook.notes),
        "variables": variables,
        "extended_missing": {
            col: [[int(r), code] for r, code in sorted(rows.items())]
            for col, rows in codebook.extended_missing.items()
        },
    }
    return json.dumps(doc, ensure_ascii=False)


def codebook_from_json(text: str) -> Codebook:
    doc = json.loads(text)
    cb = Codebook(file_label=doc.get("file_label"), notes=list(doc.get("notes") or []))
    for v in doc.get("variables", []):
        measure = v.get("measure") or "unknown"
        cb.variables[v["name"]] = VariableMeta(
            name=v["name"],
            label=v.get("label"),
            value_labels={_scalar_in(k): lab for k, lab in v.get("value_labels", [])},
            missing_values=[_scalar_in(x) for x in v.get("missing_values", [])],
            missing_ranges=[(_scalar_in(lo), _scalar_in(hi)) for lo, hi in v.get("missing_ranges", [])],
            measure=measure if measure in _MEASURES else "unknown",
            format=v.get("format"),
        )
    for col, rows in (doc.get("extended_missing") or {}).items():
        cb.extended_missing[col] = {int(r): str(code) for r, code in rows}
    return cb


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


# ----- CSV


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


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__


# ----- Parquet


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


# ----- Stata / SPSS / SAS via pyreadstat


def _read_readstat(
    p: Path, file: str, kind: str, columns: Iterable[str] | None, encoding: str | None
) -> Dataset:
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


# --------------------------------------------------------------------------- from_frame


def from_frame(obj: Any, *, source: str | None = None) -> Dataset:
    """Wrap an in-memory table as a :class:`Dataset`.

    * a :class:`Dataset` is returned as is;
    * a Polars ``DataFrame`` (or ``LazyFrame``, collected) gets an empty codebook;
    * a pandas ``DataFrame`` (pandas is imported only here) is converted column by column.
      The index is dropped. Column names become strings; duplicates are an error.
      A **categorical with string categories** becomes integer codes ``1..k`` (Int32,
      null for missing) with value labels ``{code: category}`` and measure ``nominal``
      (``ordinal`` when the categorical is ordered) - the way Stata and SPSS store it.
      A categorical with numeric categories keeps its numeric values (measure
      nominal/ordinal, no labels). Other categoricals become plain strings.
    """
    if isinstance(obj, Dataset):
        return obj
    if isinstance(obj, pl.LazyFrame):
        obj = obj.collect()
    if isinstance(obj, pl.DataFrame):
        return Dataset(frame=obj, codebook=Codebook(), source=source)
    mod = type(obj).__module__ or ""
    if mod.startswith("pandas"):
        return _from_pandas(obj, source)
    raise SafemicroError(
        f"cannot make a dataset from a {type(obj).__name__}; expected a Polars or pandas "
        "DataFrame or a Dataset",
        file=source,
    )


def _from_pandas(df: Any, source: str | None) -> Dataset:
    import pandas as pd  # optional dependency, imported lazily

    if isinstance(df, pd.Series):
        df = df.to_frame()
    if not isinstance(df, pd.DataFrame):
        raise SafemicroError(f"cannot make a dataset from a {type(df).__name__}", file=source)
    names = [str(c) for c in df.columns]
    _check_duplicates(names, source)
    cb = Codebook()
    series: list[pl.Series] = []
    for pos, name in enumerate(names):
        col = df.iloc[:, pos]
        meta = VariableMeta(name=name)
        try:
            if isinstance(col.dtype, pd.CategoricalDtype):
                s = _categorical(col, name, meta, pd)
            else:
                s = pl.from_pandas(col.reset_index(drop=True))
                s = s.rename(name)
        except SafemicroError:
            raise
        except Exception as e:
            raise SafemicroError(
                f"cannot convert pandas column of dtype {col.dtype}: {_first_line(e)}",
                file=source,
                column=name,
            ) from None
        if s.dtype == pl.Object:
            raise SafemicroError(
                "column holds Python objects of mixed types; convert it to numbers or strings",
                file=source,
                column=name,
            )
        series.append(s)
        cb.variables[name] = meta
    frame = pl.DataFrame(series) if series else pl.DataFrame()
    return Dataset(frame=frame, codebook=cb, source=source)


def _categorical(col: Any, name: str, meta: VariableMeta, pd: Any) -> pl.Series:
    cats = col.cat.categories
    meta.measure = "ordinal" if col.cat.ordered else "nominal"
    if pd.api.types.is_numeric_dtype(cats.dtype):
        values = col.astype(cats.dtype if not pd.api.types.is_integer_dtype(cats.dtype) else "Int64")
        return pl.from_pandas(values.reset_index(drop=True)).rename(name)
    if pd.api.types.is_string_dtype(cats.dtype) or pd.api.types.is_object_dtype(cats.dtype):
        if all(isinstance(c, str) for c in cats):
            codes = col.cat.codes.to_numpy()
            out = pl.Series(name, codes, dtype=pl.Int32)
            out = pl.select(pl.when(out < 0).then(None).otherwise(out + 1)).to_series().rename(name)
            meta.value_labels = {i + 1: str(c) for i, c in enumerate(cats)}
            return out.cast(pl.Int32)
    meta.measure = "unknown"
    return pl.Series(name, [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in col.astype(object).tolist()], dtype=pl.String)
