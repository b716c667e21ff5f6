"""Table-based information loss of a perturbed file (sdcMicro ``infoLoss``, made for record swapping).

A frequency table over ``table_vars`` is counted in the original and in the released file,
with all its margins (every subset of the variables summed over the others, down to the
grand total) unless ``only_inner_cells``. On every cell, with ``x`` the original and ``y``
the released count:

* ``absD = |x − y|``, the absolute deviation;
* ``relabsD = |x − y| / x``, the relative absolute deviation (cells with ``x = 0`` are left
  out of it and counted as ``false_nonzero``);
* ``abssqrtD = |√x − √y|``, the absolute deviation of square roots.

``measures`` gives each one's minimum, deciles, 95 % and 99 % quantiles (R's default,
type 7 = NumPy's linear), mean, median and maximum over the cells, as sdcMicro's
``iloss$measures``; ``false_zero`` counts cells non-zero before and zero after. With
``household``, counts are households (first record of each) rather than persons.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

__all__ = ["table_info_loss", "PROBS"]

PROBS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
_TOTAL = "__total__"


def _cells(frame: pl.DataFrame, table_vars: list[str], inner_only: bool) -> pl.DataFrame:
    """Counts of every cell and margin: one row per cell, margin levels written ``_TOTAL``."""
    text = frame.select([pl.col(v).cast(pl.String).fill_null("NA") for v in table_vars])
    parts = []
    sizes = [len(table_vars)] if inner_only else range(len(table_vars), -1, -1)
    for size in sizes:
        for subset in combinations(table_vars, size):
            if subset:
                counts = text.group_by(list(subset)).len()
            else:
                counts = pl.DataFrame({"len": [text.height]}, schema={"len": pl.UInt32})
            counts = counts.with_columns([pl.lit(_TOTAL).alias(v) for v in table_vars if v not in subset])
            parts.append(counts.select([*table_vars, "len"]))
    return pl.concat(parts)


def table_info_loss(
    original: pl.DataFrame,
    released: pl.DataFrame,
    table_vars: list[str],
    *,
    household: str | None = None,
    only_inner_cells: bool = False,
) -> dict[str, Any]:
    """absD, relabsD and abssqrtD over the cells of the ``table_vars`` table (see module doc).

    >>> a = pl.DataFrame({"camp": [1, 1, 2, 2]})
    >>> b = pl.DataFrame({"camp": [1, 2, 2, 2]})
    >>> table_info_loss(a, b, ["camp"])["measures"]["absD"]["max"]
    1.0
    """
    if household is not None:
        original = original.unique(subset=household, keep="first", maintain_order=True)
        released = released.unique(subset=household, keep="first", maintain_order=True)
    before = _cells(original, table_vars, only_inner_cells).rename({"len": "x"})
    after = _cells(released, table_vars, only_inner_cells).rename({"len": "y"})
    both = before.join(after, on=table_vars, how="full", coalesce=True, nulls_equal=True).fill_null(0)
    both = both.sort(table_vars)  # group-by order varies; sums in one order give the same bits
    x = both["x"].cast(pl.Float64).to_numpy()
    y = both["y"].cast(pl.Float64).to_numpy()
    metrics = {
        "absD": np.abs(x - y),
        "relabsD": np.abs(x - y)[x > 0] / x[x > 0],
        "abssqrtD": np.abs(np.sqrt(x) - np.sqrt(y)),
    }
    measures = {name: _summary(values) for name, values in metrics.items()}
    return {
        "table_vars": list(table_vars),
        "cells": int(len(x)),
        "cells_changed": int(np.count_nonzero(x != y)),
        "false_zero": int(np.count_nonzero((x > 0) & (y == 0))),
        "false_nonzero": int(np.count_nonzero((x == 0) & (y > 0))),
        "measures": measures,
    }


def _summary(values: np.ndarray) -> dict[str, float | None]:
    if not len(values):
        return {"min": None, "mean": None, "median": None, "max": None}
    q = np.quantile(values, PROBS)
    out: dict[str, float | None] = {f"q{round(100 * p)}": float(v) for p, v in zip(PROBS, q)}
    out["min"], out["max"] = out.pop("q0"), out.pop("q100")
    out["mean"], out["median"] = float(values.mean()), out.pop("q50")
    return out
