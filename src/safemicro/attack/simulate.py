"""Simulation study: is "k = 3" or "global risk < 1 %" really safe against an intruder?

From a population (by default the example forced-displacement survey generated at
population size), the study

1. draws a survey sample of whole households, stratified by site, with design weights
   N_h/n_h (households in the site's population over households sampled);
2. applies each release plan to the sample (``safemicro.anonymize``) and reads the
   frequency-based risk the plan promises (sdcMicro's global risk: expected
   re-identifications from the individual risks, and household risk);
3. builds the intruder's file from the population: a registration list covering a share
   ``coverage`` of the households, with each key value wrong with probability
   ``error_rate`` (replaced by a value drawn from the key's population distribution),
   coded as the release is (the release's recodes are published, so the intruder applies
   them too);
4. attacks: exact linkage of every listed person to the release (missing = wildcard), and
   a household attack — the intruder knows each listed household's whole composition and
   looks for released households of that size whose members are all compatible;
5. reports the measured re-identifications next to the promised ones.

Person identities are carried through the plan in a tracking column that no step touches
and that is dropped before any attack; they serve scoring only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any

import numpy as np
import polars as pl

from safemicro.attack.household import household_attack as household_attack
from safemicro.attack.linkage import LinkageEvaluator
from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.jsonable import json_ready
from safemicro.plan import Plan, Utility, load_plan

__all__ = ["simulate", "default_releases", "draw_sample", "intruder_file", "household_attack"]

PERSON = "__safemicro_person"
HARMONISE = ("recode", "topcode", "bottomcode")  # published, deterministic: the intruder applies them


def _example_plan() -> Plan:
    return load_plan(str(files("safemicro.examples") / "survey_plan.yaml"))


def default_releases() -> dict[str, Plan]:
    """raw (direct identifiers removed), the example SUF plan at k = 3 and at k = 5, and a
    PRAM release (the same recodes, age band and relationship post-randomised, origin
    post-randomised per household, no suppression)."""
    base = _example_plan().model_copy(update={"utility": Utility()})
    steps = base.steps
    recodes = [s for s in steps if next(iter(s)) in HARMONISE]
    new_ids = [s for s in steps if next(iter(s)) == "new_ids"]

    def with_k(k: int) -> list[dict[str, Any]]:
        out = []
        for s in steps:
            ((name, params),) = s.items()
            out.append({name: {**params, "k": k}} if name == "local_suppression" else s)
        return out

    pram = [
        {"remove_direct_ids": {}},
        *recodes,
        {"pram": {"variables": ["age", "relationship"], "keep": 0.8}},
        {"pram": {"variables": ["origin"], "keep": 0.8}},
        *new_ids,
    ]
    make = lambda st, k: base.model_copy(update={"steps": st, "targets": base.targets.model_copy(update={"k": k})})  # noqa: E731
    return {
        "raw": make([{"remove_direct_ids": {}}], 3),
        "k=3": make(with_k(3), 3),
        "k=5": make(with_k(5), 5),
        "PRAM": make(pram, 3),
    }


def draw_sample(
    pop: Dataset, *, fraction: float, household: str, strata: str | None, rng: np.random.Generator, weight: str | None
) -> Dataset:
    """Whole households, a share ``fraction`` within each stratum (at least one), with the
    design weight N_h/n_h on every member."""
    f = pop.frame
    hh = f.select(household, *([strata] if strata else [])).unique(household, maintain_order=True)
    if strata is None:
        hh = hh.with_columns(pl.lit(1).alias("__stratum"))
        strata_col = "__stratum"
    else:
        strata_col = strata
    hh = hh.with_columns(pl.Series("__u", rng.random(hh.height)))
    hh = hh.with_columns(
        pl.col("__u").rank("ordinal").over(strata_col).alias("__rank"), pl.len().over(strata_col).alias("__N")
    )
    hh = hh.with_columns((pl.col("__N") * fraction).round().clip(lower_bound=1).cast(pl.Int64).alias("__n"))
    chosen = hh.filter(pl.col("__rank") <= pl.col("__n")).select(
        household, (pl.col("__N") / pl.col("__n")).alias("__w")
    )
    sample = f.join(chosen, on=household, how="inner", maintain_order="left")
    if weight:
        sample = sample.with_columns(pl.col("__w").cast(pl.Float64).alias(weight))
    return pop.with_frame(sample.drop("__w"))


def intruder_file(
    pop: Dataset,
    keys: Sequence[str],
    *,
    coverage: float,
    error_rate: float,
    household: str | None,
    rng: np.random.Generator,
) -> Dataset:
    """The intruder's list: households covered with probability ``coverage``, each key
    value wrong with probability ``error_rate`` (a draw from the key's population values)."""
    f = pop.frame
    if household:
        hh = f.get_column(household).unique(maintain_order=True)
        keep = hh.filter(pl.Series(rng.random(len(hh)) < coverage))
        f = f.filter(pl.col(household).is_in(keep.implode()))
    else:
        f = f.filter(pl.Series(rng.random(f.height) < coverage))
    cols = []
    for k in keys:
        s = f.get_column(k)
        wrong = rng.random(f.height) < error_rate
        if wrong.any():
            donors = pop.frame.get_column(k).gather(pl.Series(rng.integers(0, pop.n, int(wrong.sum()))))
            s = s.clone().scatter(np.flatnonzero(wrong), donors)
        cols.append(s)
    return pop.with_frame(f.with_columns(cols))


def _harmonise(intruder: Dataset, plan: Plan, released_columns: Sequence[str]) -> Dataset:
    """Apply the plan's published recodes to the intruder's list."""
    from safemicro.pipeline import prepare_steps, run_steps

    steps = [s for s in plan.steps if next(iter(s)) in HARMONISE]
    if not steps:
        return intruder
    sub = plan.model_copy(update={"steps": steps})
    prepared = prepare_steps(sub, intruder.columns, seed=plan.seed or 0)
    return run_steps(intruder, prepared)[0]


def _weight_note(plan: Plan) -> str | None:
    return plan.roles.weight


def simulate(
    population: Dataset | pl.DataFrame | None = None,
    *,
    n_households: int = 10_000,
    sample_fraction: float = 0.1,
    releases: Mapping[str, Plan | str] | None = None,
    coverage: float = 1.0,
    error_rate: float = 0.0,
    keys: Sequence[str] | None = None,
    threshold: float = 0.5,
    households: bool = True,
    seed: int = 1,
    progress: Any = None,
) -> dict[str, Any]:
    """Run the simulation study (see the module docstring); returns a JSON-ready dict.

    ``population``: a Dataset or frame with the plans' columns (default: the example
    survey with ``n_households`` households, generated with ``seed``). ``releases``: name →
    plan (a :class:`Plan` or a YAML path; default :func:`default_releases`). ``keys``: what
    the intruder knows (default: each plan's keys).
    """
    from safemicro.examples.survey import generate_survey
    from safemicro.release import anonymize

    if not 0 < sample_fraction <= 1:
        raise SafemicroError(f"sample_fraction must lie in (0, 1], got {sample_fraction}")
    if not 0 < coverage <= 1:
        raise SafemicroError(f"coverage must lie in (0, 1], got {coverage}")
    if not 0 <= error_rate < 1:
        raise SafemicroError(f"error_rate must lie in [0, 1), got {error_rate}")
    rng = np.random.default_rng(seed)
    if population is None:
        pop = generate_survey(n_households=n_households, seed=seed)
        source = f"example survey, {n_households} households"
    else:
        pop = population if isinstance(population, Dataset) else Dataset(population)
        source = pop.source or "given population"
    if pop.n == 0:
        raise SafemicroError("the population has no records", file=pop.source)
    plans = (
        default_releases()
        if releases is None
        else {name: (p if isinstance(p, Plan) else load_plan(p)) for name, p in releases.items()}
    )
    if not plans:
        raise SafemicroError("no release plan to simulate")
    first = next(iter(plans.values()))
    household = first.roles.household
    strata = first.roles.strata
    pop = pop.with_frame(pop.frame.with_columns(pl.int_range(0, pop.n, dtype=pl.Int64).alias(PERSON)))
    sample = (
        draw_sample(
            pop, fraction=sample_fraction, household=household, strata=strata, rng=rng, weight=first.roles.weight
        )
        if household
        else pop.with_frame(pop.frame.filter(pl.Series(rng.random(pop.n) < sample_fraction)))
    )
    out: dict[str, Any] = {
        "kind": "simulation",
        "population": {
            "source": source,
            "n_records": pop.n,
            "n_households": pop.frame.get_column(household).n_unique() if household else None,
        },
        "sample": {
            "fraction": sample_fraction,
            "n_records": sample.n,
            "n_households": sample.frame.get_column(household).n_unique() if household else None,
            "design": f"whole households, stratified by {strata}" if strata else "simple random",
        },
        "intruder": {"coverage": coverage, "error_rate": error_rate, "threshold": threshold},
        "releases": [],
    }
    for name, plan in plans.items():
        if progress:
            progress(f"release {name}")
        plan = plan.model_copy(update={"utility": Utility(), "seed": plan.seed if plan.seed is not None else seed})
        if not plan.roles.keys:
            raise SafemicroError(
                f"release {name!r}: the plan has no categorical keys, so there is no "
                "frequency-based risk for the simulation to check"
            )
        release = anonymize(sample, plan, show_progress=False)
        released = release.dataset.frame
        if PERSON not in released.columns:
            raise SafemicroError(f"the plan of release {name!r} removed the records' tracking column")
        know = list(keys) if keys is not None else [k for k in plan.roles.keys if k in released.columns]
        if not know:
            raise SafemicroError(f"release {name!r}: the intruder knows none of the released columns")
        intr = intruder_file(
            pop,
            know,
            coverage=coverage,
            error_rate=error_rate,
            household=household,
            rng=np.random.default_rng([seed, 17]),
        )
        intr = _harmonise(intr, plan, released.columns)
        aux = intr.frame.select(PERSON, *know)
        ev = LinkageEvaluator(
            released.drop(PERSON),
            aux,
            truth=PERSON,
            release_ids=released.get_column(PERSON),
            on=know,
            threshold=threshold,
        ).evaluate()
        res = ev.results()
        risk = release.report["risk_after"]
        entry: dict[str, Any] = {
            "name": name,
            "steps": [next(iter(s)) for s in plan.steps],
            "n_released": released.height,
            "intruder_keys": know,
            "frequency": {
                "global_risk_percent": risk["global_risk"]["percent"],
                "expected_reidentifications": risk["global_risk"]["expected_reidentifications"],
                "household_risk_percent": (risk.get("household_risk") or {}).get("percent"),
                "sample_uniques": risk["k_anonymity"]["n_sample_uniques"],
                "k_violations": risk["k_anonymity"]["violations"],
                "perturbative": any(s["perturbative"] for s in release.report["steps"]),
            },
            "measured": {
                "expected_reidentifications": res["release_side"]["expected_correct"],
                "reidentification_rate": res["release_side"]["reidentification_rate"],
                "reidentification_rate_ci": res["release_side"]["reidentification_rate_ci"],
                "records_with_one_candidate": res["release_side"]["one_candidate"],
                "records_with_one_candidate_correct": res["release_side"]["one_candidate_correct"],
                "expected_correct": res["expected_correct"],
                "true_match_rate": res["true_match_rate"],
                "true_match_rate_ci": res.get("true_match_rate_ci"),
                "precision": res["precision"],
                "reidentified": res["reidentified"],
                "reidentified_correct": res["reidentified_correct"],
                "reidentified_precision": res["reidentified_precision"],
                "baseline_rate": (res["baseline_rate"] or {}).get("value"),
                "n_listed": res["n_auxiliary"],
                "n_listed_in_release": res["n_in_release"],
            },
            "drivers": res["drivers"],
            "groups": res["groups"],
        }
        if households and household and household in released.columns:
            hh_intr = intr.frame.select(PERSON, household, *know).rename({household: "__listed_hh"})
            entry["households"] = household_attack(
                released, hh_intr, know, household=household, intruder_household="__listed_hh", truth=PERSON
            )
        out["releases"].append(entry)
    out["notes"] = [
        "measured re-identifications are expected values: among k candidates the intruder picks one at random",
        "frequency-based risk is sdcMicro's global risk on the released file (individual risks from fk and Fk); "
        "after PRAM it is computed on the perturbed keys, which an attack shows it misstates",
    ]
    return json_ready(out)
