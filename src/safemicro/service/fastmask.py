"""Cell membership by integer codes: which records each ``{"col": {"in": [...]}}`` cell selects.

The differencing guard asks, for every cell of every request, which of its (deduplicated)
records the cell's predicate selects. Building one Polars expression per cell costs about
a millisecond each; here every String column is coded once (``rank("dense")``) and a cell's
mask is the AND over its columns of a lookup table indexed by the codes — NumPy only.
Predicates with other conditions (``eq``, ``between``) or on non-String columns return None:
the caller falls back to :func:`safemicro.service.differencing.predicate_mask`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

__all__ = ["CodedRecords"]


class CodedRecords:
    """String columns of a frame as integer codes, with each column's value -> code map."""

    def __init__(self, records: pl.DataFrame) -> None:
        self.height = records.height
        self.codes: dict[str, np.ndarray] = {}
        self.lookup: dict[str, dict[str, int]] = {}
        for name, dtype in records.schema.items():
            if dtype != pl.String:
                continue
            col = records.get_column(name)
            if col.null_count():
                continue  # nulls never match: leave such columns to the expression path
            uniq = col.unique().sort()
            self.lookup[name] = {v: i for i, v in enumerate(uniq.to_list())}
            self.codes[name] = col.rank("dense").to_numpy().astype(np.int64) - 1

    def masks(self, predicates: list[Mapping[str, Any]]) -> np.ndarray | None:
        """Boolean (cells × records) membership, or None if some predicate needs the general path."""
        out = np.ones((len(predicates), self.height), dtype=bool)
        for i, pred in enumerate(predicates):
            if not isinstance(pred, Mapping):
                return None
            for column, cond in pred.items():
                if column not in self.codes or not isinstance(cond, Mapping) or set(cond) != {"in"}:
                    return None
                values = cond["in"]
                if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
                    return None
                table = np.zeros(len(self.lookup[column]), dtype=bool)
                hits = [self.lookup[column][v] for v in values if v in self.lookup[column]]
                table[hits] = True
                out[i] &= table[self.codes[column]]
        return out
