"""What an assessment reads beside the data: the distances (and hierarchies) of the sensitive
variables for t-closeness, and the population file for k-map and δ-presence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.plan import AttributeDisclosure, Plan

__all__ = ["attribute_settings", "load_population"]


def attribute_settings(
    dataset: Dataset, sensitive: list[str], attribute: AttributeDisclosure | None
) -> dict[str, dict[str, Any]]:
    """The EMD of each sensitive variable (the plan's, else ordered for ordinal and scale
    variables and unlabelled numbers, equal for nominal ones) and its parsed hierarchy."""
    from safemicro.methods.recode_hierarchy import read_hierarchy

    given = attribute.distance if attribute else {}
    distance, hierarchies = {}, {}
    for name in sensitive:
        meta = dataset.codebook.meta(name)
        ordered = meta.measure in ("ordinal", "scale") or (
            meta.measure == "unknown" and dataset.frame.schema[name].is_numeric() and not meta.value_labels
        )
        distance[name] = given.get(name) or ("ordered" if ordered else "equal")
        if distance[name] == "hierarchical":
            if not attribute or name not in attribute.hierarchy:
                raise SafemicroError(
                    "attribute_disclosure.distance is hierarchical but no hierarchy is given", column=name
                )
            hierarchies[name] = read_hierarchy(attribute.hierarchy[name], variable=name)
    return {"distance": distance, "hierarchies": hierarchies}


def load_population(population: Dataset | str | Path | None, plan: Plan | None) -> Dataset | None:
    """The population as a Dataset: given, or the plan's ``population:`` file (relative to the plan)."""
    if population is None and plan is not None and plan.population:
        population = Path(plan.source).parent / plan.population if plan.source else Path(plan.population)
    if population is None or isinstance(population, Dataset):
        return population
    from safemicro.io import read

    return read(population)
