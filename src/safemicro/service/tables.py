"""Declared tables: every table a dataset offers, computed and protected once, jointly.

Why this mode exists. Answering free-form queries safely needs a per-query differencing
check: does the new release, with everything released before, determine a group of 1 to
threshold-1 people? Exactly, that is a 0/1 integer programme over the released cells
(:mod:`.differencing`), seconds per fresh query. FlowKit's answer is precomputed aggregates,
and so is this one: the provider declares the tables a dataset offers (``tables:`` in its
config, e.g. ``[camp], [camp, sex], [camp, origin], [origin, sex]``); at start-up the node
computes every cell of every declared table on the full grid of declared values, at every
level (inner cells and all margins), and protects them all at once:

- primary suppression per cell (threshold on contributors, and for the declared measures
  dominance and p %); an EMPTY cell is suppressed exactly like a cell of 1..threshold-1
  contributors (rule ``threshold``, published interval ``[0, threshold - 1]``);
- secondary suppression over the relations of ALL declared tables together: a cell shared
  by two tables (the ``camp`` margin of ``camp × sex`` and of ``camp × origin``) is one
  variable, so a cell hidden in one table cannot be recovered from another. The pattern is
  grown and audited by linear programming exactly as for one table
  (:mod:`.protection_secondary`, or :mod:`.protection_optimal`), over the union of cells and
  every margin relation among them, with one pattern for every statistic (a cell is
  released with its count, sums and means, or hidden in all of them, so ``sum = mean × n``
  cannot undo a suppression). Nested admin units add their relations (a province is the
  sum of its districts), so ``[province, sex]`` and ``[district, sex]`` are protected
  together too (one table may not hold a unit and its parent: see .config). The LP also checks that no threshold cell gets a lower bound
  above 0 (presence) and that released margins hide at least ``threshold`` people behind
  their suppressed cells.

Queries then only select cells of this one protected set (a declared table, a sub-table of
one, whole rows of one through filters) and are answered by lookup.

Why nothing can be differenced across queries. Every analyst, whatever they ask and in
whatever order, can only ever see cells of the same fixed protected set ``P``; the union of
all possible answers is ``P`` itself. ``P`` was checked once against an attacker who knows
all of it (every released value of every declared table and every margin relation among
them): that is exactly what anyone can combine across any number of queries. So a sequence
of queries reveals nothing that the single check did not already allow, and no per-query
ledger is needed. What the check does not cover is other releases over the same people:
the node therefore refuses, at start-up, a declared-tables dataset that shares its
population with another suppressed (SDC) dataset; a DP dataset over the same units is
allowed (its answers are ε-DP whatever else is known).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from safemicro.service.presence import full_grid
from safemicro.service.protection import cell_statistics
from safemicro.service.protection_cells import _TOPS
from safemicro.service.protection_optimal import optimal_secondary
from safemicro.service.protection_rules import ProtectionPolicy, _primary
from safemicro.service.protection_secondary import Equations, _rounded_intervals, _secondary, table_equations

LEVEL = "_level"  # the dimensions a cell is grouped by, sorted and joined by "|" ("" = everyone)


@dataclass(frozen=True)
class Table:
    """One declared table: its dimensions and the measures it offers sums and means of."""

    by: tuple[str, ...]
    measures: tuple[str, ...] = ()


def union_dims(tables: list[Table]) -> list[str]:
    """Every dimension of any declared table, in order of first declaration."""
    return list(dict.fromkeys(d for t in tables for d in t.by))


def levels(tables: list[Table]) -> list[tuple[str, ...]]:
    """Every aggregation level of every declared table (each subset of its dimensions), once."""
    seen: dict[frozenset, tuple[str, ...]] = {}
    for t in tables:
        for r in range(len(t.by), -1, -1):
            for c in itertools.combinations(t.by, r):
                seen.setdefault(frozenset(c), c)
    return list(seen.values())


def level_key(dims) -> str:
    return "|".join(sorted(dims))


def union_cells(
    records: pl.DataFrame, tables: list[Table], values: dict[str, list[str]], measures: list[str]
) -> pl.DataFrame:
    """Every cell of every declared table on the full grid of ``values`` (empty ones with
    ``n = 0``), each once: the union dimensions (None where a cell is not grouped by one),
    ``_level``, ``n`` and per measure ``total_<m>``, ``top1_<m>``..``top3_<m>``."""
    dims = union_dims(tables)
    frames = []
    for level in levels(tables):
        by = list(level)
        if by:
            stats = cell_statistics(records, by, None, "_unit").select(*by, "n")
            stats = full_grid(stats, by, values, margins=False, magnitude=False)
        else:
            stats = pl.DataFrame({"n": [records.get_column("_unit").n_unique()]}, schema={"n": pl.Int64})
        for m in measures:
            if by:
                s = cell_statistics(records, by, m, "_unit").select(*by, "total", *_TOPS)
                s = s.with_columns([pl.col(d).cast(pl.String) for d in by])
                stats = stats.join(s, on=by, how="left")
            else:
                s = cell_statistics(records.with_columns(pl.lit("a").alias("_a")), ["_a"], m, "_unit")
                stats = stats.with_columns(s.select("total", *_TOPS))
            stats = stats.rename({c: f"{c}_{m}" for c in ("total", *_TOPS)}).with_columns(
                [pl.col(f"{c}_{m}").fill_null(0.0) for c in ("total", *_TOPS)]
            )
        missing = [pl.lit(None, dtype=pl.String).alias(d) for d in dims if d not in by]
        stats = stats.with_columns([pl.col(d).cast(pl.String) for d in by] + missing)
        frames.append(stats.with_columns(pl.lit(level_key(by)).alias(LEVEL)))
    cols = [*dims, LEVEL, "n", *[f"{c}_{m}" for m in measures for c in ("total", *_TOPS)]]
    out = pl.concat([f.select(cols) for f in frames])
    return out.sort(dims, nulls_last=True)


def nesting_equations(cells: pl.DataFrame, dims: list[str], nests: dict[str, tuple[str, dict[str, str]]]) -> Equations:
    """The relations an analyst knows from nested admin units: a cell grouped by a parent
    unit (province) is the sum of the cells grouped by its children (districts) instead,
    the other dimensions equal. ``nests``: child dimension -> (parent dimension, {child
    value: parent value})."""
    t = cells.select(dims).with_row_index("_i")
    parents: list[int] = []
    children: list[np.ndarray] = []
    for child, (parent, parent_of) in nests.items():
        others = [d for d in dims if d not in (child, parent)]
        kids = t.filter(pl.col(child).is_not_null() & pl.col(parent).is_null()).with_columns(
            pl.col(child).replace_strict(parent_of, default=None, return_dtype=pl.String).alias(parent)
        )
        par = t.filter(pl.col(parent).is_not_null() & pl.col(child).is_null())
        joined = kids.select(*others, parent, "_i").join(
            par.select(*others, parent, pl.col("_i").alias("_p")), on=[*others, parent], how="inner", nulls_equal=True
        )
        for p, kid in joined.group_by("_p").agg(pl.col("_i")).sort("_p").iter_rows():
            parents.append(int(p))
            children.append(np.asarray(kid, dtype=np.int64))
    return Equations(np.asarray(parents, dtype=np.int64), children)


def protect_tables(
    cells: pl.DataFrame,
    dims: list[str],
    measures: list[str],
    policy: ProtectionPolicy,
    nests: dict[str, tuple[str, dict[str, str]]] | None = None,
) -> dict[str, pl.DataFrame]:
    """One suppression pattern over the union of cells, for every statistic.

    Returns {"count": table, "sum:<m>": table, "mean:<m>": table} with the union dimensions,
    ``_level`` and the columns of :func:`safemicro.service.protection.protect`. Threshold
    cells (empty ones included) publish the rule's own interval (count ``[0, threshold-1]``,
    sum ``[0, None]``), the same whatever their true size."""
    from safemicro.service.protection import _assemble

    n = cells.get_column("n").to_numpy().astype(float)
    rules = _primary(cells.with_columns(pl.lit(None, dtype=pl.Float64).alias("total")), "count", policy)
    mags = {}
    for m in measures:
        t = cells.with_columns(*[pl.col(f"{c}_{m}").alias(c) for c in ("total", *_TOPS)])
        mags[m] = t
        for i, r in enumerate(_primary(t, "sum", policy)):
            rules[i] = rules[i] or r
    suppressed = np.array([r is not None for r in rules])
    eqs = table_equations(cells, dims)
    if nests:
        more = nesting_equations(cells, dims, nests)
        eqs = Equations(np.concatenate([eqs.parents, more.parents]), [*eqs.children, *more.children])
    depth = cells.select(pl.sum_horizontal([pl.col(d).is_null().cast(pl.Int64) for d in dims])).to_series().to_numpy()
    bases = [("n", "n", n)] + [(m, "total", cells.get_column(f"total_{m}").to_numpy().astype(float)) for m in measures]
    bounds = {key: (np.full(len(n), np.nan), np.full(len(n), np.nan)) for key, _, _ in bases}
    if policy.secondary and suppressed.any() and len(eqs.parents):
        caches: dict[str, dict] = {key: {} for key, _, _ in bases}
        changed = True
        while changed:  # each pass only adds suppressions, so this ends
            changed = False
            for key, name, vals in bases:
                before = suppressed.sum()
                if policy.secondary_method == "optimal":
                    suppressed, lo, hi = optimal_secondary(vals, name, eqs, rules, suppressed, policy, len(n))
                else:
                    suppressed, lo, hi = _secondary(
                        vals, name, eqs, rules, suppressed, policy, len(n), depth, caches[key]
                    )
                changed |= bool(suppressed.sum() != before)
                bounds[key] = (lo, hi)
        for i in np.flatnonzero(suppressed):
            rules[i] = rules[i] or "secondary"
        if policy.rounding_base:
            for key, _, vals in bases:
                stat = "count" if key == "n" else "sum"
                bounds[key] = _rounded_intervals(eqs, vals, rules, suppressed, policy, stat)
    threshold = np.array([r == "threshold" for r in rules])
    keep = cells.select(*dims, LEVEL)

    def finish(t: pl.DataFrame, statistic: str, key: str) -> pl.DataFrame:
        lo, hi = bounds[key]
        out = _assemble(t, dims, statistic, policy, list(rules), suppressed, lo, hi)
        if statistic in ("count", "sum"):
            top = float(policy.threshold - 1) if statistic == "count" else None
            out = out.with_columns(
                lower=pl.when(pl.Series(threshold)).then(0.0).otherwise(pl.col("lower")),
                upper=pl.when(pl.Series(threshold)).then(top).otherwise(pl.col("upper")),
            )
        return out.with_columns(keep.get_column(LEVEL))

    out = {"count": finish(cells.with_columns(pl.lit(None, dtype=pl.Float64).alias("total")), "count", "n")}
    for m in measures:
        out[f"sum:{m}"] = finish(mags[m], "sum", m)
        out[f"mean:{m}"] = finish(mags[m], "mean", m)
    return out


def content_hash(version: str, policy_hash: str, tables: list[Table]) -> str:
    """Where a dataset's protected set is cached: the data's version, the policy, the tables."""
    text = json.dumps([version, policy_hash, [[list(t.by), list(t.measures)] for t in tables]])
    return "tables:" + hashlib.sha256(text.encode()).hexdigest()[:40]
