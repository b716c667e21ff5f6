"""The node's cell key mode (``policy.protection: cell_key``): counts, sums and means
perturbed by the cell key method of :mod:`safemicro.service.cell_key` instead of threshold +
secondary suppression.

Record keys are drawn once when the dataset is loaded, from ``policy.cell_key.seed`` (kept
in the provider's config, left out of the published policy hash) and never released: one
for counts, one per measure for magnitudes. Every cell, margins included, gets the
perturbation of its own records' keys, so a repeated query, an overlapping one, or two
queries whose difference isolates a few records give the same perturbed values for the
same cells: asking again gains nothing, and a difference carries two perturbations. A sum
or mean is released where the cell's perturbed count reaches the threshold; a mean is the
perturbed sum over the perturbed count. The differencing ledger is not consulted for these
datasets (the perturbation is the protection), so fresh queries cost one group-by.
Quantiles are not offered.
"""

from __future__ import annotations

from itertools import combinations, product

import numpy as np
import polars as pl

from safemicro.service.cell_key import (
    count_perturbation,
    generate_ptable,
    magnitude_keys,
    magnitude_perturbation,
    ptable_lookup,
    record_keys,
)
from safemicro.service.config import DatasetConfig
from safemicro.service.queries import Query
from safemicro.service.refusal import Refusal
from safemicro.service.tokens import Principal

RKEY = "_rkey"
MKEY = "_mkey_"  # + measure name: the record keys of its magnitudes


def load_ptable(ds: DatasetConfig) -> pl.DataFrame:
    """The declared ptable (CSV with pcv, ckey, pvalue) or one generated with D and V."""
    ck = ds.policy.cell_key
    if ck.ptable is not None:
        return pl.read_csv(ck.ptable).select("pcv", "ckey", "pvalue")
    return generate_ptable(ck.max_perturbation, ck.variance, key_range=ck.key_range).select("pcv", "ckey", "pvalue")


def with_record_keys(frame: pl.DataFrame, ds: DatasetConfig) -> pl.DataFrame:
    """The answering frame with its record keys (one per row, from the provider's seed)."""
    ck = ds.policy.cell_key
    return frame.with_columns(
        pl.Series(RKEY, record_keys(frame.height, ck.seed, ck.key_range)),
        *[pl.Series(MKEY + m, magnitude_keys(frame.height, ck.seed, m)) for m in ds.measures],
    )


class _CellKeyTables:
    """Mixed into the Node: answers of datasets protected by the cell key method."""

    def _answer_cell_key(
        self, principal: Principal, q: Query, ds: DatasetConfig, records: pl.DataFrame, where: dict, qid: str
    ) -> str:
        if q.kind not in ("count", "crosstab", "sum", "mean"):
            raise Refusal(422, f"{q.kind!r} is not offered for a dataset protected by the cell key method", "kind")
        table = self._cell_key_table(q, ds, records, where)
        with self._query_lock(qid):
            body = self._body(q, qid, table, mode="cell_key", epsilon=0.0)
            with self.store.transaction() as c:
                earlier = self.store.cached_release(qid, c)
                if earlier is not None:
                    return earlier
                self.store.save_release(c, qid, q.dataset, body)
            self._log_released(principal, qid, table, perturbed=table.height)
        return body

    def _cell_key_table(self, q: Query, ds: DatasetConfig, records: pl.DataFrame, where: dict) -> pl.DataFrame:
        """Every cell of the grid and, with margins, every margin, each perturbed by its own
        keys; empty cells are 0 before the threshold, as in the ONS package. One group-by
        of the records at the finest level; every margin sums its cells' counts, key sums
        and totals and takes the largest of their largest contributions (numpy, no joins)."""
        if not hasattr(self, "_luts"):
            self._luts: dict[str, np.ndarray] = {}
        if q.dataset not in self._luts:
            self._luts[q.dataset] = ptable_lookup(load_ptable(ds))
        by = list(q.by)
        values = [where.get(d, self.values[q.dataset][d]) for d in by]
        grid = _finest_cells(records, by, values, q.measure, len(ds.policy.cell_key.magnitudes.weights))
        levels = [by]
        if q.margins and by:
            levels = [list(c) for r in range(len(by), -1, -1) for c in combinations(by, r)]
        parts = [_level(q, ds, grid, [by.index(d) for d in dims], values, self._luts[q.dataset]) for dims in levels]
        table = pl.concat(parts, how="vertical")
        released = pl.col("value").is_not_null()
        return table.with_columns(
            pl.when(released).then(pl.lit("released")).otherwise(pl.lit("suppressed")).alias("status"),
            pl.when(released).then(pl.lit("cell_key")).otherwise(pl.lit("threshold")).alias("rule"),
        )


def _finest_cells(records: pl.DataFrame, by: list[str], values: list[list[str]], measure: str | None, k: int) -> dict:
    """The records' counts, key sums (and the measure's totals and ``k`` largest absolute
    contributions) on the full grid of ``values``, as arrays of the grid's shape (C order)."""
    keys = by or ["_all"]
    source = records if by else records.with_columns(pl.lit("").alias("_all"))
    aggs = [pl.len().alias("n"), pl.col(RKEY).cast(pl.Int64).sum().alias("ck")]
    if measure is not None:
        aggs += [
            pl.col(MKEY + measure).cast(pl.Int64).sum().alias("mk"),
            pl.col(measure).sum().alias("total"),
            pl.col(measure).abs().top_k(k).sort(descending=True).alias("top"),
        ]
    cells = source.group_by(keys).agg(aggs)
    shape = tuple(len(v) for v in values) or (1,)
    codes = [np.zeros(cells.height, dtype=np.int64)]
    if by:
        positions = [{v: i for i, v in enumerate(vals)} for vals in values]
        codes = [np.array([pos[v] for v in cells[d].to_list()], dtype=np.int64) for d, pos in zip(by, positions)]
    at = np.ravel_multi_index(codes, shape)
    grid = {}
    for name in ("n", "ck", "mk", "total"):
        if name in cells.columns:
            col = cells[name].to_numpy()
            grid[name] = np.zeros(shape, dtype=col.dtype)
            grid[name].flat[at] = col
    if measure is not None:
        top = np.zeros((*shape, k))
        tops = [cells["top"].list.get(j, null_on_oob=True).fill_null(0.0).to_numpy() for j in range(k)]
        top.reshape(-1, k)[at] = np.column_stack(tops) if cells.height else np.zeros((0, k))
        grid["top"] = top
    return grid


def _level(q: Query, ds: DatasetConfig, grid: dict, axes: list[int], values: list, lut: np.ndarray) -> pl.DataFrame:
    """The perturbed cells of one aggregation level (the grid summed over the other axes):
    the query's dimensions (None for those summed over) and ``value``, null below the
    threshold."""
    other = tuple(i for i in range(grid["n"].ndim) if i not in axes) if q.by else (0,)
    n = grid["n"].sum(axis=other).reshape(-1).astype(np.int64)
    count = n + count_perturbation(n, grid["ck"].sum(axis=other).reshape(-1), lut)
    shown = count >= ds.policy.threshold
    if q.kind in ("count", "crosstab"):
        value = pl.Series("value", np.where(shown, count, 0), dtype=pl.Int64)
    else:
        mp = ds.policy.cell_key.magnitudes
        k = len(mp.weights)
        # each level cell's contributions: every member cell's k largest, largest k kept
        top = np.moveaxis(grid["top"], axes, range(len(axes))).reshape(n.size, -1)
        top = -np.sort(-top, axis=1)[:, :k]
        mk = grid["mk"].sum(axis=other).reshape(-1)
        total = grid["total"].sum(axis=other).reshape(-1)
        total = total + magnitude_perturbation(mk, top, mp.percent, mp.weights, mp.separation)
        value = pl.Series("value", np.round(total if q.kind == "sum" else total / np.maximum(count, 1), 2))
    labels = list(zip(*product(*[values[i] for i in axes])))
    columns = {
        d: pl.Series(d, labels[axes.index(i)] if i in axes else [None] * n.size, dtype=pl.String)
        for i, d in enumerate(q.by)
    }
    frame = pl.DataFrame({**columns, "value": value})
    return frame.with_columns(pl.when(pl.Series(shown)).then(pl.col("value")).alias("value"))
