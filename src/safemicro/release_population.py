"""The plan's population in the release's coding, for the risk-after k-map and δ-presence.

A release whose keys were recoded (age in bands, top coded) no longer matches the
population's raw values; the plan's recodes (:func:`safemicro.pipeline.in_released_coding`)
are applied to the population too, so released and population keys compare like with like.
Perturbative steps (PRAM, noise) cannot be replayed on people who are not in the data: their
released values are compared with the population's as they are.
"""

from __future__ import annotations

from safemicro.assess_inputs import load_population
from safemicro.io import Dataset
from safemicro.pipeline import PreparedStep, in_released_coding
from safemicro.plan import Plan


def population_after(plan: Plan, steps: list[PreparedStep]) -> Dataset | None:
    """The plan's ``population:`` file with the plan's recodes applied, or None without one."""
    population = load_population(None, plan)
    return None if population is None else in_released_coding(population, steps)[0]
