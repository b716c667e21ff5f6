"""The true cells of a query on the full grid of its declared values, by bincount.

A DP or cell key answer covers every combination of the declared values (no key reveals
presence), so its cells are a dense grid. The records are encoded once at start-up as
integer codes of the declared values; a query's filters and groupings then pick rows and
grid positions by array lookups, and its counts, sums and largest contributions are a
``np.bincount`` or a pass over a precomputed order — no group-by, key table or join per
query (those took ~4 ms of a fresh DP query's ~18 ms of CPU on the example survey, and
half of a cell key one's ~5 ms; issue 13). Margins are sums over grid axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations, product

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Codes:
    """One dataset's records as codes: per dimension the index of each record's value in the
    declared values (-1 for a missing or undeclared value: in no cell), the units' codes
    (None when every record is its own unit), every other numeric column (int64 or float64)
    with missing values as 0, and for the ``ranked`` ones the records by absolute value,
    largest first."""

    dims: dict[str, np.ndarray]
    units: np.ndarray | None
    numbers: dict[str, np.ndarray]
    largest_first: dict[str, np.ndarray]


def encode(
    records: pl.DataFrame, values: dict[str, list[str]], unit_is_record: bool, ranked: Sequence[str] = ()
) -> Codes:
    """The codes of ``records`` (dimensions as declared ``values``)."""
    dims = {}
    for d, vals in values.items():
        lookup = pl.DataFrame({d: pl.Series(vals, dtype=pl.String), "_code": np.arange(len(vals), dtype=np.int32)})
        coded = records.select(pl.col(d).cast(pl.String)).join(lookup, on=d, how="left", maintain_order="left")
        dims[d] = coded["_code"].fill_null(-1).to_numpy()
    numeric = [c for c, t in records.schema.items() if t.is_numeric() and c not in values]
    numbers = {
        c: records[c].cast(pl.Int64 if records.schema[c].is_integer() else pl.Float64).fill_null(0).to_numpy()
        for c in numeric
    }
    return Codes(
        dims=dims,
        units=None if unit_is_record else records["_unit"].rank("dense").to_numpy().astype(np.int64),
        numbers=numbers,
        largest_first={m: np.argsort(-np.abs(numbers[m]), kind="stable") for m in ranked},
    )


def grid_codes(cfg, records: dict, values: dict, unit_is_record: dict) -> dict[str, Codes]:
    """The codes of every dataset answered on the grid (a ``ServiceConfig``'s DP and cell key
    datasets; a cell key dataset's measures ranked for their largest contributions)."""
    return {
        name: encode(records[name], values[name], unit_is_record[name], [] if ds.dp.enabled else list(ds.measures))
        for name, ds in cfg.datasets.items()
        if ds.dp.enabled or ds.answered_by_cell_key
    }


def filtered(records: pl.DataFrame, where: dict[str, list]) -> pl.DataFrame:
    """The records in every filter (for the answers that group records, not codes)."""
    if not where:
        return records
    return records.filter(pl.all_horizontal([pl.col(k).is_in(v) for k, v in where.items()]))


def cells_of(codes: Codes, values: dict[str, list[str]], by: list[str], where: dict[str, list]) -> tuple:
    """The rows a query counts and their flat positions in its grid. As the DP tables have
    always taken them: the rows in every filter, the first of each unit among them (one
    contribution per unit, in the data's order), and of those the ones whose ``by`` values
    are declared, each at the C-order position of its values among the grid's axes
    ``where.get(d, values[d])``. Returns (rows, positions, shape)."""
    size = len(next(iter(codes.dims.values())))
    keep, declared = np.ones(size, dtype=bool), np.ones(size, dtype=bool)
    position = np.zeros(size, dtype=np.int64)
    shape = []
    for d in dict.fromkeys([*by, *where]):
        axis = where.get(d, values[d])
        at = {v: i for i, v in enumerate(values[d])}
        slot = np.full(len(values[d]) + 1, -1, dtype=np.int64)  # the last slot: code -1
        slot[[at[v] for v in axis]] = np.arange(len(axis))
        pos = slot[codes.dims[d]]
        if d in where:
            keep &= pos >= 0
        else:
            declared &= pos >= 0
        if d in by:
            position = position * len(axis) + pos
            shape.append(len(axis))
    rows = np.flatnonzero(keep)
    if codes.units is not None:
        _, first = np.unique(codes.units[rows], return_index=True)
        rows = rows[np.sort(first)]
    rows = rows[declared[rows]]
    return rows, position[rows], tuple(shape) if by else (1,)


def counts(positions: np.ndarray, shape: tuple) -> np.ndarray:
    """Records per cell of the grid."""
    return np.bincount(positions, minlength=math.prod(shape)).reshape(shape)


def sums(
    codes: Codes, rows: np.ndarray, positions: np.ndarray, shape: tuple, column: str, bounds: tuple | None = None
) -> np.ndarray:
    """Per cell of the grid, the sum of a numeric column: clamped to ``bounds`` record by
    record if given (as floats), else exact for an integer column (int64, as a group-by
    sums it: a float64 sum of the cell key method's 32-bit keys would round past ~2 million
    records, and a margin summed from its cells would get another key than the same cell
    asked alone)."""
    x = codes.numbers[column][rows]
    size = math.prod(shape)
    if bounds is not None:
        x = np.clip(x.astype(np.float64), bounds[0], bounds[1])
    elif np.issubdtype(x.dtype, np.integer):
        low = np.bincount(positions, weights=x & _LOW, minlength=size).astype(np.int64)
        high = np.bincount(positions, weights=x >> _SPLIT, minlength=size).astype(np.int64)
        return ((high << _SPLIT) + low).reshape(shape)
    return np.bincount(positions, weights=x, minlength=size).reshape(shape)


_SPLIT = 26  # an integer sum in two float64 sums of 26-bit parts, each exact below 2**27 records
_LOW = (1 << _SPLIT) - 1


def largest(codes: Codes, rows: np.ndarray, positions: np.ndarray, shape: tuple, measure: str, k: int) -> np.ndarray:
    """Per cell of the grid, the ``k`` largest absolute values of a ranked measure, largest
    first (0 where a cell has fewer records): shape ``(*shape, k)``. The records in the
    measure's order, and per cell the first ``k`` of them."""
    where = np.full(len(codes.largest_first[measure]), -1, dtype=np.int64)
    where[rows] = positions
    order = codes.largest_first[measure]
    order = order[where[order] >= 0]
    cell = where[order]
    out = np.zeros((math.prod(shape), k))
    for j in range(k):
        cells, first = np.unique(cell, return_index=True)
        out[cells, j] = np.abs(codes.numbers[measure][order[first]])
        keep = np.ones(len(cell), dtype=bool)
        keep[first] = False
        order, cell = order[keep], cell[keep]
    return out.reshape(*shape, k)


def levels(by: list[str], margins: bool) -> list[tuple[int, ...]]:
    """The axes kept at each level of a table: the inner cells, then (with margins) every
    subset of the dimensions from the largest to none, in ``combinations`` order."""
    if not (margins and by):
        return [tuple(range(len(by)))]
    return [c for r in range(len(by), -1, -1) for c in combinations(range(len(by)), r)]


def summed(grid: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """The grid summed over every axis not in ``axes`` (C order over those kept)."""
    return grid.sum(axis=tuple(i for i in range(grid.ndim) if i not in axes)).reshape(-1)


def cell_labels(keys: list[str], names: list[str], values: list[list[str]]) -> list[dict]:
    """The dimension values of each cell of a level, in the grid's C order: every one of
    ``keys`` (the query's dimensions), the ``names`` summed at this level taking their
    ``values``, the others None."""
    return [{**dict.fromkeys(keys), **dict(zip(names, label))} for label in product(*values)]
