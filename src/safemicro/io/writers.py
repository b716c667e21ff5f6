"""Write a :class:`Dataset` to CSV, Parquet, Stata or SPSS, atomically.

Every write goes to a hidden temporary file in the target's directory, which replaces the
target (``os.replace``) only once it is complete; on any failure neither the target nor
the temporary file is left behind (an existing target is left untouched).

What each format keeps:

* ``.csv`` / ``.csv.gz``: the values only (user-missing codes as plain values, nulls as
  empty fields). No sidecar file is written.
* ``.parquet``: the values plus the whole codebook as JSON in the file's key-value
  metadata (key ``safemicro.codebook``); :func:`safemicro.io.read` restores it.
* ``.dta``: variable labels, value labels (integer codes only, as Stata requires),
  numeric display formats, file label and extended missing values (``.a``-``.z``) from
  ``Codebook.extended_missing`` (restored only where the frame holds null).
  Stata has no user-missing codes or measure levels: discrete whole-number
  ``missing_values`` become extended missing values (.a, .b, ... in code order, their
  value labels moved to the letters) and a :class:`UserWarning` says so; ranges and
  other codes are written as plain values, with a warning.
* ``.sav``: variable labels, value labels, user-missing codes (discrete and ranges, within
  SPSS's limits: up to 3 codes, or 1 range + 1 code), measure level, numeric formats,
  file label and notes. SPSS has no null strings (they come back as ``""``) and no
  extended missing (those become system-missing, with a warning).
"""

from __future__ import annotations

import gzip
import math
import os
import re
import warnings
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from safemicro.atomic import atomic_path
from safemicro.errors import SafemicroError
from safemicro.io.dataset import Codebook, Dataset
from safemicro.io.format_limits import fit_format
from safemicro.io.numbers import tidy_numbers
from safemicro.io.readers import PARQUET_CODEBOOK_KEY, _first_line, codebook_to_json, file_kind, from_frame

__all__ = ["write", "WRITE_EXTENSIONS"]

WRITE_EXTENSIONS = (".csv", ".csv.gz", ".parquet", ".dta", ".sav", ".zsav")


_SPSS_NUM_FORMAT = re.compile(r"^(F|N|E|COMMA|DOT|DOLLAR|PCT)\d+(\.\d+)?$", re.IGNORECASE)
_STATA_NUM_FORMAT = re.compile(r"^%-?\d+(\.\d+)?[gfe]c?$")
_BAD_DTYPES = (pl.List, pl.Array, pl.Struct, pl.Object, pl.Binary)


def write(
    dataset: Any,
    path: str | os.PathLike[str],
    *,
    timestamp: datetime | None = None,
    report_as: str | os.PathLike[str] | None = None,
    decimals: dict[str, int] | None = None,
) -> Path:
    """Write ``dataset`` (a Dataset, or a Polars/pandas frame) to ``path``; returns the path.

    The format comes from the extension (see :data:`WRITE_EXTENSIONS`). Stata and SPSS
    headers carry a creation time; ``timestamp`` fixes it (reproducible releases: the same
    data and timestamp give the same bytes), otherwise it is the current time. Names and
    texts beyond the SPSS/Stata limits are shortened with a warning
    (:mod:`safemicro.io.format_limits`). ``report_as``: the path errors and warnings name
    (the user's output when ``path`` is a staging file), default ``path``.
    In CSV, float columns are written at ``decimals`` per column (else their display
    format's) and whole ones as integers (:func:`safemicro.io.numbers.tidy_numbers`).
    """
    target = Path(path)
    file = str(report_as if report_as is not None else path)
    kind = file_kind(target)
    if kind not in {"csv", "csv.gz", "parquet", "dta", "sav"}:
        raise SafemicroError(
            f"cannot write file type {''.join(target.suffixes) or '(no extension)'!r}; "
            f"expected one of {', '.join(WRITE_EXTENSIONS)}",
            file=file,
        )
    ds = from_frame(dataset, source=file)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise SafemicroError(f"directory {str(directory)!r} does not exist", file=file)
    if target.is_dir():
        raise SafemicroError("is a directory", file=file)

    writer = {
        "csv": _write_csv,
        "csv.gz": _write_csv_gz,
        "parquet": _write_parquet,
        "dta": _write_dta,
        "sav": _write_sav,
    }[kind]
    if kind in ("csv", "csv.gz"):
        writer = partial(writer, decimals=decimals)

    suffix = ".tmp" + ("".join(target.suffixes[-2:]) if kind == "csv.gz" else target.suffix)
    try:
        with atomic_path(target, suffix=suffix) as tmp:
            writer(ds, tmp, file)
            if timestamp is not None and kind in ("dta", "sav"):
                _stamp(tmp, kind, timestamp, file)
    except SafemicroError:
        raise
    except OSError as e:
        raise SafemicroError(f"cannot write file: {e.strerror or e}", file=file) from None
    except Exception as e:
        msg = str(e).strip().splitlines()
        raise SafemicroError(
            f"cannot write file: {type(e).__name__}: {msg[0] if msg else ''}".rstrip(": "), file=file
        ) from None
    return target


def _stamp(path: Path, kind: str, when: datetime, file: str) -> None:
    """Overwrite the creation time in a Stata (118/119) or SPSS header written by ReadStat."""
    data = bytearray(path.read_bytes())
    if kind == "dta":
        tag = data.find(b"<timestamp>")
        text = when.strftime("%d %b %Y %H:%M").encode("ascii")
        if tag < 0 or data[tag + 11] != len(text):
            raise SafemicroError("unexpected Stata header: cannot set its timestamp", file=file)
        start = tag + 12
    else:  # SPSS: creation date (9 bytes) and time (8 bytes) at offset 92 of the header
        if data[:4] not in (b"$FL2", b"$FL3"):
            raise SafemicroError("unexpected SPSS header: cannot set its timestamp", file=file)
        text = when.strftime("%d %b %y").encode("ascii") + when.strftime("%H:%M:%S").encode("ascii")
        start = 92
    data[start : start + len(text)] = text
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- CSV / Parquet


def _check_flat(ds: Dataset, file: str, what: str) -> None:
    for name, dtype in ds.frame.schema.items():
        if isinstance(dtype, _BAD_DTYPES) or dtype in _BAD_DTYPES:
            raise SafemicroError(f"a {dtype} column cannot be written to {what}", file=file, column=name)


def _csv_frame(ds: Dataset, file: str, decimals: dict[str, int] | None = None) -> pl.DataFrame:
    _check_flat(ds, file, "CSV")
    frame = tidy_numbers(ds, decimals)
    durations = [n for n, d in frame.schema.items() if isinstance(d, pl.Duration)]
    if durations:  # CSV has no duration type: ISO 8601 text such as PT5S
        return frame.with_columns(pl.col(durations).dt.to_string("iso"))
    return frame


def _write_csv(ds: Dataset, tmp: Path, file: str, decimals: dict[str, int] | None = None) -> None:
    _csv_frame(ds, file, decimals).write_csv(tmp)


def csv_bytes(dataset: Any, *, file: str = "", decimals: dict[str, int] | None = None) -> bytes:
    """The bytes :func:`write` puts in a ``.csv`` file, in memory (for writers that also hash
    or compress them); ``file`` is the name errors give."""
    return _csv_frame(from_frame(dataset, source=file), file, decimals).write_csv().encode("utf-8")


def _write_csv_gz(ds: Dataset, tmp: Path, file: str, decimals: dict[str, int] | None = None) -> None:
    data = csv_bytes(ds, file=file, decimals=decimals)
    with gzip.open(tmp, "wb") as fh:
        fh.write(data)


def _write_parquet(ds: Dataset, tmp: Path, file: str) -> None:
    ds.frame.write_parquet(tmp, metadata={PARQUET_CODEBOOK_KEY: codebook_to_json(ds.codebook)})


# --------------------------------------------------------------------------- Stata / SPSS


def _prepare(ds: Dataset, file: str, what: str) -> dict[str, pl.Series]:
    """Columns readstat can write: categoricals -> strings, all-null -> Float64."""
    out: dict[str, pl.Series] = {}
    for name in ds.frame.columns:
        s = ds.frame.get_column(name)
        dtype = s.dtype
        if isinstance(dtype, (pl.Categorical, pl.Enum)):
            s = s.cast(pl.String)
        elif dtype == pl.Null:
            s = s.cast(pl.Float64)
        elif isinstance(dtype, pl.Decimal):
            s = s.cast(pl.Float64)
        elif isinstance(dtype, _BAD_DTYPES) or dtype in _BAD_DTYPES:
            raise SafemicroError(f"a {dtype} column cannot be written to {what}", file=file, column=name)
        out[name] = s
    return out


def _is_letter(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[a-z]", v) is not None


def _is_whole(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and float(v).is_integer()


def _write_dta(ds: Dataset, tmp: Path, file: str) -> None:
    import pyreadstat

    ds = _fit(ds, "dta", file)
    cb = ds.codebook
    cols = _prepare(ds, file, "Stata")
    dropped: list[str] = []
    for name, s in list(cols.items()):
        cols[name] = _stata_int(s)

    extended, letter_of = _user_missing_as_extended(ds, cols)
    missing_user_values: dict[str, list[str]] = {}
    for name, rows in extended.items():
        if name not in cols or not rows:
            continue
        s = cols[name]
        if not s.dtype.is_numeric():
            dropped.append(f"{name}: extended missing on a non-numeric column")
            continue
        values = s.to_list()
        used: set[str] = set()
        for r, code in rows.items():
            code = str(code).lower()
            if 0 <= r < len(values) and values[r] is None and re.fullmatch(r"[a-z]", code):
                values[r] = code
                used.add(code)
        if used:
            cols[name] = pl.Series(name, values, dtype=pl.Object)
            missing_user_values[name] = sorted(used)

    labels: dict[str, str] = {}
    value_labels: dict[str, dict[int, str]] = {}
    formats: dict[str, str] = {}
    for name in ds.frame.columns:
        m = cb.meta(name)
        if m.label:
            labels[name] = m.label
        dtype = ds.frame.schema[name]
        if m.value_labels:
            if dtype.is_numeric() and all(_is_whole(k) or _is_letter(k) for k in m.value_labels):
                letters = letter_of.get(name, {})
                used = set(missing_user_values.get(name, ()))
                # a letter (an extended missing value read from Stata, or a user-missing
                # code written as one) can carry a label only where it occurs in the data
                value_labels[name] = {}
                for k, v in m.value_labels.items():
                    code = k if _is_letter(k) else letters.get(int(k), int(k))
                    if not isinstance(code, str) or code in used:
                        value_labels[name][code] = str(v)
            else:
                dropped.append(f"{name}: value labels (Stata labels integer codes only)")
        if name in letter_of:
            codes = ", ".join(f"{c:g} as .{letter}" for c, letter in letter_of[name].items())
            dropped.append(f"{name}: user-missing codes written as Stata extended missing ({codes})")
        elif m.missing_values or m.missing_ranges:
            dropped.append(f"{name}: user-missing codes (Stata has none; written as plain values)")
        if m.format and dtype.is_numeric() and _STATA_NUM_FORMAT.match(m.format):
            formats[name] = m.format
    options = {"missing_user_values": missing_user_values or None, "variable_format": formats or None}
    _readstat_write(pyreadstat.write_dta, "Stata", tmp, file, cb, cols, labels, value_labels, dropped, options)


def _user_missing_as_extended(
    ds: Dataset, cols: dict[str, pl.Series]
) -> tuple[dict[str, dict[int, str]], dict[str, dict[float, str]]]:
    """Discrete whole-number user-missing codes become Stata extended missing values.

    Stata has no user-missing codes, but it has .a-.z: code c_i (ascending) becomes the
    next free letter, its cells become null in ``cols``, and its value label moves to the
    letter, so the cells stay missing (and labelled) in Stata. Returns the extended-missing
    rows per column (the codebook's plus these) and the code -> letter map per column.
    """
    extended = {name: dict(rows) for name, rows in ds.codebook.extended_missing.items()}
    letter_of: dict[str, dict[float, str]] = {}
    for name, s in cols.items():
        m = ds.codebook.meta(name)
        codes = sorted({float(v) for v in m.missing_values if _is_whole(v)})
        taken = set(extended.get(name, {}).values())
        free = [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in taken]
        if not codes or m.missing_ranges or not s.dtype.is_numeric() or len(codes) > len(free):
            continue
        mapping = dict(zip(codes, free))
        rows = extended.setdefault(name, {})
        values = s.cast(pl.Float64)
        for code, letter in mapping.items():
            for r in (values == code).arg_true().to_list():
                rows[r] = letter
        cols[name] = pl.Series(name, s).set(values.is_in(codes).fill_null(False), None)
        letter_of[name] = mapping
    return extended, letter_of


def _write_sav(ds: Dataset, tmp: Path, file: str) -> None:
    import pyreadstat

    ds = _fit(ds, "sav", file)
    cb = ds.codebook
    cols = _prepare(ds, file, "SPSS")
    dropped: list[str] = []
    labels: dict[str, str] = {}
    value_labels: dict[str, dict[Any, str]] = {}
    missing: dict[str, list[Any]] = {}
    measures: dict[str, str] = {}
    formats: dict[str, str] = {}
    for name in ds.frame.columns:
        m = cb.meta(name)
        dtype = cols[name].dtype
        numeric = dtype.is_numeric() or dtype == pl.Boolean
        if m.label:
            labels[name] = m.label
        if m.value_labels:
            if dtype.is_integer() or dtype == pl.Boolean:
                ok = all(_is_whole(k) for k in m.value_labels)
                conv: Any = int
            elif numeric:
                ok = all(isinstance(k, (int, float)) and not isinstance(k, bool) for k in m.value_labels)
                conv = float
            else:
                ok = all(isinstance(k, str) for k in m.value_labels)
                conv = str
            if ok:
                value_labels[name] = {conv(k): str(v) for k, v in m.value_labels.items()}
            else:
                dropped.append(f"{name}: value labels whose codes do not match the column type")
        spec: list[Any] = [(_num(v) if numeric else v) for v in m.missing_values]
        spec += [{"lo": _num(lo) if numeric else lo, "hi": _num(hi) if numeric else hi} for lo, hi in m.missing_ranges]
        if spec:
            missing[name] = spec
        if m.measure in ("nominal", "ordinal", "scale"):
            measures[name] = m.measure
        if m.format and dtype.is_numeric() and _SPSS_NUM_FORMAT.match(m.format):
            formats[name] = m.format.upper()
        elif dtype.is_integer():
            formats[name] = _spss_int_format(cols[name])
        if cb.extended_missing.get(name):
            dropped.append(f"{name}: Stata extended missing (.a-.z) become system-missing")
    options = {
        "missing_ranges": missing or None,
        "variable_measure": measures or None,
        "variable_format": formats or None,
        "note": list(cb.notes) or None,
    }
    _readstat_write(pyreadstat.write_sav, "SPSS", tmp, file, cb, cols, labels, value_labels, dropped, options)


def _readstat_write(
    write: Callable[..., Any],
    what: str,
    tmp: Path,
    file: str,
    cb: Codebook,
    cols: dict[str, pl.Series],
    labels: dict[str, str],
    value_labels: dict[str, dict[Any, str]],
    dropped: list[str],
    options: dict[str, Any],
) -> None:
    """Warn once about what ``what`` (Stata, SPSS) cannot hold, then write ``cols`` with
    pyreadstat's ``write``, the file label, variable and value labels and the format's own
    ``options``; a failure is one error naming the file."""
    if dropped:
        warnings.warn(f"{file}: not representable in {what}: " + "; ".join(dropped), UserWarning, stacklevel=4)
    frame = pl.DataFrame(list(cols.values()))
    try:
        write(
            frame,
            str(tmp),
            file_label=cb.file_label or "",
            column_labels=labels or None,
            variable_value_labels=value_labels or None,
            **options,
        )
    except Exception as e:
        raise SafemicroError(f"{what} writer failed: {_first_line(e)}", file=file) from None


def _fit(ds: Dataset, kind: str, file: str) -> Dataset:
    """The dataset within the format's limits; one warning lists what had to change."""
    fitted, changes = fit_format(ds, kind)  # type: ignore[arg-type]
    if changes:
        what = "SPSS" if kind == "sav" else "Stata"
        warnings.warn(f"{file}: changed to fit {what}'s limits: " + "; ".join(changes), UserWarning, stacklevel=4)
    return fitted


# Stata's long holds -2,147,483,647 .. 2,147,483,620 (larger codes mean missing).
_STATA_LONG = (-2_147_483_647, 2_147_483_620)


def _stata_int(s: pl.Series) -> pl.Series:
    """Integers go to Stata as long when they fit (pyreadstat writes Int64 as double)."""
    if not s.dtype.is_integer():
        return s
    lo, hi = s.min(), s.max()
    if lo is None or (lo >= _STATA_LONG[0] and hi <= _STATA_LONG[1]):
        return s.cast(pl.Int32)
    return s.cast(pl.Float64)


def _spss_int_format(s: pl.Series) -> str:
    lo, hi = s.min(), s.max()
    width = max(len(str(v)) for v in (lo, hi) if v is not None) if lo is not None else 1
    return f"F{max(8, width)}.0"


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
