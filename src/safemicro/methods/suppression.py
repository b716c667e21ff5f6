"""Local suppression: set key values to missing until every record is safe.

A record is safe when its key is shared by at least ``k`` records (k-anonymity) or, for
:func:`suppress_by_risk`, when its individual re-identification risk is at most
``max_risk``. Missing values count as wildcards exactly as in
:func:`safemicro.keys.wildcard_frequencies` (sdcMicro's ``freqCalc``), so a suppressed value
makes its record match every category of that variable.

Two algorithms:

- ``"optimal"`` (the default) works on the key table, never record by record. Records
  sharing a key are treated alike: for each unsafe key it suppresses the cheapest set of
  variables (cells x importance weight) whose wildcard frequency reaches the target,
  counting every record the new key then matches and, among equally cheap choices, the one
  that also makes the most other unsafe records safe. The unsafe key with the lowest fk
  goes next; frequencies are updated incrementally after each move, a restore pass then
  un-suppresses values that turned out not to be needed, and a recomputation from scratch
  confirms the result (suppression goes on should it not). Masks only grow while
  suppressing and a record with every key value suppressed is shared by all ``n >= k``
  records, so the loop ends with every record safe.
- ``"sdcmicro"`` reproduces sdcMicro 5.8.1's ``localSuppression`` (definitions in
  ``SDCMICRO_SEMANTICS.md``): same default importance, the same data reduction, the same
  record order, distance and candidate rule, hence the same cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field

from safemicro.io.dataset import Dataset
from safemicro.methods.base import Change, MethodResult, StepContext, StepParams, register
from safemicro.methods.suppression_input import (
    _EPS,
    Importance,
    Safe,
    _error,
    _importance_names,
    _Input,
    _masked,
    _plain,
    _prepare,
    _record_fk,
    k_safe,
)
from safemicro.methods.suppression_optimal import _importance_costs, _optimal
from safemicro.methods.suppression_sdcmicro import _importance_ranks as _importance_ranks
from safemicro.methods.suppression_sdcmicro import _sdcmicro
from safemicro.methods.suppression_sdcmicro import _sdcmicro_masks as _sdcmicro_masks
from safemicro.risk.individual import individual_risk

__all__ = ["local_suppression", "suppress_by_risk"]


# -- drivers ----------------------------------------------------------------------------


def _apply(ds: Dataset, keys: list[str], masks: np.ndarray) -> Dataset:
    """The dataset with the masked key cells set to null (dtypes and order kept)."""
    exprs = []
    for j, name in enumerate(keys):
        hit = (masks >> j) & 1 == 1
        if hit.any():
            exprs.append(pl.when(pl.lit(pl.Series(hit))).then(None).otherwise(pl.col(name)).alias(name))
    return ds.with_frame(ds.frame.with_columns(exprs) if exprs else ds.frame)


def _check_alpha(alpha: float, ds: Dataset) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise _error(f"alpha must lie between 0 and 1, got {alpha!r}", ds)
    return float(alpha)


def _result(
    ds: Dataset,
    inp: _Input,
    masks: np.ndarray,
    method: str,
    params: dict[str, Any],
    details: dict[str, Any],
    notes: list[str],
) -> MethodResult:
    out = _apply(ds, inp.keys, masks)
    change = Change.measured(ds.frame, out.frame, inp.keys, method=method, params=params, seed=None, notes=notes)
    change.details = {
        "cells_suppressed": int(sum(change.suppressed.values())),
        "suppressed_per_variable": change.suppressed,
        "records_with_suppression": change.records_touched,
        **details,
    }
    return MethodResult(out, change)


def local_suppression(
    ds: Dataset,
    *,
    keys: Sequence[str],
    k: int = 3,
    method: Literal["optimal", "sdcmicro"] = "optimal",
    importance: Importance = None,
    alpha: float = 1.0,
    household: str | None = None,
    household_level: Sequence[str] = (),
    weight: str | None = None,
) -> MethodResult:
    """Suppress key values (set them to missing) until every record's key is shared by at
    least ``k`` records, missing values counting as wildcards (sdcMicro's fk).

    ``method="optimal"`` (default) finds the cheap suppressions on the key table;
    ``"sdcmicro"`` reproduces sdcMicro 5.8.1's ``localSuppression`` cell for cell.
    ``importance``: key names, most important (suppressed last) first, or ``{key: weight}``
    (higher = more costly to suppress). With ``household`` and ``household_level``, a
    household-level key suppressed for one member is suppressed for the whole household.
    ``weight`` only adds the individual risk after suppression to the details.

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> df = pl.DataFrame({"sex": [1, 1, 1, 2, 2, 2, 1], "region": [1, 1, 1, 2, 2, 2, 2]})
    >>> res = local_suppression(Dataset(df), keys=["sex", "region"], k=3)
    >>> res.change.suppressed
    {'sex': 1, 'region': 0}
    """
    inp = _prepare(ds, keys, weight, household, household_level)
    alpha = _check_alpha(alpha, ds)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise _error(f"k must be a positive whole number, got {k!r}", ds)
    k = int(k)
    if method not in ("optimal", "sdcmicro"):
        raise _error(f"method must be 'optimal' or 'sdcmicro', got {method!r}", ds)
    if k > ds.n:
        raise _error(f"k={k} cannot be reached: the data has only {ds.n} records", ds)
    importance = _importance_names(importance, inp.keys, ds)
    safe: Safe = k_safe(k)
    notes: list[str] = []
    if method == "sdcmicro":
        ranks = _importance_ranks(importance, inp.keys, inp.codes)
        fk0, _ = _record_fk(inp.codes, inp.weights, alpha)
        unsafe_before = float((fk0 < k - _EPS).sum())
        masks = _sdcmicro(inp, k, alpha, ranks)
        fk, Fk = _record_fk(_masked(inp.codes, masks), inp.weights, alpha)
        used = {name: int(r) for name, r in zip(inp.keys, ranks)}
        if fk.min() < k - _EPS:  # its fk comes from the reduced data (possible with alpha < 1)
            notes.append(
                f"sdcMicro's algorithm left {int((fk < k - _EPS).sum())} records below k={k} "
                "in the full data; method='optimal' guarantees k"
            )
    else:
        costs = _importance_costs(importance, inp.keys)
        eng, (fk0, Fk0, n0) = _optimal(inp, alpha, safe, costs)
        unsafe_before = n0[~safe(fk0, Fk0)].sum()
        masks = eng.record_masks()
        alive = eng.n > 0
        fk, Fk = eng.fk[alive], eng.Fk[alive]
        used = {name: float(c) for name, c in zip(inp.keys, costs)}
    details: dict[str, Any] = {
        "algorithm": method,
        "fk_min_after": float(fk.min()),
        "n_unsafe_records_before": int(round(unsafe_before)),
        "importance": used,
    }
    if inp.weighted:
        details["max_individual_risk_after"] = float(individual_risk(fk, Fk, weighted=True).max())
    if inp.household_bits:
        notes.append("household-level keys are suppressed for every member of a household")
    params = {
        "keys": inp.keys,
        "k": k,
        "method": method,
        "importance": _plain(importance),
        "alpha": alpha,
        "household": household,
        "household_level": [v for v in household_level if v in inp.keys],
        "weight": weight,
    }
    return _result(ds, inp, masks, "local_suppression", params, details, notes)


def suppress_by_risk(
    ds: Dataset,
    *,
    keys: Sequence[str],
    max_risk: float,
    weight: str | None = None,
    alpha: float = 1.0,
    importance: Importance = None,
    household: str | None = None,
    household_level: Sequence[str] = (),
) -> MethodResult:
    """Suppress key values until no record's individual re-identification risk exceeds
    ``max_risk`` (Benedetti-Franconi with ``weight``, 1/fk without), on the key table.

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> df = pl.DataFrame({"sex": [1, 1, 1, 2, 2, 2, 1], "region": [1, 1, 1, 2, 2, 2, 2]})
    >>> suppress_by_risk(Dataset(df), keys=["sex", "region"], max_risk=0.34).change.suppressed
    {'sex': 1, 'region': 0}
    """
    inp = _prepare(ds, keys, weight, household, household_level)
    alpha = _check_alpha(alpha, ds)
    if isinstance(max_risk, bool) or not isinstance(max_risk, (int, float)) or not 0.0 < max_risk <= 1.0:
        raise _error(f"max_risk must lie in (0, 1], got {max_risk!r}", ds)
    max_risk = float(max_risk)
    weighted = inp.weighted

    def safe(fk: np.ndarray, Fk: np.ndarray) -> np.ndarray:
        return individual_risk(fk, Fk, weighted=weighted) <= max_risk + 1e-12

    if not safe(np.array([float(ds.n)]), np.array([float(inp.weights.sum())]))[0]:
        raise _error(
            f"max_risk={max_risk:g} cannot be reached: even a record with every key value suppressed would be above it",
            ds,
        )
    importance = _importance_names(importance, inp.keys, ds)
    costs = _importance_costs(importance, inp.keys)
    eng, (fk0, Fk0, n0) = _optimal(inp, alpha, safe, costs)
    risk_before = individual_risk(fk0, Fk0, weighted=weighted)
    unsafe_before = n0[~safe(fk0, Fk0)].sum()
    alive = eng.n > 0
    risk_after = individual_risk(eng.fk[alive], eng.Fk[alive], weighted=weighted)
    details = {
        "algorithm": "optimal",
        "max_risk": max_risk,
        "max_risk_before": float(risk_before.max()),
        "max_risk_after": float(risk_after.max()),
        "n_unsafe_records_before": int(round(unsafe_before)),
        "fk_min_after": float(eng.fk[alive].min()),
        "importance": {name: float(c) for name, c in zip(inp.keys, costs)},
    }
    notes = ["household-level keys are suppressed for every member of a household"] if inp.household_bits else []
    params = {
        "keys": inp.keys,
        "max_risk": max_risk,
        "weight": weight,
        "alpha": alpha,
        "importance": _plain(importance),
        "household": household,
        "household_level": [v for v in household_level if v in inp.keys],
    }
    return _result(ds, inp, eng.record_masks(), "suppress_by_risk", params, details, notes)


# -- plan steps -------------------------------------------------------------------------


class _SuppressionParams(StepParams):
    keys: list[str] | None = Field(None, description="key variables (default: roles.keys)")
    importance: list[str] | dict[str, float] | None = Field(
        None, description="keys most important (suppressed last) first, or {key: cost weight}"
    )
    household_mode: bool = Field(True, description="suppress roles.household_level keys per household")

    def key_list(self, ctx: StepContext) -> list[str]:
        return list(self.keys) if self.keys is not None else list(ctx.roles.keys)

    def household(self, ctx: StepContext) -> tuple[str | None, list[str]]:
        if not self.household_mode or ctx.roles.household is None:
            return None, []
        keys = self.key_list(ctx)
        return ctx.roles.household, [v for v in ctx.roles.household_level if v in keys]

    def reads(self, ctx: StepContext) -> list[str]:
        household, _ = self.household(ctx)
        extra = [v for v in (household, ctx.roles.weight) if v is not None]
        return list(dict.fromkeys(self.key_list(ctx) + extra))

    def check(self, ctx: StepContext) -> None:
        keys = self.key_list(ctx)
        if not keys:
            raise ValueError("no key variables: give keys or set roles.keys")
        if self.importance is not None:
            for name in self.importance:
                if name not in keys:
                    raise ValueError(f"importance names {name!r}, which is not one of the keys")


class LocalSuppressionParams(_SuppressionParams):
    """Suppress key values until every key combination has at least k records (NA wildcards); keys, k and alpha default to the plan's roles and targets."""

    k: int | None = Field(None, ge=1, description="default: targets.k")
    method: Literal["optimal", "sdcmicro"] = "optimal"
    alpha: float | None = Field(None, ge=0.0, le=1.0, description="default: the plan's alpha")


class RiskSuppressionParams(_SuppressionParams):
    """Suppress key values until no record's individual risk exceeds max_risk (default: targets.max_individual_risk)."""

    max_risk: float | None = Field(None, gt=0.0, le=1.0, description="default: targets.max_individual_risk")

    def check(self, ctx: StepContext) -> None:
        super().check(ctx)
        if self.max_risk is None and ctx.targets.max_individual_risk is None:
            raise ValueError("give max_risk or set targets.max_individual_risk")


def _breakdown(change: Change) -> str:
    parts = [f"{name} {count}" for name, count in change.suppressed.items() if count]
    return "; ".join(parts)


def _sentence(change: Change, already: str, goal: str) -> str:
    """The release report's sentence: nothing was needed because ``already``, or so many
    cells were suppressed so that ``goal``."""
    cells = change.details.get("cells_suppressed", sum(change.suppressed.values()))
    if not cells:
        return f"No key values needed suppressing: {already}."
    return (
        f"Values of the key variables were suppressed (set to missing) in {cells} cells of "
        f"{change.records_touched} records ({_breakdown(change)}) so that {goal}; "
        "treat these as missing at random only with care."
    )


def _describe_local(params: LocalSuppressionParams, change: Change) -> str:
    keys = ", ".join(change.params.get("keys", []))
    k = change.params.get("k")
    return _sentence(
        change,
        f"every combination of {keys} was already shared by at least {k} records",
        f"every combination of {keys} is shared by at least {k} records",
    )


def _describe_risk(params: RiskSuppressionParams, change: Change) -> str:
    keys = ", ".join(change.params.get("keys", []))
    limit = f"{100 * change.params.get('max_risk', 0):g}%"
    return _sentence(
        change,
        f"no record's re-identification risk on {keys} exceeded {limit}",
        f"no record's estimated re-identification risk on {keys} exceeds {limit}",
    )


@register("local_suppression", LocalSuppressionParams, _describe_local)
def _local_suppression_step(ds: Dataset, params: LocalSuppressionParams, ctx: StepContext) -> MethodResult:
    household, level = params.household(ctx)
    return local_suppression(
        ds,
        keys=params.key_list(ctx),
        k=params.k if params.k is not None else ctx.targets.k,
        method=params.method,
        importance=params.importance,
        alpha=params.alpha if params.alpha is not None else ctx.alpha,
        household=household,
        household_level=level,
        weight=ctx.roles.weight,
    )


@register("risk_suppression", RiskSuppressionParams, _describe_risk)
def _risk_suppression_step(ds: Dataset, params: RiskSuppressionParams, ctx: StepContext) -> MethodResult:
    household, level = params.household(ctx)
    max_risk = params.max_risk if params.max_risk is not None else ctx.targets.max_individual_risk
    return suppress_by_risk(
        ds,
        keys=params.key_list(ctx),
        max_risk=max_risk,
        weight=ctx.roles.weight,
        alpha=ctx.alpha,
        importance=params.importance,
        household=household,
        household_level=level,
    )
