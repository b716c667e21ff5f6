"""The key table from key counts: what every engine returns, turned into a ``KeyTable``.

An engine groups the records by the raw key values and returns one row per distinct
combination with its number of records and summed weight. The codes, the wildcard
frequencies (sdcMicro's ``freqCalc``) and the key order are then computed here, on the
small table, exactly as :func:`safemicro.keys.build_key_table` computes them on records:
NaN and null both count as missing, codes follow the sort order of the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from safemicro.keys import KeyTable, combine_codes, dense_ids, encode_column, wildcard_frequencies

# A file (Parquet or CSV, or a folder/glob of Parquet files), an in-memory frame, a SQL
# table reference ("postgresql://...#table") or a Spark DataFrame.
Source = Any  # str | Path | pl.DataFrame | a Spark DataFrame | a SqlTable


@dataclass
class KeyCounts:
    """One row per distinct combination of raw key values (null = missing)."""

    values: pl.DataFrame
    count: np.ndarray
    weight_sum: np.ndarray


def key_table_from_counts(kc: KeyCounts, keys: list[str], *, alpha: float = 1.0, weighted: bool) -> KeyTable:
    """The :class:`KeyTable` of the records that ``kc`` counts (no record index: the
    records stay where they are; ``n_records`` is the sum of the counts)."""
    frame = kc.values
    col_codes, cards, labels = [], [], []
    for name in keys:
        codes, card = encode_column(frame.get_column(name))
        col_codes.append(codes)
        cards.append(card)
        labels.append(_labels(frame.get_column(name), codes, card))
    combined, space = combine_codes(col_codes, cards)
    ids, _ = dense_ids(combined, space)  # NaN and null merge here
    n_keys = int(ids.max()) + 1 if len(ids) else 0
    count = np.bincount(ids, weights=kc.count, minlength=n_keys)
    weight_sum = np.bincount(ids, weights=kc.weight_sum, minlength=n_keys)
    rep = np.zeros(n_keys, dtype=np.int64)
    rep[ids] = np.arange(len(ids))
    codes = np.column_stack([c[rep] for c in col_codes]) if n_keys else np.zeros((0, len(keys)), np.int64)
    fk, Fk = wildcard_frequencies(codes, count, weight_sum, alpha)
    return KeyTable(
        keys=list(keys),
        codes=codes,
        labels=labels,
        count=count,
        weight_sum=weight_sum,
        fk=fk,
        Fk=Fk,
        record_key=None,
        alpha=alpha,
        weighted=weighted,
    )


def _labels(series: pl.Series, codes: np.ndarray, card: int) -> pl.Series:
    if card == 0:
        return series.head(0)
    rep = np.zeros(card, dtype=np.int64)
    rows = np.flatnonzero(codes)
    rep[codes[rows] - 1] = rows
    return series.gather(pl.Series(rep))


def source_name(source: Source) -> str | None:
    """The file (or table) to name in error messages."""
    if isinstance(source, (str, Path)):
        text = str(source)
        return f"table {text.rsplit('#', 1)[1]}" if "://" in text and "#" in text else text
    return str(source) if type(source).__name__ == "SqlTable" else None
