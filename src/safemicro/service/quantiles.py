"""Quantiles that cannot be swept.

A plain quantile is one record's value (or an interpolation between two neighbours), so
asking q = 0, 1/9, ..., 1 of a released cell of ten people returns the ten true values,
and q near 0 or 1 of a large cell returns its minimum or maximum. The service therefore
answers quantiles only under this rule (the SDC output-checking hazard of minima, maxima
and percentiles, made safe):

1. **A small public set of levels.** Only the levels of the dataset's policy
   (``policy.quantiles``, default 0.1, 0.25, 0.5, 0.75, 0.9; each within [0.05, 0.95]) are
   answered; any other q is refused (422). Minima, maxima and q = 0 or 1 are never released.
2. **Enough units on each side.** In a cell of n records the q-quantile sits at rank
   k = ceil(q·n); the cell is answered only when the records of ranks 1..k belong to at
   least T distinct units and those of ranks k+1..n to at least T (T the threshold; units
   are persons, or households when the dataset's unit is a household id, so the members
   of a few households are not "T records" on one side). Otherwise the cell is suppressed
   (rule ``quantile_rank``).
3. **Never one record's value.** The answer is the mean of the 2T order statistics around
   the rank (ranks k−T+1 … k+T), rounded to the measure's published granularity
   (``granularity`` in the config, else a round number near a hundredth of the clamping
   range). One record moves that mean by at most (upper − lower) / 2T, and recovering a
   value from the difference of two answers multiplies their rounding error by 2T. No
   linear combination of windows of equal width 2T ≥ 2 isolates a single order statistic
   (the polynomial 1 + z + … + z^(2T−1) has roots on the unit circle that z^j has not);
   and whatever else is known about the cell (its count, its sum), a quantile enters any
   combination multiplied by 2T, so its rounding leaves the result uncertain by T × the
   granularity at least.
4. **A bounded number of answers per set of records.** Each set of records (a cell is
   identified by exactly which records it covers, whatever the dimensions or dataset used to
   describe it) gets at most ``policy.max_quantiles_per_cell`` distinct levels released, by
   all analysts together; the levels used are recorded in the population's ledger
   (``<ledger>#quantiles``) and replayed at start-up. A further level is refused (409).
5. **Differencing.** Quantile cells also enter the record-level differencing ledger, so two
   cells that differ by fewer than T records are never both answered.

Why it cannot be swept: a sweep needs many levels on one set of records (rule 1 allows
five, rule 4 at most three of them), each answer needs T records beyond it on both sides
(rule 2, so no extreme), each answer averages 2T records and is rounded (rule 3, so no single
record's value, not even by combining answers on the same cell), and moving the cell by a
few records to shift the rank is differencing (rule 5).

In DP mode the quantile is OpenDP's private quantile (exponential mechanism over the
granularity grid between the clamping bounds), one record per unit, charged like any query
(ε per query, split across the margin levels).
"""

from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np
import polars as pl

__all__ = [
    "granularity",
    "cell_values",
    "mark_rank_rule",
    "QuantileQuota",
    "cell_keys",
    "dp_quantile_table",
]

RULE = "quantile_rank"


def granularity(lower: float, upper: float, declared: float | None = None) -> float:
    """The published rounding unit of a measure's quantiles: the declared one, else the
    round number (1, 2 or 5 × 10^k) at or above a hundredth of the clamping range."""
    if declared is not None:
        return float(declared)
    step = (upper - lower) / 100.0
    exp = math.floor(math.log10(step))
    for m in (1, 2, 5, 10):
        if m * 10.0**exp >= step * (1 - 1e-12):
            return m * 10.0**exp
    return 10.0 ** (exp + 1)  # pragma: no cover


def _levels(by: list[str], margins: bool) -> list[list[str]]:
    return [list(c) for r in range(len(by), -1, -1) for c in itertools.combinations(by, r)] if margins else [list(by)]


def cell_values(
    records: pl.DataFrame,
    by: list[str],
    measure: str,
    q: float,
    threshold: int,
    step: float,
    *,
    margins: bool,
    unit: str | None = None,
) -> pl.DataFrame:
    """Per cell (and margin): ``value`` (the rounded mean of the 2T order statistics around
    rank ceil(q·n)) and ``rank_ok`` (at least T records on each side of the rank; with a
    ``unit`` column, at least T distinct units among the records on each side)."""
    t = int(threshold)
    n = pl.len()
    k = (n.cast(pl.Float64) * q).ceil().cast(pl.Int64)
    window = pl.col(measure).sort().slice((k - t).clip(0), 2 * t).mean()
    if unit is None:
        ok = (k >= t) & (n.cast(pl.Int64) - k >= t)
    else:  # the units of the records in rank order (ties in a fixed order)
        ordered = pl.col(unit).sort_by(measure, unit)
        ok = (ordered.slice(0, k).n_unique() >= t) & (ordered.slice(k, n).n_unique() >= t)
    aggs = [window.alias("value"), ok.alias("rank_ok")]
    frames = []
    for level in _levels(by, margins):
        f = records.group_by(level).agg(aggs) if level else records.select(aggs)
        f = f.with_columns([pl.lit(None, dtype=pl.String).alias(d) for d in by if d not in level])
        frames.append(f.select(*by, "value", "rank_ok"))
    out = pl.concat(frames)
    rounded = (pl.col("value") / step + 0.5).floor() * step
    return out.with_columns(pl.when(pl.col("rank_ok")).then(rounded.round(12)).otherwise(None).alias("value"))


def mark_rank_rule(table: pl.DataFrame, ranks: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Suppress (rule ``quantile_rank``) the released cells without T records on each side."""
    joined = table.join(ranks.select(*by, "rank_ok"), on=by, how="left", nulls_equal=True)
    fail = (pl.col("status") == "released") & ~pl.col("rank_ok").fill_null(False)
    return joined.with_columns(
        pl.when(fail).then(pl.lit("suppressed")).otherwise(pl.col("status")).alias("status"),
        pl.when(fail).then(pl.lit(RULE)).otherwise(pl.col("rule")).alias("rule"),
        *[pl.when(fail).then(None).otherwise(pl.col(c)).alias(c) for c in ("value", "lower", "upper")],
    ).drop("rank_ok")


def cell_keys(records: pl.DataFrame, predicates: list[dict], column: str) -> list[str]:
    """A key per cell naming the measure's column and exactly the records it covers (row
    positions in the population's record order), so that two descriptions of one set of
    records share a quota."""
    from safemicro.service.differencing import predicate_mask

    masks = predicate_mask(records, predicates)
    return [hashlib.sha256(column.encode() + b"|" + np.packbits(m).tobytes()).hexdigest()[:32] for m in masks]


class QuantileQuota:
    """Distinct quantile levels released per set of records, across analysts and datasets."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.used: dict[str, set[str]] = {}

    @staticmethod
    def level(q: float) -> str:
        return repr(float(q))

    def replay(self, history: list[dict]) -> None:
        """Add stored requests ({"released": [{"cell": key, "q": level}, ...]}), as the
        differencing guards replay theirs."""
        for item in history:
            for p in item.get("released", []):
                self.used.setdefault(p["cell"], set()).add(p["q"])

    def exceeded(self, keys: list[str], q: float) -> bool:
        """Would answering level q on these cells pass some cell's quota?"""
        lv = self.level(q)
        return any(lv not in self.used.get(k, ()) and len(self.used.get(k, ())) >= self.limit for k in keys)

    def entries(self, keys: list[str], q: float) -> list[dict]:
        """Ledger rows for the cells that get a new level (store them, then :meth:`replay`)."""
        lv = self.level(q)
        return [{"cell": k, "q": lv} for k in dict.fromkeys(keys) if lv not in self.used.get(k, ())]


def dp_quantile_table(
    records: pl.DataFrame,
    by: list[str],
    keys: pl.DataFrame,
    measure: str,
    bounds: tuple[float, float],
    step: float,
    q: float,
    epsilon: float,
    *,
    margins: bool,
) -> pl.DataFrame:
    """OpenDP private quantiles over the public ``keys`` (one record per unit, ``_unit``),
    in the shape of the protected tables; ε is split evenly across the aggregation levels
    (a unit is in one cell per level: parallel within a level, sequential across)."""
    from safemicro.service.dp import _opendp, released_columns

    dp = _opendp()
    lo, hi = float(bounds[0]), float(bounds[1])
    steps = max(1, math.ceil((hi - lo) / step))
    if steps > 2000:  # a finer grid than this only costs time
        step = (hi - lo) / 2000
        steps = 2000
    candidates = [lo + i * step for i in range(steps)] + [hi]
    levels = _levels(by, margins)
    eps = epsilon / len(levels)
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))

    def make(scale: float):
        return dp.m.make_private_quantile(
            domain, dp.symmetric_distance(), dp.max_divergence(), candidates=candidates, alpha=float(q), scale=scale
        )

    scale = float(make(1.0).map(1)) / eps  # the privacy map is linear in 1/scale
    meas = make(scale)
    if float(meas.map(1)) > eps * (1 + 1e-9):  # pragma: no cover - OpenDP's map is the authority
        raise AssertionError("DP quantile would spend more than its share")
    one = records.filter(pl.int_range(pl.len()).over("_unit") == 0)
    frames = []
    for level in levels:
        cells = keys.select(level).unique(maintain_order=True) if level else pl.DataFrame({"_one": [1]})
        grouped = one.group_by(level).agg(pl.col(measure)) if level else one.select(pl.col(measure).implode())
        cells = cells.join(grouped, on=level, how="left") if level else cells.with_columns(grouped.to_series())
        values = [float(meas([float(v) for v in (vals or [])])) for vals in cells.get_column(measure).to_list()]
        f = cells.drop(measure, "_one", strict=False).with_columns(pl.Series("value", values, dtype=pl.Float64))
        f = f.with_columns([pl.lit(None, dtype=pl.String).alias(d) for d in by if d not in level])
        frames.append(f.select(*by, "value"))
    return pl.concat(frames).with_columns(
        *released_columns(scale), pl.lit(None, dtype=pl.Float64).alias("noise_variance")
    )
