"""The per-subscriber reference table the aggregate service answers from, and its config.

One row per subscriber with a baseline home (the pseudonym as text), every column a declared dimension, so that
every released table counts distinct subscribers with one contribution each (sensitivity 1
in DP mode) and the differencing ledger sees every table as predicates over the same rows:
- ``home0`` / ``home0_admin2`` / ``home0_admin1``: the baseline home (F4) and its parents;
- ``home1`` / ``home1_admin2``: the follow-up majority location (F3) and its parent;
  ``none`` where there is no such unit;
- ``displacement`` (F9's status; ``status`` names the service's output column) and ``returned`` (F10, when a later window is given);
- ``rog_bin``, ``night_bin``, ``degree_bin``: the baseline metrics in provider-declared bins
  (the lowest and highest bins are open-ended);
- ``wk_YYYY_WW``: weekly presence, the subscriber's modal daily location over the days of
  that ISO week (``none`` when not seen that week);
- ``day_YYYYMMDD`` (only with ``daily_columns=True``): the daily location, for a DP-only
  dataset (a mobility dataset refuses daily columns without DP: trajectory recovery).
The table stays inside the node (the service's `file:`), never released as rows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from safemicro.mobility.features import modal_location, scan

DEFAULT_BINS = {
    "rog_bin": ("rog_km", [1.0, 5.0, 10.0, 25.0, 50.0, 75.0]),
    "night_bin": ("night_pct", [10.0, 25.0, 50.0]),
    "degree_bin": ("degree", [1.0, 3.0, 6.0, 10.0]),
}
NONE = "none"


def bin_labels(edges: list[float]) -> list[str]:
    """Labels of the bins cut at ``edges``: <e0, e0-e1, ..., >=ek (numbers printed with %g)."""
    out = [f"<{edges[0]:g}"]
    out += [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:])]
    return out + [f">={edges[-1]:g}"]


def binned(values: pl.Expr, edges: list[float]) -> pl.Expr:
    """The bin label of each value (left-closed bins; nulls fall in the lowest bin)."""
    labels = bin_labels(edges)
    expr = pl.when(values.is_null() | (values < edges[0])).then(pl.lit(labels[0]))
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        expr = expr.when((values >= a) & (values < b)).then(pl.lit(labels[i + 1]))
    return expr.otherwise(pl.lit(labels[-1]))


def week_label(day: dt.date) -> str:
    y, w, _ = day.isocalendar()
    return f"wk_{y}_{w:02d}"


def reference_table(
    features: pl.DataFrame,
    cells: pl.DataFrame,
    daily_root: str | Path,
    days: list[dt.date],
    *,
    bins: dict[str, tuple[str, list[float]]] | None = None,
    daily_columns: bool = False,
) -> pl.DataFrame:
    """The service table from :func:`.features.subscriber_features` and the daily tables."""
    bins = DEFAULT_BINS if bins is None else bins
    parents = cells.select("admin3", *[c for c in ("admin2", "admin1") if c in cells.columns]).unique("admin3")
    # subscribers without a baseline home stay out: "no home" would equal "home0 = none" by
    # definition, a structural identity an analyst could use to undo suppression
    t = features.filter(pl.col("home0").is_not_null()).select(
        pl.col("sub").cast(pl.String).alias("subscriber"),
        "home0",
        "home1",
        pl.col("status").alias("displacement"),
        *(["returned"] if "returned" in features.columns else []),
        *[binned(pl.col(src), edges).alias(name) for name, (src, edges) in bins.items()],
    )
    for h, levels in (("home0", ("admin2", "admin1")), ("home1", ("admin2", "admin1"))):
        keep = [lv for lv in levels if lv in parents.columns]
        if keep:
            p = parents.select(pl.col("admin3").alias(h), *[pl.col(lv).alias(f"{h}_{lv}") for lv in keep])
            t = t.join(p, on=h, how="left")
    weeks: dict[str, list[dt.date]] = {}
    for d in days:
        weeks.setdefault(week_label(d), []).append(d)
    for label, wdays in weeks.items():
        modal = modal_location(scan(daily_root, "daily", wdays)).collect()
        t = t.join(
            modal.select(pl.col("sub").cast(pl.String).alias("subscriber"), pl.col("modal").alias(label)),
            on="subscriber",
            how="left",
        )
    if daily_columns:
        for d in days:
            one = scan(daily_root, "daily", [d]).select(
                pl.col("sub").cast(pl.String).alias("subscriber"), pl.col("unit_last").alias(f"day_{d:%Y%m%d}")
            )
            t = t.join(one.collect(), on="subscriber", how="left")
    dims = [c for c in t.columns if c != "subscriber"]
    return t.with_columns(pl.col(dims).fill_null(NONE)).sort("subscriber")


def dataset_config(
    table: pl.DataFrame,
    file: str,
    *,
    population: str = "subscribers",
    bins: dict[str, tuple[str, list[float]]] | None = None,
    dp: bool = False,
) -> dict[str, Any]:
    """The service YAML declaration of a mobility dataset over ``table`` (written at ``file``)."""
    bins = DEFAULT_BINS if bins is None else bins
    dims: dict[str, Any] = {}
    for h in ("home0", "home1"):
        if h not in table.columns:
            continue
        parent = None
        for lv in ("admin1", "admin2"):
            col = f"{h}_{lv}"
            if col in table.columns:
                dims[col] = {"kind": "admin", "column": col, **({"parent": parent} if parent else {})}
                parent = col
        dims[h] = {"kind": "admin", "column": h, **({"parent": parent} if parent else {})}
    statuses = ["stayed", "displaced", "unlocatable", "inactive"]
    dims["displacement"] = {"kind": "category", "column": "displacement", "values": statuses}
    if "returned" in table.columns:
        dims["returned"] = {"kind": "category", "column": "returned", "values": ["returned", "not_returned", "na"]}
    for name, (_, edges) in bins.items():
        dims[name] = {"kind": "category", "column": name, "values": bin_labels(edges)}
    for c in table.columns:
        if c.startswith("wk_") or (dp and c.startswith("day_")):
            dims[c] = {"kind": "admin", "column": c}
    out: dict[str, Any] = {
        "kind": "mobility",
        "file": file,
        "population": population,
        "unit": "subscriber",
        "dimensions": dims,
        "queries": ["count", "crosstab"],
    }
    if dp:
        out["dp"] = {"enabled": True, "epsilon_per_query": 0.5, "analyst_budget": 2.0, "dataset_budget": 5.0}
    return out
