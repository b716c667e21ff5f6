"""Disclosure-risk measures, each computed on the key table (see :mod:`safemicro.keys`)."""

from safemicro.risk.individual import (
    global_risk,
    household_risk,
    individual_risk,
    k_anonymity_violations,
    record_threshold,
    risky_records,
)

__all__ = [
    "global_risk",
    "household_risk",
    "individual_risk",
    "k_anonymity_violations",
    "record_threshold",
    "risky_records",
]
