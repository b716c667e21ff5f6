"""The DP answer: budget reserved, noisy cells over the declared values and their noisy
margins, the release stored and committed.

A mixin of :class:`safemicro.service.node.Node` (it reads the node's declared values).
"""

from __future__ import annotations

import polars as pl

from safemicro.service.config import DatasetConfig
from safemicro.service.dp import released_columns
from safemicro.service.queries import Query
from safemicro.service.refusal import Refusal
from safemicro.service.store import BudgetExceeded
from safemicro.service.tokens import Principal


class _DPTables:
    values: dict[str, dict[str, list]]
    unit_is_record: dict[str, bool]

    def _warm_dp(self) -> None:
        """Import OpenDP and run one measurement on two made-up records before serving: the
        import takes 1-5 s, and the first DP query would otherwise hold every request that
        reaches the node meanwhile (measured: the whole p95 tail of the first seconds)."""
        from safemicro.service import dp

        made_up = pl.DataFrame({"_unit": ["a", "b"], "k": ["x", "y"], "m": [0.0, 1.0]})
        keys = pl.DataFrame({"k": ["x", "y"]})
        common = dict(unit="_unit", max_contributions=1, mechanism="laplace")
        dp.dp_table(made_up, ["k"], keys, "count", 1.0, **common)
        dp.dp_table(made_up, ["k"], keys, "sum", 1.0, measure="m", bounds=(0.0, 1.0), **common)

    def _answer_dp(
        self, principal: Principal, q: Query, ds: DatasetConfig, records: pl.DataFrame, where: dict, qid: str
    ) -> str:
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
                table = self._dp_table(q, ds, records, where, eps)
                body = self._body(q, qid, table, mode="dp", epsilon=eps)
                with self.store.transaction() as c:
                    self.store.lock_ledger(c, q.dataset)
                    earlier = self.store.cached_release(qid, c)  # another process answered it meanwhile
                    if earlier is None:
                        self.store.commit_reservation(c, reservation)
                        self.store.save_release(c, qid, q.dataset, body)
            except BaseException:
                self.store.cancel_reservation(reservation)
                raise
            if earlier is not None:
                self.store.cancel_reservation(reservation)
                return earlier
            self._log_released(principal, qid, table.height, epsilon=eps)
        return body

    def _dp_table(self, q: Query, ds: DatasetConfig, records: pl.DataFrame, where: dict, eps: float) -> pl.DataFrame:
        """Noisy cells over the declared values (public keys: no key reveals presence); a
        mean spends half on the sum, half on the count; margins are sums of noisy cells
        (post-processing, no extra budget)."""
        from safemicro.service import dp

        by = list(q.by)
        if not by:
            records = records.with_columns(pl.lit("all").alias("_all"))
            by = ["_all"]
            keys = pl.DataFrame({"_all": ["all"]})
        else:
            keys = None
            for d in by:
                col = pl.DataFrame({d: pl.Series(d, where.get(d, self.values[q.dataset][d]), dtype=pl.String)})
                keys = col if keys is None else keys.join(col, how="cross")
        # one record per unit: every record is a first contribution, no per-unit pass needed
        unit = None if self.unit_is_record[q.dataset] else "_unit"
        common = dict(unit=unit, max_contributions=1, mechanism=ds.dp.mechanism)
        measure = ds.measures.get(q.measure) if q.measure else None
        bounds = (measure.lower, measure.upper) if measure else None
        if q.kind == "quantile":  # OpenDP's private quantile on the published grid (see .quantiles)
            from safemicro.service import quantiles

            step = quantiles.granularity(measure.lower, measure.upper, measure.granularity)
            table = quantiles.dp_quantile_table(
                records, by, keys, q.measure, bounds, step, q.quantile, eps, margins=bool(q.by) and q.margins
            )
        elif q.kind == "mean":
            sums, _ = dp.dp_table(records, by, keys, "sum", eps / 2, measure=q.measure, bounds=bounds, **common)
            counts, _ = dp.dp_table(records, by, keys, "count", eps / 2, **common)
            value = sums["value"] / counts["value"].clip(lower_bound=1.0)
            table = sums.with_columns(
                value.alias("value"),
                pl.lit(None, dtype=pl.Float64).alias("noise_scale"),
                pl.lit(None, dtype=pl.Float64).alias("noise_variance"),
            )
        else:
            stat = "sum" if q.kind == "sum" else "count"
            table, _ = dp.dp_table(records, by, keys, stat, eps, measure=q.measure, bounds=bounds, **common)
        if q.by and q.margins and q.kind not in ("mean", "quantile"):
            table = self._noisy_margins(table, q.by)
        return table.drop("_all") if "_all" in table.columns else table

    @staticmethod
    def _noisy_margins(table: pl.DataFrame, by: list[str]) -> pl.DataFrame:
        """Margin rows as sums of the noisy inner cells, with summed noise variances."""
        import itertools

        frames = [table]
        for r in range(len(by) - 1, -1, -1):
            for level in itertools.combinations(by, r):
                keep = list(level)
                aggs = [pl.col("value").sum(), pl.col("noise_variance").sum()]
                g = table.group_by(keep, maintain_order=True).agg(aggs) if keep else table.select(aggs)
                g = g.with_columns(
                    [pl.lit(None, dtype=pl.String).alias(d) for d in by if d not in keep] + released_columns(None)
                )
                frames.append(g.select(table.columns))
        return pl.concat(frames, how="vertical_relaxed")
