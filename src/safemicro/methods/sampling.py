"""Subsampling a full enumeration (census, registration) before release.

A complete file lets anyone who knows a person is in the population find them; a 1–5 %
sample (Practice Guide; UNHCR registration practice) makes every match uncertain. Units
are records or whole households (``by``), drawn by simple random sampling without
replacement, or within strata with proportional allocation (largest-remainder rounding,
so the strata sizes add up to the requested total). The weight becomes the original
weight times the inverse inclusion probability ``N_h / n_h`` of the unit's stratum (or a
new weight column when the file has none). Kept records stay in their original order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import encode_column
from safemicro.methods.base import (
    Change,
    MethodResult,
    StepContext,
    StepParams,
    calls,
    count_changes,
    register,
    rng_for,
    stratum_ids,
    take_rows,
)

__all__ = ["subsample"]


def subsample(
    ds: Dataset,
    *,
    fraction: float | None = None,
    n: int | None = None,
    by: str | None = None,
    strata: str | Sequence[str] | None = None,
    weight: str | None = None,
    weight_name: str = "weight",
    seed: int | None = None,
) -> MethodResult:
    """Keep a random ``fraction`` (or ``n``) of the records, or of the households ``by``.

    ``strata``: sample within strata, proportionally to their sizes. ``weight``: the
    existing weight column, multiplied by ``N_h / n_h``; without it a new column
    ``weight_name`` holds ``N_h / n_h``.

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> ds = Dataset(pl.DataFrame({"x": list(range(10))}))
    >>> out = subsample(ds, n=2, seed=1).dataset.frame
    >>> out.height, out["weight"].to_list()
    (2, [5.0, 5.0])
    """
    strata = [strata] if isinstance(strata, str) else list(strata or [])
    for name in [*([by] if by else []), *strata, *([weight] if weight else [])]:
        if name not in ds.columns:
            raise SafemicroError("no such column", column=name, step="subsample")
    if weight is None and weight_name in ds.columns:
        raise SafemicroError(
            "a column of this name exists already: name the existing weight with `weight`"
            " or choose another `weight_name`",
            column=weight_name,
            step="subsample",
        )
    if weight is not None and not ds.frame.schema[weight].is_numeric():
        raise SafemicroError("the weight must be numeric", column=weight, step="subsample")

    unit, n_units, notes = _units(ds, by)
    unit_stratum, n_strata, strata_rows = _unit_strata(ds, unit, n_units, strata, by)
    total = _total(fraction, n, n_units, by)
    pop = np.bincount(unit_stratum, minlength=n_strata)
    take = _allocate(total, pop)

    rng, used_seed = rng_for(seed)
    order = np.lexsort((rng.random(n_units), unit_stratum))  # random order within each stratum
    start = np.r_[0, np.cumsum(pop)[:-1]]
    rank = np.arange(n_units) - start[unit_stratum[order]]
    chosen = np.zeros(n_units, dtype=bool)
    chosen[order[rank < take[unit_stratum[order]]]] = True
    rows = np.flatnonzero(chosen[unit])

    factor = np.divide(pop, take, out=np.zeros(n_strata), where=take > 0)[unit_stratum[unit[rows]]]
    before = take_rows(ds, rows)
    out, column = _reweight(before, factor, weight, weight_name)
    if weight is not None:
        changed, suppressed, touched = count_changes(before.frame, out.frame, [weight])
    else:
        changed, suppressed, touched = {column: len(rows)}, {column: 0}, len(rows)
    empty = int(((take == 0) & (pop > 0)).sum())
    if empty:
        notes.append(f"{empty} strata have no sampled unit: they are not represented")
    details: dict[str, Any] = {
        "unit": "household" if by else "record",
        "population_units": int(n_units),
        "sample_units": int(take.sum()),
        "sampling_fraction": float(take.sum() / n_units) if n_units else 0.0,
        "population_records": ds.n,
        "sample_records": len(rows),
        "records_removed": ds.n - len(rows),
        "weight": column,
        "weight_created": weight is None,
    }
    if strata:
        details["strata"] = [
            {
                "stratum": {name: ds.frame[name][int(strata_rows[h])] for name in strata},
                "population_units": int(pop[h]),
                "sample_units": int(take[h]),
            }
            for h in range(n_strata)
        ]
    change = Change(
        method="subsample",
        params={
            "fraction": fraction,
            "n": n,
            "by": by,
            "strata": strata or None,
            "weight": weight,
            "weight_name": None if weight else weight_name,
        },
        changed=changed,
        suppressed=suppressed,
        records_touched=touched,
        seed=used_seed,
        details=details,
        notes=notes,
    )
    return MethodResult(out, change)


def _units(ds: Dataset, by: str | None) -> tuple[np.ndarray, int, list[str]]:
    """Unit id 0..U-1 per record; records without a household id are units of their own."""
    if by is None:
        return np.arange(ds.n, dtype=np.int64), ds.n, []
    codes, card = encode_column(ds.analysis_column(by))
    missing = codes == 0
    unit = codes - 1
    unit[missing] = card + np.arange(int(missing.sum()))
    notes = []
    if missing.any():
        notes.append(f"{int(missing.sum())} records without a {by} were sampled as single units")
    return unit, card + int(missing.sum()), notes


def _unit_strata(
    ds: Dataset, unit: np.ndarray, n_units: int, strata: list[str], by: str | None
) -> tuple[np.ndarray, int, np.ndarray]:
    """Stratum id per unit (a household must lie in one stratum) and one row per stratum."""
    row_stratum, n_strata, first = stratum_ids(ds.frame, strata)
    unit_stratum = np.zeros(n_units, dtype=np.int64)
    unit_stratum[unit] = row_stratum
    split = np.flatnonzero(unit_stratum[unit] != row_stratum)
    if len(split):
        row = int(split[0])
        raise SafemicroError(
            f"household {ds.frame[by][row]!r} lies in more than one stratum; a household must be sampled whole",
            column=strata[0],
            row=row + 1,
            step="subsample",
        )
    return unit_stratum, n_strata, first


def _total(fraction: Any, n: Any, n_units: int, by: str | None) -> int:
    what = "households" if by else "records"
    if (fraction is None) == (n is None):
        raise SafemicroError("give exactly one of `fraction` and `n`", step="subsample")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SafemicroError("`n` must be a positive whole number", step="subsample")
        if n > n_units:
            raise SafemicroError(f"`n` = {n} but the file has only {n_units} {what}", step="subsample")
        return int(n)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.number)):
        raise SafemicroError("`fraction` must be a number in (0, 1]", step="subsample")
    if not 0.0 < float(fraction) <= 1.0:
        raise SafemicroError(f"`fraction` must lie in (0, 1], got {fraction}", step="subsample")
    total = int(np.floor(float(fraction) * n_units + 0.5))
    if total < 1:
        raise SafemicroError(f"a fraction of {fraction} of {n_units} {what} is an empty sample", step="subsample")
    return total


def _allocate(total: int, pop: np.ndarray) -> np.ndarray:
    """Proportional allocation of ``total`` over strata of sizes ``pop`` (largest remainder)."""
    quota = total * pop / pop.sum()
    take = np.floor(quota).astype(np.int64)
    remainder = quota - take
    extra = total - int(take.sum())
    if extra:
        take[np.argsort(-remainder, kind="stable")[:extra]] += 1
    return np.minimum(take, pop)


def _reweight(ds: Dataset, factor: np.ndarray, weight: str | None, weight_name: str) -> tuple[Dataset, str]:
    """Multiply the weight by ``factor`` (missing weights stay), or add it as a new column."""
    if weight is None:
        frame = ds.frame.with_columns(pl.Series(weight_name, factor, dtype=pl.Float64))
        out = ds.with_frame(frame)
        out.codebook.meta(weight_name).label = "Sampling weight (inverse subsampling probability)"
        out.codebook.meta(weight_name).measure = "scale"
        return out, weight_name
    scaled = pl.col(weight).cast(pl.Float64) * pl.Series(factor)
    frame = ds.frame.with_columns(
        pl.when(ds.missing_expr(weight)).then(pl.col(weight).cast(pl.Float64)).otherwise(scaled).alias(weight)
    )
    out = ds.with_frame(frame)
    if ds.frame.schema[weight] != pl.Float64:
        out.codebook.meta(weight).format = None  # an integer display format would round it
    return out, weight


# -- plan step ------------------------------------------------------------------------------


class SubsampleParams(StepParams):
    """Release a random (stratified) sample of records or whole households, with adjusted weights."""

    fraction: float | None = Field(None, gt=0.0, le=1.0)
    n: int | None = Field(None, ge=1)
    households: bool = False  # sample whole households (by = roles.household)
    by: str | None = None
    strata: list[str] | str | None = None  # None: roles.strata; []: no strata
    weight: str | None = None  # default: roles.weight
    weight_name: str = "weight"
    seed: int | None = None
    _consumed = ("households",)

    def _by(self, ctx: StepContext) -> str | None:
        return self.by or (ctx.roles.household if self.households else None)

    def _strata(self, ctx: StepContext) -> list[str]:
        if self.strata is None:
            return [ctx.roles.strata] if ctx.roles.strata else []
        return [self.strata] if isinstance(self.strata, str) else list(self.strata)

    def _weight(self, ctx: StepContext) -> str | None:
        return self.weight or ctx.roles.weight

    def resolve(self, ctx: StepContext) -> dict[str, Any]:
        return {"by": self._by(ctx), "strata": self._strata(ctx) or None, "weight": self._weight(ctx)}

    def reads(self, ctx: StepContext) -> list[str]:
        by, w = self._by(ctx), self._weight(ctx)
        return [*([by] if by else []), *self._strata(ctx), *([w] if w else [])]

    def check(self, ctx: StepContext) -> None:
        if (self.fraction is None) == (self.n is None):
            raise ValueError("subsample needs exactly one of fraction and n")
        if self.households and not self.by and not ctx.roles.household:
            raise ValueError("households: true needs roles.household (or give `by`)")
        if self._weight(ctx) is None and self.weight_name in ctx.columns:
            raise ValueError(
                f"weight_name {self.weight_name!r} is already a column; name the weight in"
                " roles.weight or choose another weight_name"
            )


def _describe(params: SubsampleParams, change: Change) -> str:
    d = change.details
    unit = "households" if d.get("unit") == "household" else "records"
    share = 100 * d.get("sampling_fraction", 0.0)
    how = "a stratified random sample (proportional allocation)" if d.get("strata") else "a simple random sample"
    return (
        f"The file is {how} of {share:.3g} % of the {unit} of the full enumeration "
        f"({d.get('sample_records')} records). The weight {d.get('weight')!r} includes the inverse "
        "sampling probability and must be used for all estimates."
    )


register("subsample", SubsampleParams, _describe, random=True, reorders=True)(calls(subsample))
