"""Plan steps that call their method with the step's parameters (``calls`` and
``StepParams.arguments``): each receives exactly the keyword arguments its hand-written
adapter passed before, with the roles resolved from the context and the step's own seed.

The expected dictionaries are written out by hand from the methods' signatures."""

from __future__ import annotations

import inspect

import pytest

from safemicro.methods.aggregation import microaggregation
from safemicro.methods.base import STEPS, StepContext
from safemicro.methods.identifiers import new_ids
from safemicro.methods.perturb import add_noise, rank_swap, shuffle
from safemicro.methods.randomization import pram
from safemicro.methods.sampling import subsample
from safemicro.plan import Roles, Targets

ROLES = Roles(
    keys=["rent"], numeric_keys=["income", "age"], household="hh", household_level=["rent"], strata="region", weight="w"
)
CTX = StepContext(ROLES, Targets(), 1.0, 41, 2, ("hh", "income", "age", "rent", "region", "w", "sex", "id"))

CASES = [
    (
        "noise",
        add_noise,
        {"amount": 0.1},
        {
            "variables": ["income", "age"],
            "amount": 0.1,
            "method": "additive",
            "household": None,
            "seed": 41,
            "block": 50,
            "outlier_amount": None,
            "alpha": 0.975,
        },
    ),
    (
        "noise",
        add_noise,
        {"variables": ["rent"], "seed": 5},
        {
            "variables": ["rent"],
            "amount": 0.01,
            "method": "additive",
            "household": "hh",
            "seed": 5,
            "block": 50,
            "outlier_amount": None,
            "alpha": 0.975,
        },
    ),
    ("rank_swap", rank_swap, {"p": 10}, {"variables": ["income", "age"], "p": 10.0, "household": None, "seed": 41}),
    (
        "shuffle",
        shuffle,
        {"by": "sex"},
        {"variables": ["income", "age"], "by": ["sex"], "household": None, "seed": 41},
    ),
    ("shuffle", shuffle, {}, {"variables": ["income", "age"], "by": None, "household": None, "seed": 41}),
    ("new_ids", new_ids, {"record": "id"}, {"household": "hh", "record": "id", "shuffle_rows": True, "seed": 41}),
    (
        "new_ids",
        new_ids,
        {"variable": "id", "shuffle_rows": False},
        {"household": "id", "record": None, "shuffle_rows": False, "seed": 41},
    ),
    (
        "pram",
        pram,
        {"variables": ["sex"], "strata": "region", "keep": 0.7},
        {
            "variables": ["sex"],
            "matrix": None,
            "keep": 0.7,
            "invariant": False,
            "strata": ["region"],
            "alpha": 0.5,
            "household": None,
            "seed": 41,
        },
    ),
    (
        "subsample",
        subsample,
        {"fraction": 0.5, "households": True},
        {
            "fraction": 0.5,
            "n": None,
            "by": "hh",
            "strata": ["region"],
            "weight": "w",
            "weight_name": "weight",
            "seed": 41,
        },
    ),
    (
        "subsample",
        subsample,
        {"n": 10, "strata": []},
        {"fraction": None, "n": 10, "by": None, "strata": None, "weight": "w", "weight_name": "weight", "seed": 41},
    ),
    (
        "microaggregation",
        microaggregation,
        {"variables": ["rent"], "k": 4},
        {
            "variables": ["rent"],
            "k": 4,
            "method": "mdav",
            "strata": None,
            "household": "hh",
            "weights": None,
            "seed": 41,
        },
    ),
]


@pytest.mark.parametrize(("step", "function", "given", "expected"), CASES)
def test_step_passes_its_parameters_and_resolved_roles(step, function, given, expected):
    params = STEPS[step].params.model_validate(given)
    arguments = params.arguments(CTX)
    assert arguments == expected
    # every argument is one the method takes
    assert set(arguments) <= set(inspect.signature(function).parameters)
