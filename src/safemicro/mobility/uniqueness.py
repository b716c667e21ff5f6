"""How unique the raw traces are (the input side of the risk report): test T-M8.

What the operator holds, not what the node releases: these numbers say why traces never
leave the node. Definitions (the study's section 6; no code taken from the peers):
- **unicity at p points** (de Montjoye et al. 2013): draw p of a subscriber's distinct
  spatio-temporal points (cell, local day, hour); the subscriber is unique when no other
  subscriber's trace holds all p; unicity is the share of unique subscribers;
- **Location attack at k** (Pellungrini et al. 2017, scikit-mobility's ``LocationAttack``):
  the adversary knows k of the target's records (locations, with repetition); an individual
  matches when it visited each location at least as often as it appears among the k; the
  risk of an instance is 1 / matches, the target's risk the maximum over its instances;
- **HomeWork attack**: the adversary knows the target's two most visited locations (ties:
  the smaller cell index); the risk is 1 / the number of subscribers with the same pair.
Locations are cells. The instances of a target are searched as multisets of its distinct
cells (the same instances as combinations of records, without repeats), depth first from
its rarest cells, stopping at the first unique one (risk 1 cannot grow); a target whose
search exceeds a budget of instances is reported as a lower bound and counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl


def sample_traces(ingested: str | Path, n: int = 500) -> pl.DataFrame:
    """The clean events (sub, date, hour, cell_ix) of ``n`` subscribers: those with the
    smallest pseudonyms, a uniform sample because pseudonyms are keyed hashes."""
    ev = pl.scan_parquet(Path(ingested) / "events" / "date=*" / "*.parquet", hive_partitioning=True)
    subs = ev.select(pl.col("sub").unique()).collect()["sub"].sort().head(n)
    return (
        ev.filter(pl.col("sub").is_in(subs.implode()))
        .select("sub", pl.col("date").cast(pl.String), "hour", "cell_ix")
        .collect()
    )


def _min_matches(counts: np.ndarray, cand: np.ndarray, k: int, budget: int) -> tuple[int, bool]:
    """The fewest subscribers (rows of ``cand``, visit counts over the target's locations
    ``counts``) matching any multiset of k of the target's records; depth-first over the
    multisets, rarest locations first, stopping at 1. Returns (fewest, complete): complete
    is False when ``budget`` multisets were tried first (the risk is then a lower bound)."""
    if counts.sum() <= k:  # fewer records than k: the whole trace is the only instance
        return int((cand >= counts[None]).all(1).sum()), True
    order = np.argsort((cand > 0).sum(0), kind="stable")
    counts, cand = counts[order], cand[:, order]
    best, tried = len(cand), 0
    # stack of (next location, multiset size so far, rows still matching, multiplicity used)
    stack = [(0, 0, np.arange(len(cand)), np.zeros(len(counts), dtype=np.int64))]
    while stack:
        start, size, rows, used = stack.pop()
        if size == k:
            tried += 1
            best = min(best, len(rows))
            if best == 1:
                return 1, True
            if tried >= budget:
                return best, False
            continue
        for loc in range(len(counts) - 1, start - 1, -1):  # pushed in reverse: rarest popped first
            if used[loc] < counts[loc]:
                more = used.copy()
                more[loc] += 1
                stack.append((loc, size + 1, rows[cand[rows, loc] >= more[loc]], more))
    return best, True


def location_risk(traces: pl.DataFrame, k: int, budget: int = 20_000) -> pl.DataFrame:
    """Per subscriber (``sub``) the Location-attack risk at k over ``cell_ix`` visits, and
    whether it is exact (``complete``; else a lower bound after ``budget`` instances)."""
    visits = traces.group_by("sub", "cell_ix").len("n")
    subs = visits["sub"].unique().sort()
    cells = visits["cell_ix"].unique().sort()
    grid = np.zeros((len(subs), len(cells)), dtype=np.int64)
    grid[
        np.searchsorted(subs.to_numpy(), visits["sub"].to_numpy()),
        np.searchsorted(cells.to_numpy(), visits["cell_ix"].to_numpy()),
    ] = visits["n"].to_numpy()
    risk = np.empty(len(subs))
    complete = np.empty(len(subs), dtype=bool)
    for i in range(len(subs)):  # one target at a time: the instances differ per target
        where = np.flatnonzero(grid[i])
        best, complete[i] = _min_matches(grid[i, where], grid[:, where], k, budget)
        risk[i] = 1.0 / best
    return pl.DataFrame({"sub": subs, "risk": risk, "complete": complete})


def homework_risk(traces: pl.DataFrame) -> pl.DataFrame:
    """Per subscriber the HomeWork-attack risk (the two most visited cells, as a pair)."""
    top = (
        traces.group_by("sub", "cell_ix")
        .len("n")
        .sort(["sub", "n", "cell_ix"], descending=[False, True, False])
        .group_by("sub", maintain_order=True)
        .agg(pl.col("cell_ix").head(2).sort().alias("pair"))
        .with_columns(pl.col("pair").cast(pl.List(pl.String)).list.join(","))
    )
    return top.with_columns(risk=1.0 / pl.len().over("pair")).select("sub", "risk")


def unicity(traces: pl.DataFrame, p: int, seed: int = 0) -> float:
    """de Montjoye's unicity: the share of subscribers unique on p of their points drawn at
    random (all their points when they have fewer)."""
    points = traces.select("sub", "cell_ix", "date", "hour").unique()
    rng = np.random.default_rng(seed)
    drawn = (
        points.sort("sub", "cell_ix", "date", "hour")
        .with_columns(r=pl.Series(rng.random(points.height)))
        .filter(pl.col("r").rank("ordinal").over("sub") <= p)
        .drop("r")
    )
    need = drawn.group_by("sub").len("need")
    hits = (
        drawn.rename({"sub": "target"})
        .join(points, on=["cell_ix", "date", "hour"])
        .group_by("target", "sub")
        .len("held")
        .join(need.rename({"sub": "target"}), on="target")
        .filter(pl.col("held") == pl.col("need"))
        .group_by("target")
        .len("holders")
    )
    return float((hits["holders"] == 1).mean())


def uniqueness_report(traces: pl.DataFrame, ks: tuple[int, ...] = (2, 4), points: tuple[int, ...] = (2, 4)) -> dict:
    """The input-side report: unicity at each p, and the Location (each k) and HomeWork
    attacks' risks (mean and share of subscribers at risk 1)."""

    def summary(r: pl.DataFrame) -> dict:
        out = {"mean_risk": float(r["risk"].mean()), "share_unique": float((r["risk"] == 1.0).mean())}
        if "complete" in r.columns:  # targets whose search stopped at the budget (risk a lower bound)
            out["lower_bounds"] = int((~r["complete"]).sum())
        return out

    if traces.is_empty():
        return {"subscribers": 0}
    return {
        "subscribers": int(traces["sub"].n_unique()),
        "locations": "cell",
        **{f"unicity_{p}_points": unicity(traces, p) for p in points},
        **{f"location_attack_k{k}": summary(location_risk(traces, k)) for k in ks},
        "homework_attack": summary(homework_risk(traces)),
    }
