"""The node's cell key mode (``policy.protection: cell_key``): counts perturbed by the cell
key method of :mod:`safemicro.service.cell_key` instead of threshold + secondary suppression.

Record keys are drawn once when the dataset is loaded, from ``policy.cell_key.seed`` (kept
in the provider's config, left out of the published policy hash) and never released. Every
cell, margins included, gets the perturbation of its own records' cell key, so a repeated
query, an overlapping one, or two queries whose difference isolates a few records give the
same perturbed values for the same cells: nothing is gained by asking again or differencing.
The differencing ledger is not consulted for these datasets: the perturbation is the
protection. Only counts and crosstabs are offered.
"""

from __future__ import annotations

from itertools import combinations

import polars as pl

from safemicro.service.cell_key import cell_key_counts, generate_ptable, record_keys
from safemicro.service.config import DatasetConfig
from safemicro.service.queries import Query
from safemicro.service.refusal import Refusal
from safemicro.service.tokens import Principal

RKEY = "_rkey"


def load_ptable(ds: DatasetConfig) -> pl.DataFrame:
    """The declared ptable (CSV with pcv, ckey, pvalue) or one generated with D and V."""
    ck = ds.policy.cell_key
    if ck.ptable is not None:
        return pl.read_csv(ck.ptable).select("pcv", "ckey", "pvalue")
    return generate_ptable(ck.max_perturbation, ck.variance, key_range=ck.key_range).select("pcv", "ckey", "pvalue")


def with_record_keys(frame: pl.DataFrame, ds: DatasetConfig) -> pl.DataFrame:
    """The answering frame with its record keys (one per row, from the provider's seed)."""
    ck = ds.policy.cell_key
    return frame.with_columns(pl.Series(RKEY, record_keys(frame.height, ck.seed, ck.key_range)))


class _CellKeyTables:
    """Mixed into the Node: answers of datasets protected by the cell key method."""

    def _answer_cell_key(
        self, principal: Principal, q: Query, ds: DatasetConfig, records: pl.DataFrame, where: dict, qid: str
    ) -> str:
        if q.kind not in ("count", "crosstab"):
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
        cell key; empty cells are 0 before the threshold, as in the ONS package."""
        if not hasattr(self, "_ptables"):
            self._ptables: dict[str, pl.DataFrame] = {}
        if q.dataset not in self._ptables:
            self._ptables[q.dataset] = load_ptable(ds)
        ptable = self._ptables[q.dataset]
        by = list(q.by)
        levels = [by]
        if q.margins and by:
            levels = [list(c) for r in range(len(by), -1, -1) for c in combinations(by, r)]
        parts = []
        for dims in levels:
            grid = pl.DataFrame({"_one": [1]})
            for d in dims:
                vals = where.get(d, self.values[q.dataset][d])
                grid = grid.join(pl.DataFrame({d: pl.Series(d, vals, dtype=pl.String), "_one": 1}), on="_one")
            if dims:
                cells = cell_key_counts(records, dims, RKEY, ptable, threshold=ds.policy.threshold)
                grid = grid.join(cells.select(*dims, "count"), on=dims, how="left")
            else:
                cells = cell_key_counts(records.with_columns(pl.lit(1).alias("_all")), ["_all"], RKEY, ptable)
                grid = grid.with_columns(pl.lit(cells["count"][0] if records.height else None).alias("count"))
                if records.height == 0 or (cells["count"][0] or 0) < ds.policy.threshold:
                    grid = grid.with_columns(pl.lit(None, dtype=pl.Int64).alias("count"))
            missing = [d for d in by if d not in dims]
            grid = grid.drop("_one").with_columns([pl.lit(None, dtype=pl.String).alias(d) for d in missing])
            parts.append(grid.select(*by, pl.col("count").cast(pl.Int64).alias("value")))
        table = pl.concat(parts, how="vertical")
        released = pl.col("value").is_not_null()
        return table.with_columns(
            pl.when(released).then(pl.lit("released")).otherwise(pl.lit("suppressed")).alias("status"),
            pl.when(released).then(pl.lit("cell_key")).otherwise(pl.lit("threshold")).alias("rule"),
        )
