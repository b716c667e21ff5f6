"""Presence: an empty cell of a requested table must look exactly like a small one.

If empty cells were released as 0 (or left out: a filter on an empty group answering
``"cells": []``, a margin row missing for a value nobody has) while cells of 1 to
threshold-1 contributors are suppressed, the analyst could tell "nobody" from "a few
people" — the presence of someone in a camp, an origin, a month. So the node lists every
cell of the requested grid at every requested level (inner cells and margins, the declared
values within the filter; one cell when nothing is grouped), empty ones with ``n = 0``, and
:mod:`.protection` (``hide_presence``) suppresses 0 exactly as 1..threshold-1: rule
``threshold``, interval ``[0, threshold - 1]``.
"""

from __future__ import annotations

import itertools

import polars as pl

ALL = "_all"  # the constant dimension of a table grouped by nothing


def full_grid(
    cells: pl.DataFrame, by: list[str], values: dict[str, list[str]], *, margins: bool, magnitude: bool
) -> pl.DataFrame:
    """``cells`` (rows of :func:`~safemicro.service.protection.cell_statistics`, margins with
    None in their dimensions) completed to every combination of ``values`` at every level
    (inner only without ``margins``); missing rows get ``n = 0``, zero tops and (for a
    ``magnitude`` table) a zero total."""
    levels = [list(c) for r in range(len(by), -1, -1) for c in itertools.combinations(by, r)] if margins else [by]
    frames = []
    for level in levels:
        grid: pl.DataFrame | None = None
        for d in level:
            col = pl.DataFrame({d: pl.Series(d, values[d], dtype=pl.String)})
            grid = col if grid is None else grid.join(col, how="cross")
        grid = pl.DataFrame({"_one": [1]}) if grid is None else grid
        grid = grid.with_columns([pl.lit(None, dtype=pl.String).alias(d) for d in by if d not in level])
        frames.append(grid.select(by))
    grid = pl.concat(frames)
    out = grid.join(cells.with_columns([pl.col(d).cast(pl.String) for d in by]), on=by, how="left", nulls_equal=True)
    fill = {c: pl.col(c).fill_null(0) for c in ("n", "top1", "top2", "top3") if c in out.columns}
    if magnitude:
        fill["total"] = pl.col("total").fill_null(0.0)
    return out.with_columns(**fill).select(cells.columns)
