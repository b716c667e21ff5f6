"""Microaggregation: replace continuous values by the means of groups of at least k records.

``method="mdav"`` is sdcMicro's MDAV exactly (``SDCMICRO_SEMANTICS.md``): variables scaled
by their population variance, squared distances rounded to float32; while at least 2k
records remain, r = the record farthest from the centroid of the remaining ones (the first
in row order on ties) and its group = r plus its k−1 nearest remaining records (on ties the
higher row first); s = the record farthest from r, looked for before r's group leaves, gets
its group the same way (only r's group once fewer than 3k remain); the last < 2k records
form one group. Each value becomes its group's unweighted mean, summed in the order the
group was formed, so the output equals sdcMicro's to the last bit on testdata.

sdcMicro compares every remaining record at each step (O(n²)). Here the records sit in a
k-d tree whose boxes, counts, sums and lowest/highest row numbers are kept up to date as
records leave; nearest and farthest searches prune with bounds that are exact upper/lower
limits of the float32 distance (ties included), so the result is the same, only sooner.
The farthest-from-centroid search also bounds each subtree by its distance to a recent
centroid, refreshed when searches get long.

``method="rmd"`` is MDAV in the robust Mahalanobis metric around the MCD centre
(sdcMicro's recommended method; definition in :mod:`safemicro.methods.aggregation_robust`).
``weights`` makes each value its group's weighted mean (groups are formed as without).

``method="fast"`` cuts the records into blocks of at most ``FAST_BLOCK`` by repeated
splits across the principal axis and runs exact MDAV within each block: groups stay at
least k, at a small cost in information loss.

Missing values: groups are formed from the records complete on all variables. A record
missing some (not all) variables joins the group whose centroid is nearest on the
variables it has, and its observed values become that group's means (each mean taken
over the members observed on that variable); its missing cells stay as they are. Records
missing every variable are left alone. With ``strata`` all of this happens within each
stratum, with the stratum's own scaling.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, model_serializer

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods import base
from safemicro.methods.aggregation_kernels import _jit
from safemicro.methods.aggregation_robust import rmd_groups, sampling_weights, weighted_group_means
from safemicro.methods.base import Change, MethodResult, StepContext, StepParams, register

__all__ = ["microaggregation"]

LEAF_SIZE = 16  # records per k-d tree leaf
FAST_BLOCK = 2048  # largest block method="fast" runs exact MDAV on
_STEP = "microaggregation"


def microaggregation(
    ds: Dataset,
    *,
    variables: str | Sequence[str],
    k: int = 3,
    method: Literal["mdav", "fast", "rmd"] = "mdav",
    strata: str | Sequence[str] | None = None,
    household: str | None = None,
    weights: str | None = None,
    seed: int | None = None,
) -> MethodResult:
    """Replace ``variables`` by the means of MDAV groups of at least ``k`` similar records.

    ``method``: ``"mdav"`` (sdcMicro's MDAV, exact), ``"fast"`` (MDAV within blocks of
    similar records, for very large files) or ``"rmd"`` (MDAV with robust Mahalanobis
    distances around the MCD centre; ``seed`` fixes the MCD's random subsets, default 0).
    ``weights``: a sampling-weight column; each value becomes its group's weighted mean, so
    weighted totals and means are kept exactly. ``strata``: form groups within each stratum.
    Groups are formed from the records observed on every variable; a record missing some
    of them joins the group nearest on the others and takes its means there, its missing
    cells untouched. With ``household`` (household-level variables) the groups are formed
    of households, one record each, and members get their household's means. The variables
    become Float64 columns.

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> ds = Dataset(pl.DataFrame({"x": [1.0, 2.0, 3.0, 10.0, 11.0, 12.0]}))
    >>> microaggregation(ds, variables="x", k=3).dataset.frame["x"].to_list()
    [2.0, 2.0, 2.0, 11.0, 11.0, 11.0]
    """
    variables = base.column_names(variables, "variables", _STEP)
    strata = base.column_names(strata, "strata", _STEP) if strata is not None else []
    if not variables:
        raise SafemicroError("microaggregation needs at least one variable", step=_STEP)
    for name in [*variables, *strata]:
        if name not in ds.columns:
            raise SafemicroError("no such column", column=name, step=_STEP)
        if name in variables and name in strata:
            raise SafemicroError("a variable cannot also be a stratum", column=name, step=_STEP)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise SafemicroError(f"k must be an integer of at least 2, got {k!r}", step=_STEP)
    if method not in ("mdav", "fast", "rmd"):
        raise SafemicroError(f"method must be 'mdav', 'fast' or 'rmd', got {method!r}", step=_STEP)
    k = int(k)
    seed = (0 if seed is None else int(seed)) if method == "rmd" else None
    if household is not None:
        run = functools.partial(
            microaggregation, variables=variables, k=k, method=method, strata=strata or None, weights=weights, seed=seed
        )
        return base.per_household(ds, variables, household, run, _STEP)

    x = base.numeric_matrix(ds, variables, _STEP)
    observed = ~np.isnan(x)
    w = None
    if weights is not None:
        w = sampling_weights(
            ds,
            weights,
            excluded=[*variables, *strata],
            used=observed.any(axis=1),
            step=_STEP,
            what="a variable or a stratum",
        )
    complete = observed.all(axis=1)
    partial = observed.any(axis=1) & ~complete
    stratum, n_strata, _ = base.stratum_ids(ds.frame, strata)

    by_stratum = np.argsort(stratum, kind="stable")  # row order kept within each stratum
    bounds = np.searchsorted(stratum[by_stratum], np.arange(n_strata + 1))
    members, sizes, fits = [], [], set()  # groups as runs of row numbers, in formation order
    for s in range(n_strata):
        rows = by_stratum[bounds[s] : bounds[s + 1]]
        full, part = rows[complete[rows]], rows[partial[rows]]
        if len(full) == 0 and len(part) == 0:
            continue
        if len(full) < k:
            where = f" in stratum {_stratum_label(ds.frame, strata, rows[0])}" if strata else ""
            raise SafemicroError(
                f"only {len(full)} records{where} have values on all of {variables}; "
                f"groups of at least k={k} cannot be formed (merge strata or lower k)",
                step=_STEP,
            )
        order, group_sizes, fit = _group(x[full], k, method, seed)
        fits.add(fit)
        stratum_members, group_sizes = _attach(x, full[order], group_sizes, part)
        members.append(stratum_members)
        sizes.append(group_sizes)
    members = np.concatenate(members).astype(np.int64) if members else np.zeros(0, np.int64)
    sizes = np.concatenate(sizes).astype(np.int64) if sizes else np.zeros(0, np.int64)
    if w is None:
        aggregated = _jit()["_group_means"](x, members, np.concatenate([[0], np.cumsum(sizes)]))
    else:
        aggregated = weighted_group_means(x, w, members, sizes)
    info = {"k": k, "method": method, "weights": weights, "seed": seed, "fits": sorted(f for f in fits if f)}
    return _result(ds, variables, strata, info, aggregated, observed, sizes, complete, partial, n_strata)


# -- inputs -------------------------------------------------------------------------------


def _stratum_label(frame: pl.DataFrame, strata: list[str], row: int) -> str:
    return ", ".join(f"{name}={frame[name][int(row)]!r}" for name in strata)


def _weights(x: np.ndarray) -> np.ndarray:
    """1 / population variance per column; 0 for a constant column (it cannot separate)."""
    var = x.var(axis=0)
    return np.where(var > 0, 1.0 / np.where(var > 0, var, 1.0), 0.0)


# -- grouping -----------------------------------------------------------------------------


def _group(x: np.ndarray, k: int, method: str, seed: int | None) -> tuple[np.ndarray, np.ndarray, str | None]:
    """MDAV (or rmd) on complete rows ``x``: positions in group-formation order, group
    sizes, and for rmd the robust fit used."""
    if method == "rmd":
        return rmd_groups(x, k, int(seed or 0), LEAF_SIZE)
    w = _weights(x)
    kernels = _jit()
    if method == "mdav" or len(x) <= FAST_BLOCK:
        return (*kernels["_mdav"](x, w, k, LEAF_SIZE), None)
    orders, sizes = [], []
    for block in _blocks(x, w, k, FAST_BLOCK):
        o, s = kernels["_mdav"](np.ascontiguousarray(x[block]), w, k, LEAF_SIZE)
        orders.append(block[o])
        sizes.append(s)
    return np.concatenate(orders), np.concatenate(sizes), None


def _blocks(x: np.ndarray, w: np.ndarray, k: int, size: int) -> list[np.ndarray]:
    """Row blocks of at most ``size`` (and at least k) records, cut across principal axes.

    Each cut splits a block at the median of its projection on its first principal
    component (in the scaled space), rounded to a multiple of k. Rows stay in row order
    within each block, so MDAV's tie rules keep their meaning.
    """
    z = x * np.sqrt(w)
    done, todo = [], [np.arange(len(x))]
    while todo:
        rows = todo.pop()
        if len(rows) <= size or len(rows) < 2 * k:
            done.append(np.sort(rows))
            continue
        zr = z[rows]
        _, vecs = np.linalg.eigh(np.cov(zr, rowvar=False).reshape(z.shape[1], -1))
        proj = zr @ vecs[:, -1]
        cut = (len(rows) // 2) // k * k  # >= k, and the rest is >= k too
        part = np.argpartition(proj, cut - 1)
        todo += [rows[part[:cut]], rows[part[cut:]]]
    done.sort(key=lambda b: b[0])
    return done


def _attach(x: np.ndarray, ordered: np.ndarray, sizes: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group members (rows, group by group) and group sizes once the partly missing rows
    ``part`` have joined the group with the nearest centroid on their observed variables.

    Within a group the complete rows keep their formation order; joiners follow."""
    if len(part) == 0:
        return ordered, sizes
    from scipy.spatial import cKDTree  # imported here: scipy is heavy to load

    scale = np.sqrt(_weights(x[ordered]))
    label = np.repeat(np.arange(len(sizes)), sizes)
    centroids = np.column_stack(
        [np.bincount(label, x[ordered, j], minlength=len(sizes)) / sizes for j in range(x.shape[1])]
    )
    z_part = x[part] * scale
    patterns, which = np.unique(~np.isnan(z_part), axis=0, return_inverse=True)
    which = which.ravel()
    joins = np.empty(len(part), dtype=np.int64)
    for i, pattern in enumerate(patterns):  # one search per pattern of missing variables
        rows = np.flatnonzero(which == i)
        tree = cKDTree(centroids[:, pattern] * scale[pattern])
        joins[rows] = tree.query(z_part[np.ix_(rows, pattern)], k=1)[1]
    labels = np.concatenate([label, joins])
    members = np.concatenate([ordered, part])[np.argsort(labels, kind="stable")]
    return members, np.bincount(labels, minlength=len(sizes))


# -- result -------------------------------------------------------------------------------


def _result(
    ds: Dataset,
    variables: list[str],
    strata: list[str],
    run: dict[str, Any],
    aggregated: np.ndarray,
    observed: np.ndarray,
    sizes: np.ndarray,
    complete: np.ndarray,
    partial: np.ndarray,
    n_strata: int,
) -> MethodResult:
    columns, notes, retyped = [], [], []
    for j, name in enumerate(variables):
        original = ds.frame[name]
        new = pl.Series(name, aggregated[:, j])
        column = (
            pl.select(pl.when(pl.Series(observed[:, j])).then(new).otherwise(original.cast(pl.Float64)))
            .to_series()
            .alias(name)
        )
        if original.dtype != pl.Float64:
            retyped.append(name)
        columns.append(column)
    frame = ds.frame.with_columns(columns)
    out = ds.with_frame(frame)
    for name in variables:
        meta = out.codebook.meta(name)
        codes = set(ds.special_codes(name) or [])  # kept as they were: their labels stay true
        kept = {v: label for v, label in meta.value_labels.items() if _is_missing_code(meta, v) or v in codes}
        if len(kept) != len(meta.value_labels):
            notes.append(f"{name}: value labels dropped (values are now group means)")
        if name in retyped:  # missing codes must match the Float64 column
            kept = {float(v): label for v, label in kept.items()}
            meta.missing_values = [float(v) for v in meta.missing_values]
            meta.missing_ranges = [(float(lo), float(hi)) for lo, hi in meta.missing_ranges]
        meta.value_labels = kept
    if retyped:
        notes.append(f"{', '.join(retyped)}: stored as Float64 (group means are not whole numbers)")
    dist = np.unique(sizes, return_counts=True)
    if "median/mad" in run["fits"]:
        notes.append("rmd: the MCD could not be fitted (too few records or a singular scatter); median and MAD used")
    params = {"variables": variables, "k": run["k"], "method": run["method"], "strata": strata or None}
    change = Change.measured(
        ds.frame,
        frame,
        variables,
        method=_STEP,
        params={**params, "household": None, "weights": run["weights"]},
        seed=run["seed"],
        details={
            **({"robust_fit": run["fits"]} if run["method"] == "rmd" else {}),
            "n_groups": int(len(sizes)),
            "group_sizes": {str(int(s)): int(c) for s, c in zip(*dist)},
            "complete_records": int(complete.sum()),
            "partly_missing_records": int(partial.sum()),
            "untouched_records": int(ds.n - complete.sum() - partial.sum()),
            "strata": n_strata if strata else None,
        },
        notes=notes,
    )
    return MethodResult(out, change)


def _is_missing_code(meta: Any, value: Any) -> bool:
    try:
        return value in meta.missing_values or any(lo <= value <= hi for lo, hi in meta.missing_ranges)
    except TypeError:
        return False


# -- plan step ------------------------------------------------------------------------------


class MicroaggregationParams(StepParams):
    """Replace numeric values by group means of at least k similar records (MDAV; rmd: robust Mahalanobis distances; weights: weighted means); variables default to the numeric keys."""

    variables: list[str] | None = None  # default: roles.numeric_keys
    k: int = Field(3, ge=2)
    method: Literal["mdav", "fast", "rmd"] = "mdav"
    strata: list[str] | str | None = None
    household: str | None = None  # default: roles.household when every variable is household-level
    weights: str | None = None  # a sampling-weight column: weighted group means
    seed: int | None = None  # rmd: the MCD's random subsets (default: the plan's seed for the step)

    @model_serializer(mode="wrap")
    def _used_only(self, handler: Any) -> dict[str, Any]:
        """The lock plan and reports carry weights and seed only when they are used."""
        data = handler(self)
        return {
            k: v for k, v in data.items() if not (k == "weights" and v is None or k == "seed" and self.method != "rmd")
        }

    def _variables(self, ctx: StepContext) -> list[str]:
        return list(self.variables or ctx.roles.numeric_keys)

    def _strata(self) -> list[str]:
        return [self.strata] if isinstance(self.strata, str) else list(self.strata or [])

    def _household(self, ctx: StepContext) -> str | None:
        return base.household_for(self._variables(ctx), self.household, ctx)

    def resolve(self, ctx: StepContext) -> dict[str, Any]:
        return {"variables": self._variables(ctx), "strata": self._strata() or None, "household": self._household(ctx)}

    def reads(self, ctx: StepContext) -> list[str]:
        hh = self._household(ctx)
        return [
            *self._variables(ctx),
            *self._strata(),
            *([hh] if hh else []),
            *([self.weights] if self.weights else []),
        ]

    def check(self, ctx: StepContext) -> None:
        if not self._variables(ctx):
            raise ValueError(
                "microaggregation needs variables (or roles.numeric_keys): the continuous variables to aggregate"
            )
        self._household(ctx)


def _describe(params: MicroaggregationParams, change: Change) -> str:
    p = change.params
    where = f" within each {', '.join(p['strata'])}" if p.get("strata") else ""
    unit = "households" if p.get("household") else "records"
    similar = (
        "similar values (similarity measured robustly, so that outliers are grouped with their nearest "
        "neighbours without distorting the others)"
        if p.get("method") == "rmd"
        else "similar values"
    )
    if p.get("weights"):
        kept = (
            f"weighted average (by {p['weights']}) of a group of at least {p['k']} {unit} with {similar}{where}. "
            "Weighted means and totals are kept exactly; unweighted estimates, "
        )
    else:
        kept = f"average of a group of at least {p['k']} {unit} with {similar}{where}. Unweighted means are kept; weighted estimates, "
    return (
        f"{', '.join(p['variables'])} were microaggregated: each value was replaced by the {kept}"
        "variances, extremes and correlations with other variables change somewhat."
    )


register(_STEP, MicroaggregationParams, _describe, perturbative=True)(base.calls(microaggregation))
