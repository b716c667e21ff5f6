"""Local suppression to k-anonymity on every combination of m keys, within strata.

sdcMicro's ``kAnon(combs=, strataVars=)`` semantics: for each size ``m`` in ``combs`` in turn
(with its own ``k``), every combination of ``m`` keys is made k-anonymous in turn (missing
values as wildcards), so a record is protected against an intruder who knows any ``m`` of
its keys. With ``strata``, frequencies count records of the same stratum only and the
strata themselves are never suppressed.

The work is on the table of distinct (stratum, key) rows with their record counts, never on
the records: each combination runs the key-table suppression engine of
:mod:`safemicro.methods.suppression_optimal` on those rows projected onto its keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from math import comb
from typing import Any

import numpy as np
from pydantic import Field

from safemicro.io.dataset import Dataset
from safemicro.keys import encode_column, wildcard_frequencies
from safemicro.methods.base import Change, MethodResult, StepContext, register
from safemicro.methods.suppression import _check_alpha, _result, _SuppressionParams
from safemicro.methods.suppression_input import (
    _EPS,
    Importance,
    Safe,
    _error,
    _group,
    _importance_names,
    _Input,
    _masked,
    _plain,
    _prepare,
    k_safe,
)
from safemicro.methods.suppression_optimal import _importance_costs, _optimal
from safemicro.risk.combinations import MAX_COMBINATIONS

__all__ = ["suppress_combinations"]


def _sizes(combs: int | Sequence[int], k: int | Sequence[int], p: int, ds: Dataset) -> list[tuple[int, int]]:
    sizes = [combs] if isinstance(combs, (int, np.integer)) else list(combs)
    ks = [k] if isinstance(k, (int, np.integer)) else list(k)
    if len(ks) == 1:
        ks = ks * len(sizes)
    if not sizes or len(ks) != len(sizes):
        raise _error(f"give one k or one per combination size: {len(sizes)} sizes, {len(ks)} values of k", ds)
    for m, kk in zip(sizes, ks):
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= p:
            raise _error(f"combination sizes must lie between 1 and the number of keys ({p}), got {m!r}", ds)
        if isinstance(kk, bool) or not isinstance(kk, (int, np.integer)) or kk < 1:
            raise _error(f"k must be a positive whole number, got {kk!r}", ds)
        if comb(p, m) > MAX_COMBINATIONS:
            raise _error(f"{comb(p, m)} combinations of {m} of {p} keys exceed the limit of {MAX_COMBINATIONS}", ds)
    return [(int(m), int(kk)) for m, kk in zip(sizes, ks)]


def _combination_masks(
    codes: np.ndarray,
    count: np.ndarray,
    stratum: np.ndarray,
    plan: list[tuple[int, int]],
    alpha: float,
    costs: np.ndarray,
) -> tuple[np.ndarray, list[str]]:
    """Suppression masks (bit j = key j) per distinct row, combination after combination."""
    p = codes.shape[1]
    masks = np.zeros(len(codes), dtype=np.int64)
    notes: list[str] = []
    for m, k in plan:
        safe: Safe = k_safe(k)
        for combo in combinations(range(p), m):
            cols = list(combo)
            current = _masked(codes, masks)[:, cols]
            fk, _ = _record_fk_rows(_within(current, stratum), count, alpha)
            for s in np.unique(stratum[fk < k - _EPS]):
                rows = np.flatnonzero(stratum == s)
                if count[rows].sum() < k:
                    continue  # reported below: no suppression makes such a stratum safe
                inp = _Input([str(c) for c in cols], current[rows], count[rows], False, None, 0, count[rows])
                eng, _ = _optimal(inp, alpha, safe, costs[cols])
                sub = eng.record_masks()
                for i, j in enumerate(cols):
                    masks[rows] |= ((sub >> i) & 1) << j
    groups = [np.flatnonzero(stratum == s) for s in np.unique(stratum)]
    for _m, k in plan:
        small = [s for s in groups if count[s].sum() < k]
        if small and len(groups) > 1:
            notes.append(f"{len(small)} strata have fewer than k={k} records and cannot be made {k}-anonymous")
    return masks, notes


def _within(codes: np.ndarray, stratum: np.ndarray) -> np.ndarray:
    """The codes with the stratum as an always-observed column (none with one stratum)."""
    if len(stratum) == 0 or stratum.min() == stratum.max():
        return codes
    return np.column_stack([codes, stratum + 1])


def _record_fk_rows(codes: np.ndarray, count: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """fk per row of a table of distinct rows with multiplicities."""
    ids, rep = _group(codes)
    c = np.bincount(ids, weights=count, minlength=len(rep))
    fk, Fk = wildcard_frequencies(codes[rep], c, c, alpha)
    return fk[ids], Fk[ids]


def suppress_combinations(
    ds: Dataset,
    *,
    keys: Sequence[str],
    combs: int | Sequence[int],
    k: int | Sequence[int] = 3,
    strata: str | None = None,
    importance: Importance = None,
    alpha: float = 1.0,
) -> MethodResult:
    """Suppress key values until every combination of ``combs`` keys is shared by at least
    ``k`` records (sdcMicro ``kAnon(combs=, strataVars=)``), within ``strata`` if given.

    ``combs`` and ``k`` may be lists (one k per size, processed in order).

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> df = pl.DataFrame({"a": [1, 1, 2, 2, 1], "b": [1, 1, 2, 2, 2], "c": [1, 2, 1, 2, 1]})
    >>> res = suppress_combinations(Dataset(df), keys=["a", "b", "c"], combs=2, k=2)
    >>> res.change.details["n_records_violating_after"]
    0
    """
    inp = _prepare(ds, keys, None, None, ())
    alpha = _check_alpha(alpha, ds)
    plan = _sizes(combs, k, len(inp.keys), ds)
    importance = _importance_names(importance, inp.keys, ds)
    costs = _importance_costs(importance, inp.keys)
    if strata is not None:
        if strata not in ds.frame.columns:
            raise _error(f"strata variable {strata!r} is not in the data", ds, column=strata)
        if strata in inp.keys:
            raise _error(f"strata variable {strata!r} is also a key", ds, column=strata)
        s_codes = encode_column(ds.frame.get_column(strata))[0]
    else:
        s_codes = np.zeros(ds.n, dtype=np.int64)
    # the distinct (stratum, key) rows with their record counts: all further work is on them
    row, rep = _group(inp.codes, s_codes)
    count = np.bincount(row, minlength=len(rep)).astype(np.float64)
    masks_rows, notes = _combination_masks(inp.codes[rep], count, s_codes[rep], plan, alpha, costs)
    masks = masks_rows[row]
    after = _masked(inp.codes[rep], masks_rows)
    violating = {}
    for m, kk in plan:
        bad = np.zeros(len(rep), dtype=bool)
        for combo in combinations(range(len(inp.keys)), m):
            sub = _within(after[:, list(combo)], s_codes[rep])
            bad |= _record_fk_rows(sub, count, alpha)[0] < kk - _EPS
        violating[str(m)] = int(count[bad].sum())
    details: dict[str, Any] = {
        "algorithm": "optimal per combination",
        "n_records_violating_after": int(sum(violating.values())),
        "violating_after_by_size": violating,
    }
    params = {
        "keys": inp.keys,
        "combs": [m for m, _ in plan],
        "k": [kk for _, kk in plan],
        "strata": strata,
        "importance": _plain(importance),
        "alpha": alpha,
    }
    return _result(ds, inp, masks, "local_suppression_combs", params, details, notes)


class CombinationSuppressionParams(_SuppressionParams):
    """Suppress key values until every combination of m keys (combs) is shared by at least k records, within roles.strata (sdcMicro kAnon(combs=))."""

    combs: list[int] = Field(..., min_length=1, description="combination sizes, e.g. [3] or [4, 3]")
    k: list[int] | None = Field(None, description="one k, or one per size (default: targets.k)")
    alpha: float | None = Field(None, ge=0.0, le=1.0, description="default: the plan's alpha")
    within_strata: bool = Field(True, description="count records of the same roles.strata only")

    def reads(self, ctx: StepContext) -> list[str]:
        extra = [ctx.roles.strata] if self.within_strata and ctx.roles.strata else []
        return list(dict.fromkeys(self.key_list(ctx) + extra))


def _describe(params: CombinationSuppressionParams, change: Change) -> str:
    sizes = ", ".join(str(m) for m in change.params.get("combs", []))
    ks = ", ".join(str(k) for k in change.params.get("k", []))
    cells = change.details.get("cells_suppressed", 0)
    within = f" within each {change.params['strata']}" if change.params.get("strata") else ""
    goal = f"every combination of {sizes} keys is shared by at least {ks} records{within}"
    if not cells:
        return f"No key values needed suppressing: {goal} already."
    return (
        f"Values of the key variables were suppressed (set to missing) in {cells} cells of "
        f"{change.records_touched} records so that {goal}."
    )


@register("local_suppression_combs", CombinationSuppressionParams, _describe)
def _step(ds: Dataset, params: CombinationSuppressionParams, ctx: StepContext) -> MethodResult:
    return suppress_combinations(
        ds,
        keys=params.key_list(ctx),
        combs=params.combs,
        k=params.k if params.k else ctx.targets.k,
        strata=ctx.roles.strata if params.within_strata else None,
        importance=params.importance,
        alpha=params.alpha if params.alpha is not None else ctx.alpha,
    )
