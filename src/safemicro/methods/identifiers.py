"""Identifiers: remove direct identifiers and variables, renumber and reorder records.

Names, phone numbers, ID-card numbers, addresses and GPS points identify people without
any matching and never leave the curator's hands (Practice Guide step 2). Original
household and record numbers, and the order of the file, can carry information too
(interview date, enumeration area, the registration sequence), so after anonymization
the ids are replaced by new random numbers and the records put in random order,
households kept together (Practice Guide: re-number and re-order records).
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
    register,
    rng_for,
    take_rows,
)

__all__ = ["new_ids", "remove_variables"]


def remove_variables(ds: Dataset, *, variables: str | Sequence[str]) -> MethodResult:
    """Drop ``variables`` (and their codebook entries) from the dataset.

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> ds = Dataset(pl.DataFrame({"name": ["A"], "age": [30]}))
    >>> remove_variables(ds, variables=["name"]).dataset.columns
    ['age']
    """
    return _remove(ds, variables, "remove_variables")


def _remove(ds: Dataset, variables: str | Sequence[str], method: str) -> MethodResult:
    names = [variables] if isinstance(variables, str) else list(variables)
    if not all(isinstance(v, str) for v in names):
        raise SafemicroError("variables must be column names", step=method)
    if len(set(names)) != len(names):
        raise SafemicroError("variables lists a column twice", step=method)
    for name in names:
        if name not in ds.columns:
            raise SafemicroError("no such column", column=name, step=method)
    out = ds.with_frame(ds.frame.drop(names))
    notes = [] if names else ["no variables were named: nothing was removed"]
    change = Change(
        method=method,
        params={"variables": names},
        records_touched=ds.n if names else 0,
        removed=names,
        details={"removed": names},
        notes=notes,
    )
    return MethodResult(out, change)


def new_ids(
    ds: Dataset,
    *,
    household: str | None = None,
    record: str | None = None,
    shuffle_rows: bool = True,
    seed: int | None = None,
) -> MethodResult:
    """Replace household and/or record ids with new random numbers; shuffle the rows.

    Households get ids 1..H in a random order (all members share theirs); with
    ``shuffle_rows`` the households are put in that order, members adjacent and in their
    original order, so the ids run 1..H down the file. Record ids become 1..n in the new
    file order (in random order when the rows are not shuffled). Missing ids stay missing.

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> ds = Dataset(pl.DataFrame({"hh": [7, 7, 9], "x": [1, 2, 3]}))
    >>> out = new_ids(ds, household="hh", seed=2).dataset.frame
    >>> sorted(out["hh"].to_list())
    [1, 1, 2]
    """
    for name in (household, record):
        if name is not None and name not in ds.columns:
            raise SafemicroError("no such column", column=name, step="new_ids")
    if household is not None and household == record:
        raise SafemicroError("household and record id must be different columns", step="new_ids")
    if household is None and record is None and not shuffle_rows:
        raise SafemicroError("nothing to do: name a household or record id, or shuffle the rows", step="new_ids")
    rng, used_seed = rng_for(seed)
    n = ds.n

    # units moved as blocks: households, and records without a household id on their own
    if household is not None:
        codes, n_households = encode_column(ds.analysis_column(household))
        unit = codes - 1
        missing = codes == 0
        unit[missing] = n_households + np.arange(int(missing.sum()))
        n_units = n_households + int(missing.sum())
    else:
        unit, n_units, n_households = np.arange(n, dtype=np.int64), n, 0
    position = rng.permutation(n_units)  # the random place of each unit
    order = np.lexsort((np.arange(n), position[unit])) if shuffle_rows else np.arange(n)

    columns: dict[str, np.ndarray] = {}
    if household is not None:
        hh_units = position[:n_households]
        new_hh = np.empty(n_households, dtype=np.int64)
        new_hh[np.argsort(hh_units)] = np.arange(1, n_households + 1)  # 1..H by place
        columns[household] = np.where(codes[order] > 0, new_hh[np.maximum(codes[order] - 1, 0)], 0)
    if record is not None:
        observed = ~ds.frame.select(ds.missing_expr(record)).to_series().to_numpy()[order]
        if shuffle_rows:
            numbers = np.cumsum(observed)
        else:
            numbers = np.zeros(n, dtype=np.int64)
            numbers[observed] = rng.permutation(int(observed.sum())) + 1
        columns[record] = np.where(observed, numbers, 0)

    reordered = take_rows(ds, order)
    out, notes = _replace_ids(reordered, columns)
    ids = list(columns)
    change = Change.measured(
        reordered.frame,
        out.frame,
        ids,
        method="new_ids",
        params={"household": household, "record": record, "shuffle_rows": bool(shuffle_rows)},
        seed=used_seed,
        details={
            "households": int(n_households),
            "records": n,
            "rows_shuffled": bool(shuffle_rows),
            "rows_moved": int((order != np.arange(n)).sum()),
        },
        notes=notes,
    )
    return MethodResult(out, change)


def _replace_ids(ds: Dataset, columns: dict[str, np.ndarray]) -> tuple[Dataset, list[str]]:
    """Put new integer ids (0 = keep the missing cell) into their columns.

    Integer id columns keep their dtype when the new ids fit; others become Int64, and a
    missing code that is not a whole number (e.g. text) becomes null.
    """
    frame, notes = ds.frame, []
    for name, ids in columns.items():
        old = frame[name]
        keep_missing = ids == 0
        as_int = _as_int(old)
        present = old.is_not_null()
        if old.dtype.is_float():
            present = present & ~old.is_nan().fill_null(False)
        lost = int((keep_missing & present.to_numpy() & as_int.is_null().to_numpy()).sum())
        if lost:
            notes.append(f"{name}: {lost} missing codes that are not whole numbers became empty")
        new = pl.select(pl.when(pl.Series(keep_missing)).then(as_int).otherwise(pl.Series(ids)).alias(name)).to_series()
        dtype = old.dtype if old.dtype.is_integer() and _fits(new, old.dtype) else pl.Int64
        frame = frame.with_columns(new.cast(dtype))
    out = ds.with_frame(frame)
    for name in columns:
        meta = out.codebook.meta(name)
        meta.value_labels = {}  # the old labels named the old ids
        if frame.schema[name] != ds.frame.schema[name]:
            meta.format = None
            meta.missing_values = [v for v in meta.missing_values if _whole(v)]
            meta.missing_ranges = [r for r in meta.missing_ranges if _whole(r[0]) and _whole(r[1])]
    return out, notes


def _as_int(values: pl.Series) -> pl.Series:
    """The values as Int64; null where a value is not a whole number."""
    if values.dtype.is_integer():
        return values.cast(pl.Int64)
    if values.dtype.is_float():
        x = values.fill_nan(None)
        return pl.select(pl.when(x == x.floor()).then(x.cast(pl.Int64, strict=False))).to_series()
    try:  # text, categorical...: missing codes written as whole numbers survive
        return values.cast(pl.String).cast(pl.Int64, strict=False)
    except pl.exceptions.PolarsError:
        return pl.Series(values.name, [None] * len(values), dtype=pl.Int64)


def _fits(values: pl.Series, dtype: pl.DataType) -> bool:
    return values.cast(dtype, strict=False).null_count() == values.null_count()


def _whole(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()


# -- plan steps -----------------------------------------------------------------------------


class RemoveDirectIdsParams(StepParams):
    """Drop the direct identifiers (default: roles.direct_ids)."""

    variables: list[str] | None = None  # default: roles.direct_ids

    def _variables(self, ctx: StepContext) -> list[str]:
        return list(ctx.roles.direct_ids) if self.variables is None else list(self.variables)

    def reads(self, ctx: StepContext) -> list[str]:
        return self._variables(ctx)

    def removes(self, ctx: StepContext) -> list[str]:
        return self._variables(ctx)


class RemoveVariablesParams(StepParams):
    """Drop the listed variables."""

    variables: list[str] = Field(min_length=1)

    def reads(self, ctx: StepContext) -> list[str]:
        return list(self.variables)

    def removes(self, ctx: StepContext) -> list[str]:
        return list(self.variables)


class NewIdsParams(StepParams):
    """New random household (and record) ids and a random row order, households kept together."""

    variable: str | None = None  # the household id; default: roles.household
    record: str | None = None
    shuffle_rows: bool = True
    seed: int | None = None
    _consumed = ("variable",)

    def _household(self, ctx: StepContext) -> str | None:
        return self.variable or ctx.roles.household

    def resolve(self, ctx: StepContext) -> dict[str, Any]:
        return {"household": self._household(ctx)}

    def reads(self, ctx: StepContext) -> list[str]:
        return [v for v in (self._household(ctx), self.record) if v]

    def check(self, ctx: StepContext) -> None:
        if self.record is not None and self.record == self._household(ctx):
            raise ValueError("record and the household id (variable) must be different columns")


def _describe_removed(params: Any, change: Change) -> str:
    removed = change.details.get("removed", [])
    if not removed:
        return "No direct identifiers were named, so none were removed."
    if change.method == "remove_direct_ids":
        return f"The direct identifiers {', '.join(removed)} were removed from the file."
    if len(removed) == 1:
        return f"The variable {removed[0]} was removed from the file."
    return f"The variables {', '.join(removed)} were removed from the file."


def _describe_new_ids(params: NewIdsParams, change: Change) -> str:
    p = change.params
    ids = [
        f"household ids ({p['household']})" if p.get("household") else "",
        f"record ids ({p['record']})" if p.get("record") else "",
    ]
    ids = [i for i in ids if i]
    parts = []
    if ids:
        parts.append(f"The {' and '.join(ids)} were replaced by new random numbers")
    if p.get("shuffle_rows"):
        together = ", households kept together" if p.get("household") else ""
        parts.append(f"the records were put in random order{together}")
    text = " and ".join(parts)
    return text[0].upper() + text[1:] + ", so ids and row order carry no information about the original file."


@register("remove_direct_ids", RemoveDirectIdsParams, _describe_removed)
def _step_remove_direct_ids(ds: Dataset, params: RemoveDirectIdsParams, ctx: StepContext) -> MethodResult:
    result = _remove(ds, params._variables(ctx), "remove_direct_ids")
    if not result.change.details["removed"]:
        result.change.notes = ["no direct identifiers are named in roles.direct_ids: nothing was removed"]
    return result


@register("remove_variables", RemoveVariablesParams, _describe_removed)
def _step_remove_variables(ds: Dataset, params: RemoveVariablesParams, ctx: StepContext) -> MethodResult:
    return _remove(ds, params.variables, "remove_variables")


register("new_ids", NewIdsParams, _describe_new_ids, random=True, reorders=True)(calls(new_ids))
