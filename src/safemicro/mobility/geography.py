"""Admin geography for mobile data: a synthetic lattice and the cell -> unit bridge.

The engine needs only the bridge ``(cell_id, pcode, level, weight)`` (FlowKit's geo_bridge
with weights): a cell split over several units carries weights summing to 1 and is counted
in the unit of its largest weight (ties: the smallest pcode). :func:`bridge_from_polygons`
builds the bridge from admin polygons with a vectorised even-odd point-in-polygon test in
NumPy (no GIS dependency).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError

LEVELS = ("admin1", "admin2", "admin3")


@dataclass(frozen=True)
class Lattice:
    """The built-in geography: 4 admin1 x 4 admin2 x 4 admin3 = 64 square admin3 units.

    admin3 units tile an 8 x 8 grid of ``side`` degrees from (``lon0``, ``lat0``); admin2 are
    2 x 2 blocks of admin3, admin1 are 2 x 2 blocks of admin2. Pcodes: ``R1`` (admin1),
    ``R1D2`` (admin2), ``R1D2C3`` (admin3), digits 1-4 in row-major order within the parent.
    """

    lon0: float = 30.0
    lat0: float = -2.0
    side: float = 0.25

    def units(self) -> pl.DataFrame:
        """One row per admin3: pcode, admin2, admin1, grid column/row, polygon corners."""
        ix, iy = np.meshgrid(np.arange(8), np.arange(8), indexing="xy")
        ix, iy = ix.ravel(), iy.ravel()
        a1 = 1 + (iy // 4) * 2 + (ix // 4)
        a2 = 1 + ((iy // 2) % 2) * 2 + ((ix // 2) % 2)
        a3 = 1 + (iy % 2) * 2 + (ix % 2)
        p1 = np.char.add("R", a1.astype(str))
        p2 = np.char.add(np.char.add(p1, "D"), a2.astype(str))
        p3 = np.char.add(np.char.add(p2, "C"), a3.astype(str))
        return pl.DataFrame(
            {
                "admin3": p3,
                "admin2": p2,
                "admin1": p1,
                "lon_min": self.lon0 + ix * self.side,
                "lat_min": self.lat0 + iy * self.side,
                "lon_max": self.lon0 + (ix + 1) * self.side,
                "lat_max": self.lat0 + (iy + 1) * self.side,
            }
        ).sort("admin3")

    def polygons(self) -> dict[str, np.ndarray]:
        """admin3 pcode -> closed ring (k x 2 array of lon, lat)."""
        out = {}
        for r in self.units().iter_rows(named=True):
            x0, y0, x1, y1 = r["lon_min"], r["lat_min"], r["lon_max"], r["lat_max"]
            out[r["admin3"]] = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
        return out


def points_in_polygon(lon: np.ndarray, lat: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points: True where (lon, lat) lies inside ``ring``.

    Points on the lower/left edges count as inside, on the upper/right edges as outside,
    so a point on a shared edge of a tiling falls in exactly one polygon.
    """
    x = np.asarray(lon, dtype=float)[:, None]
    y = np.asarray(lat, dtype=float)[:, None]
    x1, y1 = ring[:-1, 0][None, :], ring[:-1, 1][None, :]
    x2, y2 = ring[1:, 0][None, :], ring[1:, 1][None, :]
    crosses = (y1 <= y) != (y2 <= y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xcross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return ((crosses & (x < xcross)).sum(axis=1) % 2) == 1


def bridge_from_polygons(
    cells: pl.DataFrame, polygons: dict[str, np.ndarray], *, level: str = "admin3"
) -> pl.DataFrame:
    """The cell -> unit bridge by point in polygon: one row per cell, weight 1.

    Raises SafemicroError naming the first cell that lies in no polygon (a bridge must
    place every cell; fix the polygons or drop the cell from the cells file).
    """
    lon, lat = cells["lon"].to_numpy(), cells["lat"].to_numpy()
    pcode = np.full(len(lon), None, dtype=object)
    for code in sorted(polygons):
        inside = points_in_polygon(lon, lat, polygons[code]) & (pcode == None)  # noqa: E711
        pcode[inside] = code
    missing = np.flatnonzero(pcode == None)  # noqa: E711
    if missing.size:
        raise SafemicroError(
            f"cell {cells['cell_id'][int(missing[0])]!r} lies in no admin polygon ({missing.size} cells do)",
            column="cell_id",
            row=int(missing[0]) + 1,
        )
    return pl.DataFrame(
        {"cell_id": cells["cell_id"], "level": level, "pcode": pl.Series(pcode, dtype=pl.String), "weight": 1.0}
    )


def cell_units(bridge: pl.DataFrame, hierarchy: pl.DataFrame | None = None) -> pl.DataFrame:
    """One unit per cell from a weighted bridge: the largest weight, ties to the smallest
    pcode; with a hierarchy (admin3 -> admin2 -> admin1) its parents are added."""
    need = {"cell_id", "pcode", "weight"}
    if not need <= set(bridge.columns):
        raise SafemicroError(f"the bridge needs columns {sorted(need)}, has {bridge.columns}")
    one = (
        bridge.sort(["cell_id", "weight", "pcode"], descending=[False, True, False])
        .unique("cell_id", keep="first", maintain_order=True)
        .select(pl.col("cell_id").cast(pl.String), pl.col("pcode").alias("admin3"))
    )
    if hierarchy is not None:
        one = one.join(hierarchy.select(LEVELS[::-1]), on="admin3", how="left")
    return one
