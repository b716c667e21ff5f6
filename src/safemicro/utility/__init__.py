"""Utility: how much a released dataset differs from the original.

Numeric information loss (IL1, IL1s, eigen, interval disclosure), distances between
categorical distributions and two-way tables, design-based estimates with confidence
intervals, correlations and regressions — and :func:`compare`, which gathers them into the
utility section of the report.
"""

from safemicro.risk.numeric import interval_disclosure
from safemicro.utility.compare import compare
from safemicro.utility.design import Design, make_design
from safemicro.utility.estimates import ci_overlap, compare_indicator, estimate
from safemicro.utility.models import compare_regression, fit_regression
from safemicro.utility.numeric import (
    correlation_max_diff,
    eigen,
    il1,
    il1s,
    numeric_loss,
    quantiles,
)
from safemicro.utility.tables import hellinger, joint_codes, pair_distances, tvd

__all__ = [
    "Design",
    "ci_overlap",
    "compare",
    "compare_indicator",
    "compare_regression",
    "correlation_max_diff",
    "eigen",
    "estimate",
    "fit_regression",
    "hellinger",
    "il1",
    "il1s",
    "interval_disclosure",
    "joint_codes",
    "make_design",
    "numeric_loss",
    "pair_distances",
    "quantiles",
    "tvd",
]
