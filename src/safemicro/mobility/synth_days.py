"""Synthetic events day by day (vectorised over SIMs and events) and the run writer.

Each day has its own generator seeded by (seed, day), so a day's partition does not depend
on which days were generated before it; a day is drawn in blocks of SIMs (one Parquet part
each), so a billion-event run never holds a whole day. Where a person is on day d: the home site, or the
destination site between departure and return. Each event falls at the current place's
home site with probability ``p_home_night`` (20-06 h) or ``p_home_day``; otherwise anywhere
with ``p_out_of_area``, at the work site when there is one and the person is at home, else
at a random site of the current admin2. Cells of origin units are down during the outage:
SIMs whose person is there are silent and events drawn there are lost.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl

from safemicro.mobility.geography import bridge_from_polygons
from safemicro.mobility.synth import DIURNAL, NIGHT, SynthConfig, World, _pick, build_world, cells_frame, truth_frame

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def true_places(world: World, d: int) -> pl.DataFrame:
    """The true admin3 of every person on day ``d`` (home, or the destination while away)."""
    away = (world.person_depart <= d) & (d < world.person_return)
    unit = np.where(away, world.person_dest, world.person_home)
    codes = world.units["admin3"].to_numpy()
    return pl.DataFrame({"person_id": np.arange(unit.size), "admin3": pl.Series(codes[unit]).cast(pl.Categorical)})


BLOCK_SIMS = 1_000_000  # SIMs per generated block: a day of 10 M SIMs is ten blocks, not one 100 M-row frame


def day_blocks(world: World, cfg: SynthConfig, d: int):
    """The events of day ``d`` in blocks of at most ``BLOCK_SIMS`` SIMs (memory stays bounded
    at any size). Block 0 draws from the day's generator seeded by (seed, day), block b > 0
    from (seed, day, b): a run of fewer SIMs than a block is one block, as before blocks."""
    sims = np.flatnonzero((world.sim_start <= d) & (d < world.sim_end))
    for b, start in enumerate(range(0, max(sims.size, 1), BLOCK_SIMS)):
        seed = [cfg.seed, d + 1] if b == 0 else [cfg.seed, d + 1, b]
        yield day_events(world, cfg, d, sims[start : start + BLOCK_SIMS], np.random.Generator(np.random.PCG64(seed)))


def day_events(
    world: World, cfg: SynthConfig, d: int, sims: np.ndarray | None = None, rng: np.random.Generator | None = None
) -> pl.DataFrame:
    """The events of day ``d`` (of the SIMs ``sims``; default all in service): msisdn, ts
    (UTC), cell_id, event_type, outgoing, msisdn_counterpart, duration_s."""
    rng = rng or np.random.Generator(np.random.PCG64([cfg.seed, d + 1]))
    if sims is None:
        sims = np.flatnonzero((world.sim_start <= d) & (d < world.sim_end))
    person = world.sim_person[sims]
    away = (world.person_depart[person] <= d) & (d < world.person_return[person])
    place_unit = np.where(away, world.person_dest[person], world.person_home[person])
    place_site = np.where(away, world.person_dest_site[person], world.person_site[person])
    sc = cfg.scenario
    in_outage = sc is not None and sc.day <= d < sc.day + sc.outage_days
    active = rng.random(sims.size) >= cfg.p_silent
    if in_outage:
        active &= ~world.outage_units[place_unit]
    sims, place_unit, place_site, away = sims[active], place_unit[active], place_site[active], away[active]
    n = 1 + rng.poisson(world.sim_rate[sims])
    idx = np.repeat(np.arange(sims.size), n)
    m = idx.size
    hour = rng.choice(24, size=m, p=DIURNAL / DIURNAL.sum())
    night = (hour >= NIGHT[0]) | (hour < NIGHT[1])
    u = rng.random(m)
    at_home = u < np.where(night, cfg.p_home_night, cfg.p_home_day)
    anywhere = (~at_home) & (rng.random(m) < cfg.p_out_of_area)
    work = world.person_work[world.sim_person[sims]][idx]
    use_work = ~at_home & ~anywhere & (work >= 0) & ~away[idx]
    nearby = ~at_home & ~anywhere & ~use_work
    site = place_site[idx].copy()
    n_sites = world.site_unit.size
    site[anywhere] = rng.integers(0, n_sites, int(anywhere.sum()))
    site[use_work] = work[use_work]
    order, a2_start, a2_count = world.admin2_sites
    a2 = world.unit_admin2[place_unit[idx][nearby]]
    site[nearby] = order[_pick(rng, a2_start[a2], a2_count[a2])]
    cell = 3 * site + rng.integers(0, 3, m) + 1
    keep = np.ones(m, dtype=bool)
    if in_outage:
        keep = ~world.outage_units[world.site_unit[site]]
    etype = rng.choice(3, size=m, p=np.asarray(cfg.event_mix) / sum(cfg.event_mix))
    sim = sims[idx]
    slot = np.floor(rng.random(m) * world.n_contacts[sim]).astype(np.int64)
    contact = world.contacts[sim, slot]
    counterpart = np.where(etype < 2, world.sim_msisdn[contact], 0)
    day0 = int((dt.datetime.combine(cfg.start, dt.time(), dt.timezone.utc) - EPOCH).total_seconds()) + 86400 * d
    ts_us = (day0 + hour.astype(np.int64) * 3600 + rng.integers(0, 3600, m)) * 1_000_000
    duration = np.where(etype == 0, np.round(rng.exponential(90.0, m)), np.nan)
    outgoing = rng.random(m) < 0.5
    keep_idx = np.flatnonzero(keep)
    kinds = ["call", "sms", "data"]
    frame = pl.DataFrame(
        {
            "msisdn": world.sim_msisdn[sim][keep_idx],
            "ts": pl.Series(ts_us[keep_idx]).cast(pl.Datetime("us", "UTC")),
            "cell_id": cell[keep_idx],
            "event_type": pl.Series(kinds, dtype=pl.Categorical).gather(etype[keep_idx]),  # no text per row
            "outgoing": pl.Series(outgoing[keep_idx]),
            "msisdn_counterpart": pl.Series(counterpart[keep_idx]),
            "duration_s": duration[keep_idx],
        }
    )
    data = frame["event_type"] == "data"
    return frame.with_columns(
        pl.when(~data).then(pl.col("outgoing")).alias("outgoing"),
        pl.when(~data).then(pl.col("msisdn_counterpart")).alias("msisdn_counterpart"),
    ).sort("ts")


def generate(out: str | Path, cfg: SynthConfig, *, progress=None) -> dict[str, Path]:
    """Generate a run into ``out``; returns the paths written. ``progress(day_index)`` is
    called after each day partition is written."""
    root = Path(out)
    (root / "events").mkdir(parents=True, exist_ok=True)
    (root / "truth").mkdir(exist_ok=True)
    world = build_world(cfg)
    cells = cells_frame(world)
    cells.write_csv(root / "cells.csv")
    bridge = bridge_from_polygons(cells, cfg.lattice.polygons())
    bridge.write_csv(root / "bridge.csv")
    world.units.select("admin3", "admin2", "admin1", "population").write_csv(root / "units.csv")
    truth_frame(world, cfg).write_parquet(root / "truth" / "subscribers.parquet")
    for d in range(cfg.days):
        date = cfg.start + dt.timedelta(days=d)
        part = root / "events" / f"date={date.isoformat()}"
        part.mkdir(exist_ok=True)
        for b, events in enumerate(day_blocks(world, cfg, d)):
            events.write_parquet(part / f"part-{b}.parquet", statistics=False)
        truth = root / "truth" / "daily" / f"date={date.isoformat()}"
        truth.mkdir(parents=True, exist_ok=True)
        true_places(world, d).write_parquet(truth / "part-0.parquet")
        if progress is not None:
            progress(d)
    meta = asdict(cfg)
    meta["start"] = cfg.start.isoformat()
    meta.pop("lattice")
    (root / "synth.json").write_text(json.dumps(meta, indent=2, default=str))
    return {
        "events": root / "events",
        "cells": root / "cells.csv",
        "bridge": root / "bridge.csv",
        "units": root / "units.csv",
        "truth": root / "truth" / "subscribers.parquet",
    }
