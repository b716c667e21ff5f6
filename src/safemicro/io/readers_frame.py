"""Wrap an in-memory table (a Polars or pandas frame) as a :class:`Dataset`."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Codebook, Dataset, VariableMeta
from safemicro.io.readers_common import _check_duplicates, _first_line


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
        f"cannot make a dataset from a {type(obj).__name__}; expected a Polars or pandas DataFrame or a Dataset",
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
    return pl.Series(
        name,
        [
            None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            for v in col.astype(object).tolist()
        ],
        dtype=pl.String,
    )
