"""The DP answer: budget reserved, noisy cells over the declared values and their noisy
margins, the release stored and committed.

A mixin of :class:`safemicro.service.node.Node` (it reads the node's declared values).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from safemicro.jsonable import json_ready
from safemicro.service import value_grid
from safemicro.service.config import DatasetConfig
from safemicro.service.queries import Query
from safemicro.service.refusal import Refusal
from safemicro.service.store import BudgetExceeded
from safemicro.service.tokens import Principal
from safemicro.service.value_grid import Codes

#: a released DP cell's columns besides its value and noise (no rule, bounds or rounding)
_RELEASED = {"status": "released", "rule": None, "lower": None, "upper": None, "rounded_to": None}


class _DPTables:
    values: dict[str, dict[str, list[str]]]
    codes: dict[str, Codes]

    def _warm_dp(self) -> None:
        """Import OpenDP and run one measurement before serving: the import takes 1-5 s, and
        the first DP query would otherwise hold every request that reaches the node
        meanwhile (measured: the whole p95 tail of the first seconds)."""
        from safemicro.service import dp

        dp.noisy_counts([0, 1], 1.0)
        dp.noisy_sums([0.0, 1.0], 1.0, (0.0, 1.0))

    def _answer_dp(
        self, principal: Principal, q: Query, ds: DatasetConfig, records: pl.DataFrame, where: dict, qid: str
    ) -> str:
        """The answer's bytes; ``records`` are the dataset's, unfiltered (only a quantile reads them)."""
        if q.kind not in ("count", "sum", "mean", "crosstab", "quantile"):
            raise Refusal(422, f"{q.kind!r} is not offered in DP mode", "kind")
        eps = ds.dp.epsilon_per_query
        caps = {("analyst", principal.subject): ds.dp.analyst_budget, ("dataset", "*"): ds.dp.dataset_budget}
        with self._query_lock(qid):  # budgets are row-locked in the store: no dataset-wide lock
            again = self.store.cached_release(qid)
            if again is not None:
                return again
            try:
                reservation = self.store.reserve(
                    self.populations[q.dataset].budget_key(q.dataset), principal.subject, qid, eps, caps
                )
            except BudgetExceeded as e:
                raise Refusal(403, str(e)) from None
            try:
                if q.kind == "quantile":
                    rows = self._dp_quantiles(q, ds, records, where, eps)
                else:
                    rows = self._dp_cells(q, ds, where, eps)
                body = self._encoded(q, qid, rows, mode="dp", epsilon=eps)
                earlier = self.store.save_dp_release(q.dataset, qid, body, reservation)
            except BaseException:
                self.store.cancel_reservation(reservation)
                raise
            if earlier is not None:
                self.store.cancel_reservation(reservation)
                return earlier
            self._log_released(principal, qid, len(rows), epsilon=eps)
        return body

    def _dp_cells(self, q: Query, ds: DatasetConfig, where: dict, eps: float) -> list[dict]:
        """Noisy cells of a count, crosstab, sum or mean over the declared values (public
        keys: no key reveals presence), one contribution per unit; a mean spends half on the
        sum, half on the count; margins are sums of noisy cells (post-processing, no extra
        budget), in the order of :func:`.value_grid.levels`."""
        from safemicro.service import dp

        by, codes = list(q.by), self.codes[q.dataset]
        axes = [where.get(d, self.values[q.dataset][d]) for d in by]
        rows, positions, shape = value_grid.cells_of(codes, self.values[q.dataset], by, where)
        mechanism = ds.dp.mechanism
        if q.kind in ("sum", "mean"):
            measure = ds.measures[q.measure]
            bounds = (measure.lower, measure.upper)
            totals = value_grid.sums(codes, rows, positions, shape, q.measure, bounds)
            share = eps / 2 if q.kind == "mean" else eps
            noisy = dp.noisy_sums(totals.ravel(), share, bounds, mechanism=mechanism)
        if q.kind in ("count", "crosstab", "mean"):
            share = eps / 2 if q.kind == "mean" else eps
            noisy_n = dp.noisy_counts(value_grid.counts(positions, shape).ravel(), share, mechanism=mechanism)
        if q.kind == "mean":  # a ratio of noisy values: its noise has no single scale
            grid, scale, variance = noisy.values / np.maximum(noisy_n.values, 1.0), None, None
        else:
            noisy = noisy if q.kind == "sum" else noisy_n
            grid, scale, variance = noisy.values, noisy.scale, noisy.variance
        grid = grid.reshape(shape)
        out = []
        margins = q.margins and q.kind != "mean"
        for kept in value_grid.levels(by, margins):
            inner = len(kept) == len(by)
            summed = grid.size // math.prod(shape[i] for i in kept)  # inner cells per cell of this level
            cell = {
                **_RELEASED,
                "noise_scale": scale if inner else None,
                "noise_variance": None if variance is None else variance * (1 if inner else summed),
            }
            labels = value_grid.cell_labels(by, [by[i] for i in kept], [axes[i] for i in kept])
            out += [
                {**row, "value": value, **cell} for row, value in zip(labels, value_grid.summed(grid, kept).tolist())
            ]
        return out

    def _dp_quantiles(self, q: Query, ds: DatasetConfig, records: pl.DataFrame, where: dict, eps: float) -> list:
        """OpenDP's private quantile on the published grid (see .quantiles), per cell."""
        from safemicro.service import quantiles

        records = value_grid.filtered(records, where)
        by = list(q.by) or ["_all"]
        if not q.by:
            records = records.with_columns(pl.lit("all").alias("_all"))
        keys = pl.DataFrame({"_all": ["all"]})
        if q.by:
            keys = None
            for d in by:
                col = pl.DataFrame({d: pl.Series(d, where.get(d, self.values[q.dataset][d]), dtype=pl.String)})
                keys = col if keys is None else keys.join(col, how="cross")
        measure = ds.measures[q.measure]
        step = quantiles.granularity(measure.lower, measure.upper, measure.granularity)
        bounds = (measure.lower, measure.upper)
        table = quantiles.dp_quantile_table(
            records, by, keys, q.measure, bounds, step, q.quantile, eps, margins=bool(q.by) and q.margins
        )
        cols = [c for c in (*q.by, "value", *_RELEASED, "noise_scale", "noise_variance") if c in table.columns]
        return json_ready(table.select(cols).to_dicts())
