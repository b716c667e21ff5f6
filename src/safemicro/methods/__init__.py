"""Anonymization methods: pure functions on a Dataset returning (dataset, change record).

Importing this package registers every method's plan step in :data:`STEPS`.

>>> from safemicro.methods import local_suppression
>>> ds, change = local_suppression(ds, keys=["camp", "sex", "age"], k=3)  # doctest: +SKIP
"""

from safemicro.methods.aggregation import microaggregation
from safemicro.methods.aggregation_optimal import microaggregation_optimal
from safemicro.methods.base import STEPS, Change, MethodResult, StepContext, StepParams
from safemicro.methods.identifiers import new_ids, remove_variables
from safemicro.methods.perturb import add_noise, rank_swap, shuffle
from safemicro.methods.pseudonymise import pseudonymise
from safemicro.methods.randomization import pram
from safemicro.methods.recode import global_recode, top_bottom_code
from safemicro.methods.sampling import subsample
from safemicro.methods.search import recode_search, search_levels
from safemicro.methods.search_targets import SearchTargets
from safemicro.methods.suppression import local_suppression, suppress_by_risk
from safemicro.methods.suppression_combinations import suppress_combinations
from safemicro.methods.suppression_targets import target_suppression
from safemicro.methods.swapping import record_swap
from safemicro.methods.target_classes import ClassTargets
from safemicro.methods.topcoding_mv import mv_top_code

__all__ = [
    "STEPS",
    "Change",
    "ClassTargets",
    "MethodResult",
    "StepContext",
    "StepParams",
    "add_noise",
    "global_recode",
    "local_suppression",
    "suppress_combinations",
    "microaggregation",
    "microaggregation_optimal",
    "mv_top_code",
    "new_ids",
    "pram",
    "pseudonymise",
    "rank_swap",
    "record_swap",
    "recode_search",
    "remove_variables",
    "search_levels",
    "SearchTargets",
    "shuffle",
    "subsample",
    "suppress_by_risk",
    "target_suppression",
    "top_bottom_code",
]
