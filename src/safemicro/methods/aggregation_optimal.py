"""Optimal univariate microaggregation (Hansen & Mukherjee 2003), one variable at a time.

For one variable the k-partition of least within-group sum of squares (SSE) is known to
consist of groups of consecutive values in sorted order, each of k to 2k − 1 records.
Finding it is a shortest path over the sorted values: cost(i) = min over s in [k, 2k − 1]
of cost(i − s) + SSE(values i − s … i − 1), with SSE from prefix sums, O(n·k) after the
sort. Each value is then replaced by its group's mean. Unlike MDAV on one variable, the
loss is the smallest any k-anonymous grouping can reach. Missing values stay missing.
With ``weights`` (a sampling-weight column) the groups stay the same and each value becomes
its group's weighted mean, so weighted totals and means are kept exactly.
Reference: Hansen, S. L. & Mukherjee, S. (2003), "A polynomial algorithm for optimal
univariate microaggregation", IEEE TKDE 15(4).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field, model_serializer

from safemicro.io.dataset import Dataset
from safemicro.methods.aggregation_robust import sampling_weights
from safemicro.methods.base import Change, MethodResult, StepContext, calls, numeric_matrix, register
from safemicro.methods.numeric_step import NumericVariablesParams

__all__ = ["optimal_groups", "microaggregation_optimal"]

_STEP = "microaggregation_optimal"


def _dp(v: np.ndarray, k: int) -> np.ndarray:
    """Group label of each sorted value in the least-SSE partition (numba-compiled)."""
    n = v.shape[0]
    s1 = np.zeros(n + 1)
    s2 = np.zeros(n + 1)
    for i in range(n):
        s1[i + 1] = s1[i] + v[i]
        s2[i + 1] = s2[i] + v[i] * v[i]
    cost = np.full(n + 1, np.inf)
    cost[0] = 0.0
    back = np.zeros(n + 1, dtype=np.int64)
    for i in range(k, n + 1):
        for s in range(k, min(2 * k - 1, i) + 1):
            a = i - s
            if cost[a] == np.inf:
                continue
            d = s1[i] - s1[a]
            sse = s2[i] - s2[a] - d * d / s
            if cost[a] + sse < cost[i]:
                cost[i] = cost[a] + sse
                back[i] = a
    labels = np.empty(n, dtype=np.int64)
    g, i = 0, n
    while i > 0:
        labels[back[i] : i] = g
        g += 1
        i = back[i]
    return g - 1 - labels


@functools.cache
def _compiled():
    import numba

    return numba.njit(cache=True)(_dp)


def optimal_groups(values: np.ndarray, k: int) -> np.ndarray:
    """Group label (0, 1, …) of each value in the least-SSE partition into groups of ≥ k.

    Fewer than 2k values form one group.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2 * k:
        return np.zeros(n, dtype=np.int64)
    order = np.argsort(x, kind="stable")
    v = x[order]
    labels = np.empty(n, dtype=np.int64)
    labels[order] = _compiled()(v - v.mean(), int(k))
    return labels


def microaggregation_optimal(
    ds: Dataset, *, variables: list[str], k: int = 3, weights: str | None = None
) -> MethodResult:
    """Replace each of ``variables`` by its optimal univariate k-group means (each variable
    alone); weighted means with ``weights``."""
    x = numeric_matrix(ds, variables, _STEP)
    w = np.ones(ds.n)
    if weights is not None:
        w = sampling_weights(ds, weights, excluded=variables, used=~np.isnan(x).all(axis=1), step=_STEP)
    cols, sse, n_groups = [], {}, {}
    for j, name in enumerate(variables):
        ok = ~np.isnan(x[:, j])
        v = x[ok, j]
        labels = optimal_groups(v, k)
        means = np.bincount(labels, weights=w[ok] * v) / np.bincount(labels, weights=w[ok]) if len(v) else np.zeros(0)
        new = x[:, j].copy()
        new[ok] = means[labels]
        sse[name] = float(((v - means[labels]) ** 2).sum())
        n_groups[name] = int(labels.max() + 1) if len(v) else 0
        col = ds.frame.get_column(name)
        cols.append(
            pl.select(pl.when(pl.Series(ok)).then(pl.Series(new)).otherwise(col.cast(pl.Float64)))
            .to_series()
            .alias(name)
        )
    out = ds.with_frame(ds.frame.with_columns(cols))
    for name in variables:
        out.codebook.meta(name).value_labels = {}
    change = Change.measured(
        ds.frame,
        out.frame,
        variables,
        method=_STEP,
        params={"variables": variables, "k": k, **({"weights": weights} if weights else {})},
        details={"n_groups": n_groups, "sse": sse},
        notes=[f"{', '.join(variables)}: stored as Float64 (group means)"],
    )
    return MethodResult(out, change)


class OptimalMicroaggregationParams(NumericVariablesParams):
    """Replace each numeric variable by the means of its least-loss groups of k to 2k-1 records (Hansen-Mukherjee optimal univariate microaggregation); variables default to the numeric keys."""

    k: int = Field(3, ge=2)
    weights: str | None = None  # a sampling-weight column: weighted group means

    def reads(self, ctx: StepContext) -> list[str]:
        return [*super().reads(ctx), *([self.weights] if self.weights else [])]

    def resolve(self, ctx: StepContext) -> dict[str, Any]:
        return {"variables": super().reads(ctx)}

    @model_serializer(mode="wrap")
    def _used_only(self, handler: Any) -> dict[str, Any]:
        """The lock plan carries weights only when given."""
        return {k: v for k, v in handler(self).items() if not (k == "weights" and v is None)}


def _describe(params: OptimalMicroaggregationParams, change: Change) -> str:
    return (
        f"{', '.join(change.params['variables'])} were microaggregated one at a time: each value was replaced by "
        f"the {'weighted ' if change.params.get('weights') else ''}mean of a group of {change.params['k']} to "
        f"{2 * change.params['k'] - 1} records with neighbouring values, the grouping that changes the values "
        "least (optimal univariate microaggregation). "
        + ("Weighted means and totals" if change.params.get("weights") else "Means")
        + " are kept; each variable's joint relation with the others changes somewhat."
    )


register(_STEP, OptimalMicroaggregationParams, _describe, perturbative=True)(calls(microaggregation_optimal))
