"""What an analyst derives from protected tables only ("round, then derive").

Inputs are released cells as the service returns them (a frame with the dimensions,
``value`` and ``status``; margins have a null dimension value). Nothing here reads records:
a suppressed cell gives no estimate rather than a guess.
- :func:`displacement_table`: per origin, released located and displaced counts and the
  displaced share;
- :func:`scaled_estimates`: displaced persons = displaced / located x the origin's
  population (the provider's population table), from protected counts only;
- :func:`above_normal`: z of the displaced share of some origins against the other rows
  of the same protected table (two-proportion z), to tell a displacement from the
  background of home-detection noise and ordinary moves.
"""

from __future__ import annotations

import math

import polars as pl


def displacement_table(displaced: pl.DataFrame, located: pl.DataFrame, origin: str) -> pl.DataFrame:
    """origin, located, displaced, displaced_upper, share, from two released one-way tables:
    ``displaced`` (count by origin filtered to displaced subscribers) and ``located`` (count
    by origin). A suppressed cell gives null (its published upper bound in
    ``displaced_upper``). Two one-way tables keep the displaced column free of the
    secondary suppression a status crosstab would need for its small statuses."""

    def released(cells: pl.DataFrame, name: str) -> pl.DataFrame:
        inner = cells.filter(pl.col(origin).is_not_null())
        ok = pl.col("status") == "released"
        return inner.select(
            origin,
            pl.when(ok).then(pl.col("value")).alias(name),
            pl.when(ok).then(pl.col("value")).otherwise(pl.col("upper")).alias(f"{name}_upper"),
        )

    out = (
        released(located, "located").drop("located_upper").join(released(displaced, "displaced"), on=origin, how="left")
    )
    return out.with_columns((pl.col("displaced") / pl.col("located")).alias("share")).sort(origin)


def scaled_estimates(table: pl.DataFrame, population: pl.DataFrame, origin: str) -> pl.DataFrame:
    """``table`` from :func:`displacement_table` with ``population`` (origin, population):
    adds ``displaced_persons`` = share x population."""
    return table.join(population.select(origin, "population"), on=origin, how="left").with_columns(
        (pl.col("share") * pl.col("population")).alias("displaced_persons")
    )


def above_normal(table: pl.DataFrame, origin: str, origins: list[str]) -> float | None:
    """Two-proportion z of the displaced share in ``origins`` against the other origins.

    An origin's suppressed displaced cell counts at its published upper bound (so the z is
    an upper bound: "not above normal" holds whatever the hidden value); rows of the other
    origins with a suppressed cell are left out. None when either side is empty."""
    a = table.filter(pl.col(origin).is_in(origins) & pl.col("located").is_not_null())
    b = table.filter(
        ~pl.col(origin).is_in(origins) & pl.col("displaced").is_not_null() & pl.col("located").is_not_null()
    )
    na, nb = float(a["located"].sum()), float(b["located"].sum())
    if na == 0 or nb == 0:
        return None
    pa, pb = float(a["displaced_upper"].sum()) / na, float(b["displaced"].sum()) / nb
    p = (pa * na + pb * nb) / (na + nb)
    se = math.sqrt(p * (1 - p) * (1 / na + 1 / nb))
    return (pa - pb) / se if se > 0 else 0.0
