"""What an assessment reads beside the data: the population file for k-map and δ-presence
(the sensitive variables' distances are :func:`safemicro.methods.target_classes.attribute_settings`)."""

from __future__ import annotations

from pathlib import Path

from safemicro.io import Dataset
from safemicro.plan import Plan

__all__ = ["load_population"]


def load_population(population: Dataset | str | Path | None, plan: Plan | None) -> Dataset | None:
    """The population as a Dataset: given, or the plan's ``population:`` file (relative to the plan)."""
    if population is None and plan is not None and plan.population:
        population = Path(plan.source).parent / plan.population if plan.source else Path(plan.population)
    if population is None or isinstance(population, Dataset):
        return population
    from safemicro.io import read

    return read(population)
