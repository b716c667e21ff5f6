"""The mobility path in one call per step, as the CLI and the demo run it.

``features_and_reference`` runs stage i over the ingested partitions (day by day), stage ii
over the declared windows, and writes inside the node folder: ``daily/`` (the daily tables),
``features.parquet`` (the per-subscriber features, full precision), ``reference.parquet``
(the service's table; neither leaves the node) and ``bins.json`` (the provider's metric
bins, declared in the service config). Windows are half-open day ranges.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.mobility.daily import stage_i
from safemicro.mobility.features import subscriber_features, window_days
from safemicro.mobility.reference import DEFAULT_BINS, reference_table


@dataclass(frozen=True)
class Windows:
    """Baseline, follow-up and (optional) later window, each [start, stop)."""

    baseline: tuple[dt.date, dt.date]
    followup: tuple[dt.date, dt.date]
    later: tuple[dt.date, dt.date] | None = None

    def check(self) -> None:
        for name, w in (("baseline", self.baseline), ("followup", self.followup), ("later", self.later)):
            if w is not None and not w[0] < w[1]:
                raise SafemicroError(f"the {name} window is empty: {w[0]} .. {w[1]} (stop is exclusive)")
        if self.followup[0] < self.baseline[1]:
            raise SafemicroError("the follow-up window must start after the baseline ends")

    def days(self) -> list[dt.date]:
        ws = [self.baseline, self.followup] + ([self.later] if self.later else [])
        return window_days(min(w[0] for w in ws), max(w[1] for w in ws))


def features_and_reference(
    ingested: str | Path,
    node: str | Path,
    windows: Windows,
    *,
    engine: str = "polars",
    min_active_days: int = 1,
    daily_columns: bool = False,
    bins: dict[str, tuple[str, list[float]]] | None = None,
    progress: Callable[[dt.date], None] | None = None,
) -> dict[str, Path]:
    """Stage i and ii into ``node``; returns the paths written."""
    windows.check()
    root = Path(node)
    root.mkdir(parents=True, exist_ok=True)
    stage_i(ingested, root / "daily", engine=engine, progress=progress)
    cells = pl.read_parquet(Path(ingested) / "cells.parquet")
    feats = subscriber_features(
        root / "daily",
        cells,
        window_days(*windows.baseline),
        window_days(*windows.followup),
        window_days(*windows.later) if windows.later else None,
        min_active_days=min_active_days,
    )
    feats.write_parquet(root / "features.parquet")
    bins = DEFAULT_BINS if bins is None else bins
    ref = reference_table(feats, cells, root / "daily", windows.days(), bins=bins, daily_columns=daily_columns)
    ref.write_parquet(root / "reference.parquet")
    (root / "bins.json").write_text(json.dumps(bins, indent=2))  # the declared bins, for the service config
    return {"daily": root / "daily", "features": root / "features.parquet", "reference": root / "reference.parquet"}
