"""Risk against an explicit population: k-map and δ-presence.

When the curator holds the population the release was drawn from (a registration database
the survey sampled, a census frame), population frequencies need not be estimated from
weights: they are counted. Both measures come from one join of key tables (the population
grouped once per pattern of missing keys), never from a loop over records.

- **k-map** (El Emam & Dankar 2008; ARX "k-map"): the population frequency F of every
  released record's key, counted exactly. A release meets k-map when every F ≥ k: whoever
  an intruder singles out in the release matches at least k people of the population.
- **δ-presence** (Nergiz, Atzori & Clifton 2007; ARX "δ-presence"): for each released key,
  δ = f / F, the share of the matching population people who are in the release: the
  probability that a person of the population known to hold that key is in it. A release
  is δ-present when δmin ≤ δ ≤ δmax for every released key (ARX checks the classes of the
  research subset the same way).

A missing (suppressed) key value in the release is a wildcard: it matches every population
value of that key. A missing value in the population is a value of its own. Keys are
compared as numbers when both sides are numeric, else as text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError

__all__ = ["population_checks", "population_frequencies", "population_risk"]

_ROW = "__pop_row"
_F = "__pop_F"
_f = "__pop_f"


def _aligned(sample: pl.DataFrame, population: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Both key frames in comparable dtypes, column by column."""
    s_cols, p_cols = [], []
    for name in keys:
        a, b = sample.get_column(name), population.get_column(name)
        if a.dtype.is_numeric() and b.dtype.is_numeric():
            a, b = a.cast(pl.Float64), b.cast(pl.Float64)
        else:
            a, b = a.cast(pl.String), b.cast(pl.String)
        s_cols.append(a)
        p_cols.append(b)
    return pl.DataFrame(s_cols), pl.DataFrame(p_cols)


def population_frequencies(sample: pl.DataFrame, population: pl.DataFrame, keys: list[str]) -> np.ndarray:
    """F for every sample row: population rows matching its keys (missing = wildcard).

    One group-by of the population per distinct pattern of missing sample keys, then a join.
    """
    s, p = _aligned(sample, population, keys)
    s = s.with_row_index(_ROW)
    miss = s.select([pl.col(k).is_null().alias(k) for k in keys])
    pattern = miss.select(pl.concat_str([pl.col(k).cast(pl.Int8).cast(pl.String) for k in keys]).alias("p"))
    s = s.with_columns(pattern.to_series())
    out = np.zeros(len(s), dtype=np.int64)
    for (pat,), rows in s.group_by("p"):
        on = [k for k, m in zip(keys, pat) if m == "0"]
        if not on:
            out[rows.get_column(_ROW).to_numpy()] = len(p)
            continue
        table = p.group_by(on).agg(pl.len().alias(_F))
        joined = rows.select([_ROW, *on]).join(table, on=on, how="left", nulls_equal=False)
        out[joined.get_column(_ROW).to_numpy()] = joined.get_column(_F).fill_null(0).to_numpy()
    return out


def population_risk(
    sample: pl.DataFrame,
    population: pl.DataFrame,
    keys: list[str],
    *,
    k: int | None = None,
    delta_min: float | None = None,
    delta_max: float | None = None,
    source: str | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """k-map and δ-presence of the released ``sample`` keys against ``population``.

    Returns the summary and per-record columns ``pop_Fk`` (population frequency of the
    record's key) and ``delta`` (f / F of its key; NaN when F = 0).
    """
    missing = [name for name in keys if name not in population.columns]
    if missing:
        raise SafemicroError(f"the population lacks the key variables {missing}", file=source, column=missing[0])
    F = population_frequencies(sample, population, keys)
    s, _ = _aligned(sample, population.head(0), keys)
    f = s.select(pl.len().over(keys).alias(_f)).to_series().to_numpy().astype(np.int64)
    delta = np.where(F > 0, f / np.maximum(F, 1), np.nan)
    found = F > 0
    kmap = int(F[found].min()) if found.any() else None
    summary: dict[str, Any] = {
        "source": source,
        "n_population": len(population),
        "n_records": len(sample),
        "sampling_fraction": len(sample) / len(population) if len(population) else None,
        "k_map": kmap,
        "k": k,
        "n_records_below_k": int(((F < k) & found).sum()) if k else None,
        "n_records_not_in_population": int((~found).sum()),
        "delta_presence": {
            "observed_min": float(np.nanmin(delta)) if found.any() else None,
            "observed_max": float(np.nanmax(delta)) if found.any() else None,
            "delta_min": delta_min,
            "delta_max": delta_max,
            "n_records_outside": int(
                (found & ((delta < (delta_min or 0.0)) | (delta > (1.0 if delta_max is None else delta_max)))).sum()
            ),
        },
    }
    return summary, {"pop_Fk": F, "delta": delta}


def population_checks(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The k-map and δ-presence target checks of an assessment's ``population`` section."""
    if not section:
        return []
    checks = []
    k, below = section.get("k"), section.get("n_records_below_k")
    if k:
        checks.append(
            {
                "target": f"k-map = {k}",
                "value": below,
                "passed": below == 0,
                "message": f"{below} records match fewer than {k} people of the population",
            }
        )
    dp = section["delta_presence"]
    if dp.get("delta_min") is not None or dp.get("delta_max") is not None:
        lo, hi = dp.get("delta_min") or 0.0, 1.0 if dp.get("delta_max") is None else dp["delta_max"]
        v = dp["n_records_outside"]
        checks.append(
            {
                "target": f"δ-presence in [{lo:g}, {hi:g}]",
                "value": v,
                "passed": v == 0,
                "message": f"{v} records have a key whose share of the population in the release is outside",
            }
        )
    missing = section.get("n_records_not_in_population")
    if missing:
        checks.append(
            {
                "target": "population holds the release",
                "value": missing,
                "passed": False,
                "message": f"{missing} records have a key no population record has (other coding, or not the population)",
            }
        )
    return checks
