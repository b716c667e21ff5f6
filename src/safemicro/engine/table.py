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

from safemicro.keys import KeyTable, fold_keys, table_from_counts

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
    ids, codes, labels = fold_keys(kc.values, keys)  # NaN and null rows merge here
    n_keys = len(codes)
    count = np.bincount(ids, weights=kc.count, minlength=n_keys)
    weight_sum = np.bincount(ids, weights=kc.weight_sum, minlength=n_keys)
    return table_from_counts(keys, codes, labels, count, weight_sum, None, alpha=alpha, weighted=weighted)


def raw_key_ids(kc: KeyCounts, keys: list[str]) -> np.ndarray:
    """For each row of ``kc``, the row of its key in :func:`key_table_from_counts`."""
    return fold_keys(kc.values, keys)[0]


def source_name(source: Source) -> str | None:
    """The file (or table) to name in error messages."""
    if isinstance(source, (str, Path)):
        text = str(source)
        return f"table {text.rsplit('#', 1)[1]}" if "://" in text and "#" in text else text
    return str(source) if type(source).__name__ == "SqlTable" else None
