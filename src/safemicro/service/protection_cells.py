"""Cell statistics of an aggregate table: contributors, total and largest contributions per cell.

The input of :func:`safemicro.service.protection.protect`: one row per cell (and, on request,
per margin at every aggregation level), plus the zero cells a complete table must show.
"""

from __future__ import annotations

import itertools
import math

import polars as pl

from safemicro.errors import SafemicroError

_TOPS = ("top1", "top2", "top3")
_COMPLETE_LIMIT = 200_000  # largest cross product of dimension values filled with zero cells


def _check_columns(frame: pl.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SafemicroError(
            f"{what}: no column {missing[0]!r} (columns: {', '.join(frame.columns)})", column=missing[0]
        )


def cell_statistics(
    records: pl.DataFrame,
    dims: list[str],
    measure: str | None = None,
    unit: str | None = None,
    *,
    margins: bool = False,
) -> pl.DataFrame:
    """One row per non-empty cell of ``dims``: ``n``, ``total``, ``top1``..``top3``.

    ``n`` counts distinct ``unit`` values (rows when ``unit`` is None); ``total`` is the sum of
    ``measure`` (None for a count table); ``top1``..``top3`` are the largest contributions of
    single units to the total (0 when there are fewer). With ``margins`` the rows of every
    aggregation level are added, dimension value None meaning "all"; they are computed from
    the records, so a unit present in several cells is counted once in a margin.
    """
    _check_columns(records, list(dims) + [c for c in (measure, unit) if c], "cell statistics")
    for d in dims:
        nulls = records.get_column(d).is_null()
        if nulls.any():
            row = int(nulls.arg_max())
            raise SafemicroError(
                "dimension has missing values; recode them to a category before tabulating",
                column=d,
                row=row,
            )
    if measure is not None and not records.schema[measure].is_numeric():
        raise SafemicroError(f"measure must be numeric, is {records.schema[measure]}", column=measure)
    levels = (
        [list(c) for r in range(len(dims), -1, -1) for c in itertools.combinations(dims, r)]
        if margins
        else [list(dims)]
    )
    frames = []
    for level in levels:
        frame = _level_statistics(records, level, measure, unit)
        frame = frame.with_columns(
            [pl.lit(None, dtype=records.schema[d]).alias(d) for d in dims if d not in level]
        ).select(list(dims) + ["n", "total", *_TOPS])
        frames.append(frame)
    out = pl.concat(frames, how="vertical")
    return out.sort(list(dims), nulls_last=True) if dims else out


def _level_statistics(records: pl.DataFrame, keys: list[str], measure: str | None, unit: str | None) -> pl.DataFrame:
    lf = records.lazy()
    if measure is None:  # a column of ones, not pl.lit(1.0): a literal sums to 1.0 per group under polars 2
        lf = lf.with_columns(pl.lit(1.0).alias("_one"))
    value = pl.col(measure).cast(pl.Float64) if measure is not None else pl.col("_one")
    if unit is not None:
        contrib = lf.group_by(keys + [unit]).agg(value.sum().alias("_c"))
    else:
        contrib = lf.with_columns(value.alias("_c")).select(keys + ["_c"])
    agg = [
        pl.len().alias("n"),
        pl.col("_c").sum().alias("total"),
        pl.col("_c").top_k(3).sort(descending=True).alias("_top"),
    ]
    out = contrib.with_columns(pl.lit(0).alias("_g")).group_by(keys + ["_g"]).agg(agg).drop("_g")
    out = out.with_columns(
        [pl.col("_top").list.get(i, null_on_oob=True).fill_null(0.0).alias(name) for i, name in enumerate(_TOPS)]
    ).drop("_top")
    if measure is None:
        out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias("total"), *[pl.lit(0.0).alias(t) for t in _TOPS])
    return out.with_columns(pl.col("n").cast(pl.Int64)).collect()


def add_margins(cells: pl.DataFrame, dims: list[str]) -> pl.DataFrame:
    """Inner cells plus margin rows of every level, summed from the cells.

    ``n`` and ``total`` are added; the top contributions of a margin are the largest of its
    cells' tops, which is exact when every unit contributes to one cell only (always so
    when ``n`` counts rows). Use ``cell_statistics(..., margins=True)`` otherwise.
    """
    inner = cells.filter(pl.all_horizontal([pl.col(d).is_not_null() for d in dims])) if dims else cells
    frames = [inner]
    for r in range(len(dims) - 1, -1, -1):
        for level in itertools.combinations(dims, r):
            keys = list(level)
            aggs = [pl.col("n").sum(), pl.col("total").sum()]
            if all(t in inner.columns for t in _TOPS):
                aggs.append(
                    pl.concat_list(list(_TOPS))
                    .list.explode(keep_nulls=False, empty_as_null=False)
                    .top_k(3)
                    .sort(descending=True)
                    .alias("_top")
                )
            g = inner.with_columns(pl.lit(0).alias("_g")).group_by(keys + ["_g"]).agg(aggs).drop("_g")
            if "_top" in g.columns:
                g = g.with_columns(
                    [pl.col("_top").list.get(i, null_on_oob=True).fill_null(0.0).alias(t) for i, t in enumerate(_TOPS)]
                ).drop("_top")
            g = g.with_columns([pl.lit(None, dtype=cells.schema[d]).alias(d) for d in dims if d not in keys])
            frames.append(g.select(inner.columns) if set(inner.columns) <= set(g.columns) else g)
    common = [c for c in inner.columns if all(c in f.columns for f in frames)]
    return pl.concat([f.select(common) for f in frames], how="vertical_relaxed")


def _complete(cells: pl.DataFrame, dims: list[str]) -> pl.DataFrame:
    """Add zero cells for every combination of observed dimension values (not silently absent)."""
    if len(dims) < 2:
        return cells
    inner = cells.filter(pl.all_horizontal([pl.col(d).is_not_null() for d in dims]))
    values = [inner.get_column(d).unique() for d in dims]
    if math.prod(len(v) for v in values) > _COMPLETE_LIMIT or inner.height == 0:
        return cells
    grid = values[0].to_frame()
    for v in values[1:]:
        grid = grid.join(v.to_frame(), how="cross")
    missing = grid.join(inner.select(dims), on=dims, how="anti")
    if missing.height == 0:
        return cells
    fill = {"n": pl.lit(0, dtype=pl.Int64)}
    for c in cells.columns:
        if c in dims or c == "n":
            continue
        fill[c] = (
            pl.lit(0.0, dtype=cells.schema[c]) if cells.schema[c].is_numeric() else pl.lit(None, dtype=cells.schema[c])
        )
    if "total" in cells.columns and cells.get_column("total").is_null().all():
        fill["total"] = pl.lit(None, dtype=cells.schema["total"])
    zeros = missing.with_columns(**fill).select(cells.columns)
    return pl.concat([cells, zeros], how="vertical_relaxed")
