"""Synthetic call records of the kind an operator holds, with a displacement scenario.

:func:`build_world` draws a world (lattice geography, sites and cells, persons, SIMs, contacts,
the scenario) from ``numpy.random.Generator(PCG64(seed))``; :func:`.synth_days.generate` streams the events day
by day to ``events/date=YYYY-MM-DD/part-0.parquet``, with ``cells.csv``,
``bridge.csv``, ``units.csv`` and the ground truth: ``truth/subscribers.parquet`` (true home,
displaced, destination, departure and return days per SIM) and ``truth/daily/`` (the true
admin3 of every person on every day). Definitions follow the study's
section 8.5; where this generator simplifies, the docstrings of :class:`SynthConfig` say how.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.mobility.geography import Lattice


@dataclass
class Scenario:
    """A displacement: from ``origins`` (admin3 pcodes) on day ``day`` (index from the start).

    Each person whose home is in an origin leaves with probability ``p_leave`` on a day drawn
    uniformly in [day, day + spread_days); the destination is the person's kin unit with
    probability ``p_kin`` (when it lies outside the origins), else a gravity draw
    (population / distance squared) over units outside the origins. Cells in the origins are
    down for ``outage_days`` from ``day`` (phones there are silent). From ``day + return_after``
    each displaced person returns home with probability ``return_hazard`` per day.
    """

    origins: list[str]
    day: int = 10
    p_leave: float = 0.4
    p_kin: float = 0.7
    spread_days: int = 5
    outage_days: int = 3
    return_after: int = 30
    return_hazard: float = 0.01


@dataclass
class SynthConfig:
    """Generator parameters (defaults from the study's section 8.5).

    ``mean_events`` is the mean number of events on an active day (1 + Poisson of a
    per-SIM Gamma(``activity_shape``) rate: heavy-tailed); a SIM-day is silent with
    probability ``p_silent``. Events are written one line per event at the subscriber's own
    cell (the counterpart's side appears as the counterpart's own events), not two-line.
    A churned SIM is replaced once by a new SIM of the same person from the next day.
    """

    n_subscribers: int = 20_000
    days: int = 28
    start: dt.date = dt.date(2024, 1, 1)
    seed: int = 0
    mean_events: float = 8.0
    activity_shape: float = 0.8
    p_silent: float = 0.3
    p_home_night: float = 0.9
    p_home_day: float = 0.6
    p_out_of_area: float = 0.05
    p_work: float = 0.5
    p_two_sims: float = 0.1
    churn_per_month: float = 0.05
    contacts_mean: float = 5.0
    p_contact_local: float = 0.7
    event_mix: tuple[float, float, float] = (0.4, 0.4, 0.2)  # call, sms, data
    sites_per_unit: float = 6.0  # mean sites per admin3 (∝ population^0.7, at least 1)
    scenario: Scenario | None = None
    lattice: Lattice = field(default_factory=Lattice)


# diurnal weights by local hour: low at night, peaks at 10 h and 19 h
DIURNAL = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.6, 1.5, 3, 4.5, 5.5, 6, 5.5, 5, 5, 4.8, 4.8, 5, 5.5, 6, 6.2, 5, 3.5, 2.5, 1.5]
)
NIGHT = (20, 6)  # the generator's at-home hours (events at home with p_home_night)


@dataclass
class World:
    """Everything drawn before the first day: geography, cells, persons, SIMs, scenario."""

    units: pl.DataFrame  # admin3, admin2, admin1, polygon bounds, population
    site_unit: np.ndarray  # admin3 index of each site
    site_lon: np.ndarray
    site_lat: np.ndarray
    unit_sites: tuple[np.ndarray, np.ndarray]  # first site index and number of sites per admin3
    admin2_sites: tuple[np.ndarray, np.ndarray, np.ndarray]  # sites sorted by admin2, start, count
    unit_admin2: np.ndarray
    person_home: np.ndarray  # admin3 index
    person_site: np.ndarray  # home site
    person_work: np.ndarray  # work site or -1
    person_dest: np.ndarray  # admin3 index or -1
    person_dest_site: np.ndarray
    person_depart: np.ndarray  # day index or a large number
    person_return: np.ndarray
    sim_person: np.ndarray
    sim_msisdn: np.ndarray  # int64 raw numbers
    sim_start: np.ndarray
    sim_end: np.ndarray  # exclusive day index
    sim_rate: np.ndarray
    contacts: np.ndarray  # n_sims x k SIM indices (-1 padding)
    n_contacts: np.ndarray
    outage_units: np.ndarray  # boolean per admin3
    seed_state: np.random.Generator


NEVER = np.iinfo(np.int32).max


def _pick(rng: np.random.Generator, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """A uniform index in [start, start + count) per element."""
    return start + np.floor(rng.random(start.shape[0]) * count).astype(np.int64)


def build_world(cfg: SynthConfig) -> World:
    """Draw the world of a run (all vectorised; loops only over the 64 units)."""
    if cfg.n_subscribers < 1 or cfg.days < 1:
        raise SafemicroError("n_subscribers and days must be at least 1")
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    units = cfg.lattice.units()
    n_u = units.height
    pop = rng.lognormal(0.0, 1.0, n_u)
    pop = pop / pop.sum()
    units = units.with_columns(population=pl.Series(np.round(pop * cfg.n_subscribers * 3).astype(np.int64)))
    if cfg.scenario is not None:
        unknown = sorted(set(cfg.scenario.origins) - set(units["admin3"]))
        if unknown:
            raise SafemicroError(f"scenario origins are not admin3 pcodes of the geography: {unknown}")
    weight = pop**0.7
    n_sites = np.maximum(1, np.round(weight / weight.sum() * cfg.sites_per_unit * n_u)).astype(np.int64)
    site_unit = np.repeat(np.arange(n_u), n_sites)
    lo, la = units["lon_min"].to_numpy(), units["lat_min"].to_numpy()
    side = cfg.lattice.side
    site_lon = lo[site_unit] + rng.random(site_unit.size) * side
    site_lat = la[site_unit] + rng.random(site_unit.size) * side
    unit_start = np.concatenate([[0], np.cumsum(n_sites)[:-1]])
    admin2 = units["admin2"].to_numpy()
    a2_codes, unit_admin2 = np.unique(admin2, return_inverse=True)
    order = np.argsort(unit_admin2[site_unit], kind="stable")
    a2_count = np.bincount(unit_admin2[site_unit], minlength=a2_codes.size)
    a2_start = np.concatenate([[0], np.cumsum(a2_count)[:-1]])
    # persons and SIMs: 10 % of persons hold two SIMs
    n_persons = max(1, int(round(cfg.n_subscribers / (1 + cfg.p_two_sims))))
    home = rng.choice(n_u, size=n_persons, p=pop)
    psite = _pick(rng, unit_start[home], n_sites[home])
    has_work = rng.random(n_persons) < cfg.p_work
    a2 = unit_admin2[home]
    work = np.where(has_work, order[_pick(rng, a2_start[a2], a2_count[a2])], -1)
    # kin unit by gravity (population / distance^2), one draw per person
    cx, cy = lo + side / 2, la + side / 2
    d2 = (cx[:, None] - cx[None, :]) ** 2 + (cy[:, None] - cy[None, :]) ** 2
    np.fill_diagonal(d2, np.inf)
    grav = pop[None, :] / d2
    kin = _gravity_draw(rng, grav, home)
    dest = np.full(n_persons, -1)
    depart = np.full(n_persons, NEVER, dtype=np.int64)
    ret = np.full(n_persons, NEVER, dtype=np.int64)
    outage = np.zeros(n_u, dtype=bool)
    if cfg.scenario is not None:
        sc = cfg.scenario
        in_a = np.isin(units["admin3"].to_numpy(), sc.origins)
        outage = in_a.copy()
        leaves = in_a[home] & (rng.random(n_persons) < sc.p_leave)
        g = grav.copy()
        g[:, in_a] = 0.0
        other = _gravity_draw(rng, g, home)
        use_kin = (rng.random(n_persons) < sc.p_kin) & ~in_a[kin]
        dest = np.where(leaves, np.where(use_kin, kin, other), -1)
        depart = np.where(leaves, sc.day + rng.integers(0, max(1, sc.spread_days), n_persons), NEVER)
        back = sc.day + sc.return_after + rng.geometric(sc.return_hazard, n_persons) - 1
        ret = np.where(leaves, np.maximum(back, depart + 1), NEVER)
    dsite = np.where(dest >= 0, _pick(rng, unit_start[np.maximum(dest, 0)], n_sites[np.maximum(dest, 0)]), -1)
    # SIMs: every person one, some two; churned SIMs replaced once by a new SIM
    second = rng.random(n_persons) < cfg.p_two_sims
    sim_person = np.concatenate([np.arange(n_persons), np.flatnonzero(second)])
    hazard = cfg.churn_per_month / 30.0
    churn = rng.geometric(hazard, sim_person.size) if hazard > 0 else np.full(sim_person.size, NEVER)
    churned = churn < cfg.days
    sim_start = np.concatenate([np.zeros(sim_person.size, dtype=np.int64), churn[churned]])
    sim_end = np.concatenate([np.where(churned, churn, NEVER), np.full(int(churned.sum()), NEVER)])
    sim_person = np.concatenate([sim_person, sim_person[churned]])
    n_sims = sim_person.size
    msisdn = 250_780_000_000 + rng.choice(max(10_000_000, 2 * n_sims), size=n_sims, replace=False)
    rate = rng.gamma(cfg.activity_shape, max(cfg.mean_events - 1, 1e-9) / cfg.activity_shape, n_sims)
    # contacts: Poisson(mean) >= 1, a share in the same admin2
    k = np.clip(rng.poisson(cfg.contacts_mean, n_sims), 1, 12)
    sim_a2 = unit_admin2[home[sim_person]]
    by_a2 = np.argsort(sim_a2, kind="stable")
    s_count = np.bincount(sim_a2, minlength=a2_codes.size)
    s_start = np.concatenate([[0], np.cumsum(s_count)[:-1]])
    contacts = np.full((n_sims, 12), -1, dtype=np.int64)
    for j in range(12):  # 12 contact slots, each vectorised over SIMs
        local = rng.random(n_sims) < cfg.p_contact_local
        anywhere = rng.integers(0, n_sims, n_sims)
        near = by_a2[_pick(rng, s_start[sim_a2], s_count[sim_a2])]
        contacts[:, j] = np.where(j < k, np.where(local, near, anywhere), -1)
    return World(
        units=units,
        site_unit=site_unit,
        site_lon=site_lon,
        site_lat=site_lat,
        unit_sites=(unit_start, n_sites),
        admin2_sites=(order, a2_start, a2_count),
        unit_admin2=unit_admin2,
        person_home=home,
        person_site=psite,
        person_work=work,
        person_dest=dest,
        person_dest_site=dsite,
        person_depart=depart,
        person_return=ret,
        sim_person=sim_person,
        sim_msisdn=msisdn.astype(np.int64),
        sim_start=sim_start,
        sim_end=sim_end,
        sim_rate=rate,
        contacts=contacts,
        n_contacts=k,
        outage_units=outage,
        seed_state=rng,
    )


def _gravity_draw(rng: np.random.Generator, weights: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """One destination per element, drawn from the row ``weights[origin]`` (loop over rows)."""
    out = np.empty(origin.size, dtype=np.int64)
    cum = np.cumsum(weights, axis=1)
    u = rng.random(origin.size)
    for o in np.unique(origin):
        sel = origin == o
        out[sel] = np.minimum(np.searchsorted(cum[o], u[sel] * cum[o, -1], side="right"), weights.shape[1] - 1)
    return out


def cells_frame(world: World) -> pl.DataFrame:
    """The cells file: 3 co-located cells per site, integer ids, valid over the whole run."""
    n = world.site_unit.size
    site = np.repeat(np.arange(n), 3)
    return pl.DataFrame(
        {
            "cell_id": np.arange(3 * n, dtype=np.int64) + 1,
            "site_id": site + 1,
            "version": np.zeros(3 * n, dtype=np.int64),
            "lon": world.site_lon[site],
            "lat": world.site_lat[site],
            "valid_from": pl.Series([None] * (3 * n), dtype=pl.Date),
            "valid_to": pl.Series([None] * (3 * n), dtype=pl.Date),
        }
    )


def truth_frame(world: World, cfg: SynthConfig) -> pl.DataFrame:
    """Ground truth per SIM: raw number, person, true home, displacement and its dates."""
    codes = world.units["admin3"].to_numpy()
    p = world.sim_person
    dest = world.person_dest[p]

    def day(idx: np.ndarray) -> pl.Expr:
        s = pl.Series(np.where(idx < NEVER, idx, -1))
        return pl.when(pl.lit(s) >= 0).then(pl.lit(cfg.start) + pl.duration(days=pl.lit(s)))

    frame = pl.DataFrame(
        {
            "msisdn": world.sim_msisdn,
            "person_id": p,
            "home_pcode": codes[world.person_home[p]],
            "displaced": dest >= 0,
            "dest_pcode": codes[np.maximum(dest, 0)],
        }
    )
    return frame.with_columns(
        pl.when(pl.col("displaced")).then(pl.col("dest_pcode")).alias("dest_pcode"),
        day(world.person_depart[p]).alias("departed_on"),
        day(world.person_return[p]).alias("returned_on"),
        day(world.sim_start).alias("sim_start"),
        day(world.sim_end).alias("sim_end"),
    )
