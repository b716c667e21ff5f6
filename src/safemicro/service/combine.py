"""Add protected tables from several providers, cell by cell, keeping what is uncertain.

Every input is a table in the shape :func:`safemicro.service.protection.protect` returns
(dims..., ``value``, ``status``, ``lower``, ``upper``, ``noise_variance``, ...). For each cell
the combined ``value`` is the sum of the providers' values when every provider released it;
otherwise it is None and the cell is "partial" (or "suppressed" when no provider released
it). ``lower``/``upper`` always bound the true sum: a released exact value counts as itself,
a rounded one as its rounding interval, a suppressed one as the interval its provider
published (an unknown upper bound makes the combined upper bound None = unbounded), and a
noisy one as its value with its noise variance added to ``noise_variance`` (noise is
independent across providers). A cell a provider's table does not list counts as zero by
default (``protect`` lists every cell, so absence means the provider has no such records),
or as unknown with ``missing="unknown"``.

Counts from different providers are counts of *records*: the same person registered with two
providers is counted twice. Without record linkage the combined figure is "registrations",
not "persons".
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from safemicro.errors import SafemicroError

__all__ = ["combine"]

_NEEDED = ("value", "status", "lower", "upper")


def combine(
    tables: list[pl.DataFrame],
    dims: list[str],
    *,
    missing: Literal["zero", "unknown"] = "zero",
    names: list[str] | None = None,
) -> pl.DataFrame:
    """One table: dims..., ``value``, ``status`` ("released" | "partial" | "suppressed"),
    ``lower``, ``upper``, ``noise_variance``, ``providers`` (tables listing the cell),
    ``suppressed_in`` (tables where it is suppressed)."""
    if not tables:
        raise SafemicroError("nothing to combine: no tables")
    if missing not in ("zero", "unknown"):
        raise SafemicroError(f"missing must be 'zero' or 'unknown', got {missing!r}")
    names = names or [f"table {i + 1}" for i in range(len(tables))]
    parts = []
    for name, t in zip(names, tables):
        for c in list(dims) + list(_NEEDED):
            if c not in t.columns:
                raise SafemicroError(f"{name} has no column {c!r}", column=c)
        bad = t.filter(~pl.col("status").is_in(["released", "suppressed"]))
        if bad.height:
            raise SafemicroError(f"{name}: unknown status {bad.get_column('status')[0]!r}", column="status")
        variance = pl.col("noise_variance") if "noise_variance" in t.columns else pl.lit(None, dtype=pl.Float64)
        noisy = variance.is_not_null() & (pl.col("status") == "released")
        released = pl.col("status") == "released"
        part = t.select(
            *[pl.col(d) for d in dims],
            pl.col("value").cast(pl.Float64).alias("_value"),
            released.alias("_released"),
            # bounds on the true value: noisy cells count as their value (noise kept apart)
            pl.when(noisy)
            .then(pl.col("value"))
            .when(released)
            .then(pl.coalesce(pl.col("lower"), pl.col("value")))
            .otherwise(pl.col("lower"))
            .cast(pl.Float64)
            .alias("_lo"),
            pl.when(noisy)
            .then(pl.col("value"))
            .when(released)
            .then(pl.coalesce(pl.col("upper"), pl.col("value")))
            .otherwise(pl.col("upper"))
            .cast(pl.Float64)
            .alias("_hi"),
            pl.when(noisy).then(variance).otherwise(0.0).cast(pl.Float64).alias("_var"),
        )
        dup = part.group_by(dims).len().filter(pl.col("len") > 1) if dims else None
        if dup is not None and dup.height:
            raise SafemicroError(f"{name} lists the same cell twice: {dup.row(0)[:-1]!r}")
        parts.append(part)
    if dims:
        schema_dims = {}
        for p in parts:
            for d in dims:
                schema_dims.setdefault(d, p.schema[d])
        parts = [p.with_columns([pl.col(d).cast(schema_dims[d]) for d in dims]) for p in parts]
    stacked = pl.concat(parts, how="vertical_relaxed")
    n_tables = len(tables)
    agg = [
        pl.len().alias("providers"),
        (~pl.col("_released")).sum().cast(pl.Int64).alias("suppressed_in"),
        pl.col("_released").all().alias("_all"),
        pl.col("_released").any().alias("_any"),
        pl.col("_value").sum().alias("_sum"),
        pl.col("_lo").sum().alias("_losum"),
        pl.col("_lo").is_null().any().alias("_lo_unknown"),
        pl.col("_hi").sum().alias("_hisum"),
        pl.col("_hi").is_null().any().alias("_hi_unknown"),
        pl.col("_var").sum().alias("noise_variance"),
        (pl.col("_var") > 0).any().alias("_noisy"),
    ]
    g = stacked.group_by(dims, maintain_order=True).agg(agg) if dims else stacked.select(agg)
    absent = pl.col("providers") < n_tables
    unknown_missing = absent & (missing == "unknown")
    complete = pl.col("_all") & ~unknown_missing
    out = g.select(
        *[pl.col(d) for d in dims],
        pl.when(complete).then(pl.col("_sum")).otherwise(None).alias("value"),
        pl.when(complete)
        .then(pl.lit("released"))
        .when(pl.col("_any"))
        .then(pl.lit("partial"))
        .otherwise(pl.lit("suppressed"))
        .alias("status"),
        pl.when(pl.col("_lo_unknown") | unknown_missing).then(None).otherwise(pl.col("_losum")).alias("lower"),
        pl.when(pl.col("_hi_unknown") | unknown_missing).then(None).otherwise(pl.col("_hisum")).alias("upper"),
        pl.when(pl.col("_noisy")).then(pl.col("noise_variance")).otherwise(None).alias("noise_variance"),
        pl.col("providers").cast(pl.Int64),
        pl.col("suppressed_in"),
    )
    return out.sort(list(dims), nulls_last=True) if dims else out
