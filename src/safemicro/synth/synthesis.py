"""One call from data to a safeguarded synthetic file: ``safemicro.synthesize``.

Picks the synthesizer (sequential CART; household-relational when the plan or the caller
names a household id; differentially private MST with ``epsilon``), fits it, samples, and
applies the copy safeguards before anything is returned:

* replicated uniques on the key variables are replaced by fresh draws (whole households in
  household mode), so no record that is unique in the training data comes back;
* the Q_δ distance-to-closest-record check against its bootstrap threshold is run and its
  verdict reported (``passed``); exact-match rates against the training data are reported.

In DP mode (``epsilon``) the output is never changed after the fact (that would look at the
data again outside the privacy budget): the checks are measured for the report only, the
record count is the model's noisy one, and without a seed the noise comes from OpenDP's
secure sampler.

The report is JSON-friendly; it holds the seed, so it is internal (never publish it next to
the synthetic file).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from safemicro import __version__
from safemicro.errors import SafemicroError
from safemicro.io import Dataset, from_frame, read, write
from safemicro.methods.base import rng_for, take_rows
from safemicro.plan import Plan, Roles, load_plan

__all__ = ["Synthesis", "synthesize"]

MAX_REDRAWS = 10  # rounds of fresh draws replacing replicated uniques
Q_DELTA_POOL = 200_000  # Q_δ draws from a uniform subset of this many rows of each file


@dataclass
class Synthesis:
    """A synthetic dataset and the internal report of how it was made."""

    dataset: Dataset
    report: dict[str, Any]

    def write(self, path: str | os.PathLike[str]) -> Path:
        return write(self.dataset, path)


def synthesize(
    data: Any,
    *,
    plan: Plan | str | os.PathLike[str] | None = None,
    n: int | None = None,
    seed: int | None = None,
    epsilon: float | None = None,
    delta: float = 1e-6,
    household: str | None = None,
    keys: list[str] | None = None,
    check_copies: bool = True,
    synthesizer: Any = None,
    hierarchies: list[str | os.PathLike[str]] | None = None,
    fit_sample: int | None = None,
) -> Synthesis:
    """Synthesize ``data`` (a path, Dataset or frame); see the module docstring.

    ``n`` is the number of records (households in household mode; default: as many as the
    input). Direct identifiers (the plan's, or those detected as ``safemicro init`` detects
    them when there is no plan) are removed, never synthesized. ``keys`` are the variables
    for the replicated-uniques safeguard (default: the plan's keys, else every column except
    ids and weights). ``synthesizer`` replaces the built-in model by any object with
    ``fit(dataset, seed=)`` and ``sample(n, seed=)``: the safeguards still apply.
    ``hierarchies`` are files of public hierarchies for DP mode (see
    :func:`safemicro.synth.dp_domain.load_hierarchy`).
    """
    if plan is not None and not isinstance(plan, Plan):
        plan = load_plan(plan)
    dataset = (
        read(data)
        if isinstance(data, (str, os.PathLike))
        else (data if isinstance(data, Dataset) else from_frame(data))
    )
    roles = plan.roles if plan is not None else Roles()
    if plan is not None:
        plan.check_columns(dataset.columns, dataset.source)
    household = household or roles.household
    if household is not None and household not in dataset.columns:
        raise SafemicroError("no such column (household id)", file=dataset.source, column=household)
    notes: list[str] = []
    direct_ids = list(roles.direct_ids)
    if plan is None:  # names, phones, ID numbers, GPS: found as `safemicro init` finds them
        from safemicro.draft import draft_plan

        direct_ids = list(draft_plan(dataset).plan.roles.direct_ids)
    if direct_ids:
        dataset = dataset.with_frame(dataset.frame.drop(direct_ids))
        found = "" if plan is not None else " (detected; give a plan to decide yourself)"
        notes.append(f"direct identifiers not synthesized, removed{found}: {', '.join(direct_ids)}")
    if dataset.n < 2:
        raise SafemicroError("need at least 2 records to synthesize", file=dataset.source)
    if n is not None and int(n) < 1:
        raise SafemicroError(f"n must be at least 1, got {n!r}")
    dp = epsilon is not None and synthesizer is None
    if hierarchies and not dp:
        raise SafemicroError("public hierarchies are used by DP synthesis only (give epsilon)")
    user_seed = seed
    rng, seed = rng_for(seed)
    fit_seed, sample_seed, check_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=3))
    if dp and user_seed is None:
        fit_seed = None  # DP noise from OpenDP's secure sampler, not a seeded generator

    t0 = time.perf_counter()
    if synthesizer is not None:
        model, method, params = synthesizer, type(synthesizer).__name__, {}
    else:
        model, method, params = _model(epsilon, delta, household, roles, hierarchies)
    from safemicro.synth.fit_sample import fit_rows, fit_size

    unit = household if not dp else None
    n_fit = fit_size(_units(dataset, unit) if unit is not None else dataset.n, fit_sample, dp)
    train = dataset if n_fit is None else fit_rows(dataset, n_fit, unit, np.random.default_rng(fit_seed))
    if n_fit is not None:
        what = "households" if unit else "records"
        notes.append(f"fitted on a simple random sample of {n_fit:,} {what} (bound: safemicro.synth.fit_sample)")
    model.fit(train, seed=fit_seed)
    fitted = time.perf_counter()
    if dp and household is not None:
        notes.append("DP mode synthesizes records, not households: household structure is not kept")
    if n is not None:
        size = int(n)
    elif dp:
        size = None  # the record count is private too: the model's noisy count is used
    else:
        size = _units(dataset, unit) if unit is not None else dataset.n
    synth = model.sample(size, seed=sample_seed)
    sampled = time.perf_counter()

    keys = list(keys) if keys is not None else (list(roles.keys) or _default_keys(dataset, roles, household))
    safeguards: dict[str, Any] = {}
    if check_copies:
        from safemicro.synth.safeguards import exact_match_rates, q_delta_check, replicated_uniques

        if dp:  # changing the output after looking at the data again would void the guarantee
            safeguards["replicated_uniques"] = {
                "keys": keys,
                "found": int(replicated_uniques(dataset.frame, synth.frame, keys).sum()),
                "unit": "record",
                "units_replaced": 0,
                "note": "measured only: DP output is not altered after the fact",
            }
        else:
            synth, safeguards["replicated_uniques"] = _replace_replicated_uniques(
                dataset, synth, keys, model, sample_seed, unit
            )
        compare = [c for c in dataset.columns if c != household]
        safeguards["exact_matches"] = exact_match_rates(synth.frame, dataset.frame, columns=compare)
        pool = _q_delta_pool(dataset.frame.select(compare), synth.frame.select(compare), check_seed)
        check = q_delta_check(*pool, seed=check_seed)
        check.pop("null", None)
        if pool[0].height < dataset.n:
            check["pool"] = {"training": pool[0].height, "synthetic": pool[1].height}
        safeguards["q_delta"] = check
        if not check["passed"]:
            notes.append(
                f"Q_δ = {check['q_delta']:.4f} is above its bootstrap threshold {check['threshold']:.4f}: "
                "synthetic records sit closer to real ones than fresh real records do; review before release"
            )
    checked = time.perf_counter()
    notes += list(getattr(model, "notes", []))
    report = {
        "safemicro_version": __version__,
        "input": {
            "file": dataset.source and Path(dataset.source).name,
            "n_records": dataset.n,
            "variables": dataset.columns,
        },
        "method": method,
        "params": params,
        "fit_sample": None if n_fit is None else {"n": n_fit, "unit": "household" if unit else "record"},
        "seed": seed,
        "n_records": synth.n,
        "household": unit,
        "privacy": getattr(model, "privacy", None) or None,
        "keys": keys,
        "safeguards": safeguards,
        "timings_seconds": {
            "fit": round(fitted - t0, 3),
            "sample": round(sampled - fitted, 3),
            "safeguards": round(checked - sampled, 3),
        },
        "notes": notes,
    }
    return Synthesis(dataset=synth, report=report)


def _q_delta_pool(train: pl.DataFrame, synth: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Uniform random subsets of at most :data:`Q_DELTA_POOL` rows of both files. Q_δ draws
    at most 6 000 training and 1 000 synthetic rows per round uniformly; drawing them from a
    uniform subset is the same as drawing them from the whole file, and the check's dense
    embedding (one float per category per record) then stays ~0.1 GB instead of ~15 GB at
    10M records. Only the embedding's scaling is fitted on the subset."""
    if train.height <= Q_DELTA_POOL and synth.height <= Q_DELTA_POOL:
        return train, synth
    take = [
        f.sample(Q_DELTA_POOL, seed=seed + i) if f.height > Q_DELTA_POOL else f for i, f in enumerate((train, synth))
    ]
    return take[0], take[1]


def _model(epsilon: float | None, delta: float, household: str | None, roles: Roles, hierarchies=None):
    if epsilon is not None:
        from safemicro.synth.dp import DPSynthesizer
        from safemicro.synth.dp_domain import load_hierarchy

        tables = [load_hierarchy(p) for p in hierarchies or []]
        model = DPSynthesizer(epsilon, delta, hierarchies={c: (p, m) for c, p, m in tables})
        params = {"epsilon": epsilon, "delta": delta} | (
            {"hierarchies": [[c, p] for c, p, _ in tables]} if tables else {}
        )
        return model, "mst", params
    if household is not None:
        from safemicro.synth.household import HouseholdSynthesizer

        # household-level variables are found from the data (every column constant within
        # every household), not only the keys the plan marks as household-level
        return HouseholdSynthesizer(household), "household-cart", {"household": household}
    from safemicro.synth.cart import CartSynthesizer

    model = CartSynthesizer()
    params = {name: getattr(model, name) for name in ("min_leaf", "smoothing", "min_count", "tail_k")}
    return model, "cart", params


def _units(ds: Dataset, household: str) -> int:
    """Number of households."""
    return int(ds.frame[household].n_unique())


def _default_keys(ds: Dataset, roles: Roles, household: str | None) -> list[str]:
    """Every column except ids and design variables: a whole-record copy of a unique person."""
    skip = {household, roles.weight, roles.strata, roles.cluster}
    return [c for c in ds.columns if c not in skip]


def _replace_replicated_uniques(
    train: Dataset, synth: Dataset, keys: list[str], model: Any, seed: int, household: str | None
) -> tuple[Dataset, dict[str, Any]]:
    """Replace synthetic records that replicate a training unique by fresh draws.

    In household mode whole households are replaced, each by a fresh household of the same
    size, so the safeguard does not shift the household-size distribution. After
    MAX_REDRAWS rounds what is still missing is left out (reported)."""
    from safemicro.synth.safeguards import replicated_uniques

    bad = replicated_uniques(train.frame, synth.frame, keys)
    found = int(bad.sum())
    unit, size = _units_of(synth, household)
    bad_units = np.unique(unit[bad])
    kept = take_rows(synth, np.flatnonzero(~np.isin(unit, bad_units)))
    need = np.bincount(size[bad_units]) if len(bad_units) else np.zeros(1, dtype=np.int64)
    rounds = 0
    while need.sum() > 0 and rounds < MAX_REDRAWS:
        rounds += 1
        extra = model.sample(int(max(3 * need.sum(), 8)), seed=seed + 1000 + rounds)
        extra_bad = replicated_uniques(train.frame, extra.frame, keys)
        e_unit, e_size = _units_of(extra, household)
        clean = np.setdiff1d(np.arange(len(e_size)), e_unit[extra_bad])
        chosen = []
        for s_ in np.flatnonzero(need):
            pick = clean[e_size[clean] == s_][: need[s_]]
            need[s_] -= len(pick)
            chosen.append(pick)
        picked = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
        kept = _append(kept, take_rows(extra, np.flatnonzero(np.isin(e_unit, picked))), household)
    left = int(need.sum())
    return kept, {
        "keys": keys,
        "found": found,
        "unit": "household" if household else "record",
        "units_replaced": int(len(bad_units)) - left,
        "units_dropped": left,
        "rounds": rounds,
    }


def _units_of(ds: Dataset, household: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Unit index per row (households, or each row its own) and the size of each unit."""
    if household is None:
        return np.arange(ds.n), np.ones(ds.n, dtype=np.int64)
    unit = ds.frame[household].rank("dense").cast(pl.Int64).to_numpy() - 1
    return unit, np.bincount(unit)


def _append(ds: Dataset, extra: Dataset, household: str | None) -> Dataset:
    """Rows of ``extra`` after those of ``ds``; household ids renumbered 1..H in file order."""
    frame = pl.concat([ds.frame, extra.frame.cast(ds.frame.schema)], how="vertical")
    if household is not None:
        offset = int(ds.frame[household].max() or 0)
        new = pl.concat([ds.frame[household], extra.frame[household].cast(ds.frame.schema[household]) + offset])
        renumbered = new.rank("dense").cast(ds.frame.schema[household])
        frame = frame.with_columns(renumbered.alias(household))
    return ds.with_frame(frame)
