"""SUDA2 from the key table: the distinct keys are SUDA2's patterns, so nothing is encoded twice.

:func:`safemicro.risk.suda2.suda2` encodes the key columns record by record and groups the
records into patterns; the key table (:func:`safemicro.keys.build_key_table`) has already
done both — its rows are the distinct keys with missing as a code of its own (0), its
``count`` the records of each. When the two groupings are the same partition of the records
the scores are the same, so :func:`suda2_keys` runs the MSU search on the key table and
falls back to :func:`~safemicro.risk.suda2.suda2` otherwise:

* integer and text keys, and floats holding whole numbers (which SUDA2 truncates to
  themselves), without a value equal to SUDA2's ``missing`` code (which SUDA2 would merge
  with the missing values);
* ``original_scores`` (the ``(M - |MSU|)!`` scores are whole numbers, so their sums do not
  depend on the order of the patterns).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import polars as pl

from safemicro.keys import KeyTable
from safemicro.risk.suda2 import Suda2Result, suda2, suda2_patterns

__all__ = ["suda2_key_summary", "suda2_keys"]


def _levels(labels: pl.Series, missing: int) -> list | None:
    """SUDA2's level values of one key in key-table code order (code 0 = missing), or None
    when this key's grouping may differ from SUDA2's."""
    dt = labels.dtype
    if dt == pl.String:
        return [None, *labels.to_list()]
    if dt.is_integer():
        values = labels.to_list()
    elif dt.is_float():
        x = labels.to_numpy()
        if not (np.all(np.isfinite(x)) and np.all(np.abs(x) < 2**52) and np.all(x == np.trunc(x))):
            return None
        values = [int(v) for v in x]
    else:
        return None
    return None if missing in values else [None, *values]


def suda2_keys(
    kt: KeyTable,
    frame: pl.DataFrame,
    *,
    missing: int = -999,
    dis_fraction: float = 0.01,
    original_scores: bool = True,
) -> Suda2Result:
    """:func:`~safemicro.risk.suda2.suda2` of ``frame`` on the key table's keys, computed on
    the key table ``kt`` of the same frame when that gives the same result."""
    prepared = _patterns(kt, missing) if original_scores and 0.0 < dis_fraction < 1.0 else None
    if prepared is None:
        return suda2(frame, kt.keys, missing=missing, dis_fraction=dis_fraction, original_scores=original_scores)
    pat, cnt, cards, miss_codes, levels = prepared
    first = np.zeros(kt.n_keys, dtype=np.int64)
    first[kt.record_key] = np.arange(kt.n_records, dtype=np.int64)
    return suda2_patterns(
        kt.keys, kt.n_records, pat, cnt, first, cards, miss_codes, levels, dis_fraction, original_scores
    )


def suda2_key_summary(kt: KeyTable, *, missing: int = -999, dis_fraction: float = 0.01) -> dict | None:
    """The :meth:`Suda2Result.summary` of the records that ``kt`` counts, from the key table
    alone (no record index: the out-of-core engines). Every record of a key has the key's
    score and DIS (0 unless the key holds one record), so the search runs with one "record"
    per key and the DIS table's ``== 0`` row gets the other records of the keys. None when
    the key table's grouping may differ from SUDA2's (see the module docstring)."""
    prepared = _patterns(kt, missing)
    if prepared is None:
        return None
    pat, cnt, cards, miss_codes, levels = prepared
    d = kt.n_keys
    res = suda2_patterns(kt.keys, d, pat, cnt, np.arange(d), cards, miss_codes, levels, dis_fraction, True)
    summary = res.summary()
    summary["dis_table"]["== 0"] += kt.n_records - d
    return summary


def _patterns(
    kt: KeyTable, missing: int
) -> tuple[np.ndarray, np.ndarray, list[int], list[int], list[list[Any]]] | None:
    """(patterns, counts, cardinalities, missing codes, levels) of the key table for
    :func:`suda2_patterns`, or None when its grouping may differ from SUDA2's."""
    found = [_levels(lab, missing) for lab in kt.labels]
    levels = [lv for lv in found if lv is not None]
    if len(levels) < len(found):
        return None
    m = len(kt.keys)
    pat = np.asarray(kt.codes, dtype=np.int64)
    cards = [len(lv) for lv in levels]
    miss_codes = [0] * m
    if m < 3:
        warnings.warn("suda2: fewer than 3 key variables; constant dummy variables are added (M = 3)", stacklevel=3)
        pat = np.hstack([pat, np.zeros((len(pat), 3 - m), dtype=np.int64)])
        cards += [1] * (3 - m)
        miss_codes += [-1] * (3 - m)
    cnt = np.rint(kt.count).astype(np.int64)
    return pat, cnt, cards, miss_codes, levels
