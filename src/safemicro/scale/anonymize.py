"""``anonymize`` at data scale: recodes and local suppression decided on the key table.

A plan whose steps are key recodes (``recode`` with a ``map``, a ``hierarchy`` or fixed
``breaks``: a function of the value alone) and ``local_suppression`` is run on the key
table an engine builds (one group-by over the file): the recodes are applied to the
distinct key values, local suppression (the optimal algorithm, records counted through
the key counts) decides per distinct key which values to suppress, and the released
Parquet is written row group by row group (:mod:`safemicro.engine.writer`). The
decisions equal those of the in-memory ``local_suppression`` on the same data
(tests/test_scale_anonymize.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from safemicro.assess import DEFAULT_KS
from safemicro.engine import Engine, Source, check_columns, get_engine, key_table_from_counts
from safemicro.engine.writer import open_parquet, write_released
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.keys import encode_column
from safemicro.methods.suppression_input import _Input, _masked, k_safe
from safemicro.methods.suppression_optimal import _importance_costs, _optimal
from safemicro.pipeline import prepare_steps
from safemicro.plan import Plan
from safemicro.progress import progress
from safemicro.scale.assess import _summary


@dataclass
class ScaleRelease:
    """What :func:`anonymize_source` did: per step the cells changed, the risk before and
    after (key-table summaries), the number of records written."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    n_records: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def anonymize_source(
    source: Source,
    plan: Plan,
    out: str | Path,
    *,
    engine: str | Engine = "duckdb",
    show_progress: bool | None = None,
) -> ScaleRelease:
    """Apply ``plan`` (key recodes + local suppression) to ``source`` and write the
    released Parquet ``out``: row group by row group from a Parquet file (duckdb, polars
    engines), or as a Parquet dataset written by Spark (spark engine, any Spark source)."""
    eng = get_engine(engine) if isinstance(engine, str) else engine
    roles = plan.roles
    keys = list(roles.keys)
    if not keys:
        raise SafemicroError("the plan has no key variables", file=plan.source)
    check_columns(eng, source, [c for c in (*keys, roles.weight, roles.household) if c])
    steps = prepare_steps(plan, eng.columns(source), seed=0)
    result = ScaleRelease()
    t0 = time.perf_counter()
    kc = eng.key_counts(source, keys, roles.weight)
    result.timings["key_table"] = time.perf_counter() - t0
    weighted = roles.weight is not None
    result.before = _risk(kc.values, kc.count, kc.weight_sum, keys, plan, weighted)
    values = kc.values
    t0 = time.perf_counter()
    for prepared in steps:
        name = prepared.spec.name
        if name == "recode" and prepared.params.variable not in keys:
            raise SafemicroError(
                f"step {prepared.label}: at scale only key variables are recoded "
                f"({prepared.params.variable!r} is not a key)",
                file=plan.source,
                column=prepared.params.variable,
            )
        if name == "recode":
            values, changed = _recode(values, kc.count, prepared)
        elif name == "local_suppression":
            values, changed = _suppress(values, kc.count, kc.weight_sum, keys, prepared, plan)
        else:
            raise SafemicroError(
                f"step {prepared.label}: the out-of-core engines run recode and local_suppression steps only",
                file=plan.source,
            )
        result.steps.append({"index": prepared.ctx.index, "name": name, "changed": changed})
    result.timings["steps"] = time.perf_counter() - t0
    result.after = _risk(values, kc.count, kc.weight_sum, keys, plan, weighted)
    decisions = pl.concat([kc.values, values.select([pl.col(k).alias(f"__new_{k}") for k in keys])], how="horizontal")
    t0 = time.perf_counter()
    if hasattr(eng, "write_released"):  # the engine writes where the data lives (Spark)
        result.n_records = eng.write_released(source, out, keys, decisions)
    else:
        groups = open_parquet(source).num_row_groups
        with progress(groups, "writing the released Parquet", enabled=show_progress) as advance:
            result.n_records = write_released(
                source, out, keys, decisions, on_row_group=lambda done, total: advance(f"row group {done}/{total}")
            )
    result.timings["write"] = time.perf_counter() - t0
    return result


def _risk(values, count, weight_sum, keys, plan: Plan, weighted: bool) -> dict[str, Any]:
    from safemicro.engine import KeyCounts

    kt = key_table_from_counts(KeyCounts(values, count, weight_sum), keys, alpha=plan.alpha, weighted=weighted)
    targets = plan.targets.model_dump()
    ks = sorted({*DEFAULT_KS, *([int(targets["k"])] if targets.get("k") else [])})
    return _summary(kt, plan.roles, plan.alpha, ks, 0.01, targets, None)


def _recode(values: pl.DataFrame, count: np.ndarray, prepared) -> tuple[pl.DataFrame, dict[str, int]]:
    """A recode applied to the distinct key values (a function of the value alone)."""
    params = prepared.params
    if isinstance(params.breaks, int) or params.method == "quantile":
        raise SafemicroError(
            f"step {prepared.label}: at scale give the breaks themselves (a number of bands depends on the data)"
        )
    res = prepared.spec.run(Dataset(values), params, prepared.ctx)
    new = res.dataset.frame
    var = params.variable
    differs = ~(new[var].cast(pl.String).eq_missing(values[var].cast(pl.String))).to_numpy()
    return new, {var: int(count[differs].sum())}


def _suppress(values, count, weight_sum, keys, prepared, plan: Plan) -> tuple[pl.DataFrame, dict[str, int]]:
    """Optimal local suppression on the distinct keys, records counted through ``count``."""
    params = prepared.params
    ctx = prepared.ctx
    if params.method != "optimal":
        raise SafemicroError(f"step {prepared.label}: at scale local suppression uses method 'optimal'")
    household, level = params.household(ctx)
    if level:
        raise SafemicroError(f"step {prepared.label}: household-level suppression needs the in-memory engine")
    skeys = params.key_list(ctx)
    k = params.k if params.k is not None else ctx.targets.k
    alpha = params.alpha if params.alpha is not None else ctx.alpha
    codes = np.column_stack([encode_column(values.get_column(n))[0] for n in skeys]).astype(np.int64)
    inp = _Input(skeys, codes, weight_sum, plan.roles.weight is not None, None, 0, counts=count)
    safe = k_safe(k)
    eng, _ = _optimal(inp, alpha, safe, _importance_costs(params.importance, skeys))
    masks = eng.record_masks()
    hit = _masked(codes, masks) != codes
    exprs = [pl.when(pl.Series(hit[:, j])).then(None).otherwise(pl.col(n)).alias(n) for j, n in enumerate(skeys)]
    return values.with_columns(exprs), {n: int(count[hit[:, j]].sum()) for j, n in enumerate(skeys)}
