"""The cells file and the bridge, resolved for one day: cell id -> cell index, place, unit.

A cells file (CSV or Parquet) has ``cell_id``, ``lon``, ``lat`` and optionally ``site_id``,
``version``, ``valid_from``, ``valid_to`` (dates, inclusive, empty = open). On a given day an
event's cell is the version valid that day; two versions valid on one day are an error. The
resolved table numbers every (cell_id, version) by ``cell_ix`` in the order of cell_id then
version, so "the smallest cell_id" tie-break is "the smallest cell_ix".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.mobility.geography import cell_units


def read_table(path: str | Path) -> pl.DataFrame:
    """A CSV or Parquet file as a frame; SafemicroError naming the file otherwise."""
    p = Path(path)
    if not p.is_file():
        raise SafemicroError("file not found", file=str(p))
    try:
        return pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p, infer_schema_length=10_000)
    except Exception as e:
        raise SafemicroError(f"cannot read: {type(e).__name__}: {str(e).splitlines()[0]}", file=str(p)) from None


def _require(frame: pl.DataFrame, cols: list[str], source: str) -> None:
    for c in cols:
        if c not in frame.columns:
            raise SafemicroError(f"column missing (have {', '.join(frame.columns)})", file=source, column=c)


def resolve_cells(
    cells_path: str | Path, bridge_path: str | Path, units_path: str | Path | None = None
) -> pl.DataFrame:
    """cell_ix, cell_id, version, lon, lat, valid_from, valid_to, admin3 (and parents)."""
    src = str(cells_path)
    cells = read_table(cells_path)
    _require(cells, ["cell_id", "lon", "lat"], src)
    for c in ("lon", "lat"):
        v = cells[c].cast(pl.Float64, strict=False)
        bad = v.is_null() | ~v.is_between(-180 if c == "lon" else -90, 180 if c == "lon" else 90)
        if bad.any():
            row = int(bad.arg_true()[0])
            raise SafemicroError(f"not a coordinate: {cells[c][row]!r}", file=src, column=c, row=row + 1)
        cells = cells.with_columns(v.alias(c))
    if cells["cell_id"].null_count():
        row = int(cells["cell_id"].is_null().arg_true()[0])
        raise SafemicroError("missing cell id", file=src, column="cell_id", row=row + 1)
    if "version" not in cells.columns:
        cells = cells.with_columns(version=pl.lit(0, pl.Int64))
    for c in ("valid_from", "valid_to"):
        if c not in cells.columns:
            cells = cells.with_columns(pl.lit(None, pl.Date).alias(c))
        elif cells[c].dtype != pl.Date:
            parsed = cells[c].cast(pl.String).str.to_date(strict=False)
            bad = parsed.is_null() & cells[c].is_not_null() & (cells[c].cast(pl.String) != "")
            if bad.any():
                row = int(bad.arg_true()[0])
                raise SafemicroError(f"not an ISO date: {cells[c][row]!r}", file=src, column=c, row=row + 1)
            cells = cells.with_columns(parsed.alias(c))
    integer = cells["cell_id"].dtype.is_integer()
    cells = cells.with_columns(pl.col("cell_id").cast(pl.Int64 if integer else pl.String))
    bridge = read_table(bridge_path)
    _require(bridge, ["cell_id", "pcode"], str(bridge_path))
    if "weight" not in bridge.columns:
        bridge = bridge.with_columns(weight=pl.lit(1.0))
    hierarchy = read_table(units_path) if units_path is not None else None
    units = cell_units(bridge, hierarchy)
    out = (
        cells.sort("cell_id", "version")
        .with_row_index("cell_ix")
        .with_columns(pl.col("cell_ix").cast(pl.UInt32))
        .with_columns(pl.col("cell_id").cast(pl.String).alias("_key"))
        .join(units.rename({"cell_id": "_key"}), on="_key", how="left")
        .drop("_key")
    )
    missing = out.filter(pl.col("admin3").is_null())
    if missing.height:
        raise SafemicroError(
            f"cell {missing['cell_id'][0]!r} has no admin unit in the bridge ({missing.height} cells have none)",
            file=str(bridge_path),
            column="cell_id",
        )
    return out


def valid_on(cells: pl.DataFrame, day: dt.date, source: str = "cells") -> pl.DataFrame:
    """The cell versions valid on ``day`` (one per cell_id; two are an error)."""
    valid = cells.filter(
        (pl.col("valid_from").is_null() | (pl.col("valid_from") <= day))
        & (pl.col("valid_to").is_null() | (pl.col("valid_to") >= day))
    )
    dup = valid.filter(pl.col("cell_id").is_duplicated())
    if dup.height:
        raise SafemicroError(f"cell {dup['cell_id'][0]!r} has two versions valid on {day}", file=source)
    return valid
