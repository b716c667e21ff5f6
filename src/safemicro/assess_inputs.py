"""What an assessment reads beside the data: the distances (and hierarchies) of the sensitive
variables for t-closeness, and the population file for k-map and δ-presence."""

from __future__ import annotations

from pathlib import Path

from safemicro.io import Dataset
from safemicro.methods.target_classes import attribute_settings
from safemicro.plan import Plan

__all__ = ["attribute_settings", "load_population"]


def load_population(population: Dataset | str | Path | None, plan: Plan | None) -> Dataset | None:
    """The population as a Dataset: given, or the plan's ``population:`` file (relative to the plan)."""
    if population is None and plan is not None and plan.population:
        population = Path(plan.source).parent / plan.population if plan.source else Path(plan.population)
    if population is None or isinstance(population, Dataset):
        return population
    from safemicro.io import read

    return read(population)
