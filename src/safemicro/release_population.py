"""The plan's population in the release's coding, for the risk-after k-map and δ-presence.

A release whose keys were recoded (age in bands, top coded) no longer matches the
population's raw values; the plan's recodes (:func:`safemicro.pipeline.in_released_coding`)
are applied to the population too, so released and population keys compare like with like,
and so are the levels a ``recode_search`` step chose. Perturbative steps (PRAM, noise) cannot
be replayed on people who are not in the data: their released values are compared with the
population's as they are.
"""

from __future__ import annotations

from safemicro.assess_inputs import load_population
from safemicro.io import Dataset
from safemicro.methods.base import Change
from safemicro.methods.search_space import hierarchy_levels
from safemicro.methods.search_targets import recode_levels
from safemicro.pipeline import PreparedStep, in_released_coding
from safemicro.plan import Plan


def population_after(plan: Plan, steps: list[PreparedStep], changes: list[Change] | None = None) -> Dataset | None:
    """The plan's ``population:`` file with the plan's recodes (and the levels its
    ``recode_search`` steps chose, from their ``changes``) applied, or None without one."""
    population = load_population(None, plan)
    if population is None:
        return None
    population = in_released_coding(population, steps)[0]
    for prepared, change in zip(steps, changes or []):
        if prepared.spec.name == "recode_search":
            hierarchies = prepared.params.hierarchies
            spec = {name: hierarchy_levels(levels, name) for name, levels in hierarchies.items()}
            population = recode_levels(population, spec, change.details["search"]["levels"])
    return population
