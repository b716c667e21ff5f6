"""Polars: in memory (the default engine) or streaming over Parquet/CSV (out of core)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from safemicro.engine.packed import household_sums, packed_pass, packing_for
from safemicro.engine.table import KeyCounts, Source, source_name
from safemicro.engine.writer import open_parquet
from safemicro.errors import SafemicroError


class PolarsEngine:
    def __init__(self, streaming: bool = False):
        self.streaming = streaming
        self.name = "polars-streaming" if streaming else "polars"

    def scan(self, source: Source) -> pl.LazyFrame:
        if isinstance(source, pl.DataFrame):
            return source.lazy()
        path = str(source)
        if Path(path).suffix.lower() in (".csv", ".txt", ".tsv"):
            return pl.scan_csv(path)
        return pl.scan_parquet(path)

    def _collect(self, source: Source, lf: pl.LazyFrame) -> pl.DataFrame:
        try:
            return lf.collect(engine="streaming" if self.streaming else "auto")
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise SafemicroError(str(exc).strip().splitlines()[0], file=source_name(source)) from None

    def columns(self, source: Source) -> list[str]:
        try:
            return self.scan(source).collect_schema().names()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise SafemicroError(str(exc).strip().splitlines()[0], file=source_name(source)) from None

    def n_records(self, source: Source) -> int:
        return int(self._collect(source, self.scan(source).select(pl.len()))[0, 0])

    def key_counts(
        self, source: Source, keys: list[str], weight: str | None, household: str | None = None
    ) -> KeyCounts:
        """Streaming over a Parquet file with integer keys: one packed pass over its row
        groups (:mod:`safemicro.engine.packed`); otherwise a Polars group-by."""
        self._pass = None
        if self.streaming and isinstance(source, (str, Path)) and Path(str(source)).suffix.lower() == ".parquet":
            pf = open_parquet(source)
            packing = packing_for(pf, source, keys)
            if packing is not None:
                kc, self._pass = packed_pass(pf, source, packing, weight, household)
                self._pass_of = (str(source), tuple(keys), household)
                return kc
        return self._group_by(source, keys, weight)

    def _group_by(self, source: Source, keys: list[str], weight: str | None) -> KeyCounts:
        w = pl.col(weight).cast(pl.Float64).sum() if weight else pl.len().cast(pl.Float64)
        out = self._collect(source, self.scan(source).group_by(keys).agg(pl.len().alias("__n"), w.alias("__w")))
        return KeyCounts(out.select(keys), out["__n"].cast(pl.Float64).to_numpy(), out["__w"].to_numpy())

    def value_counts(self, source: Source, keys: list[str], column: str) -> pl.DataFrame:
        lf = self.scan(source).group_by([*keys, column]).agg(pl.len().alias("__n"))
        return self._collect(source, lf)

    def household_log_keep(
        self, source: Source, keys: list[str], household: str, key_values: pl.DataFrame, log_keep: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if getattr(self, "_pass", None) is not None and self._pass_of == (str(source), tuple(keys), household):
            return household_sums(self._pass, key_values, log_keep)
        kr = key_values.with_columns(pl.Series("__lk", log_keep)).lazy()
        lf = (
            self.scan(source)
            .select([*keys, household])
            .join(kr, on=keys, how="inner", nulls_equal=True)
            .group_by(household)
            .agg(pl.len().alias("__size"), pl.col("__lk").sum().alias("__s"))
        )
        out = self._collect(source, lf)
        return out["__size"].cast(pl.Int64).to_numpy(), out["__s"].to_numpy()
