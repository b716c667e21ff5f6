"""The risk report's "against the population" section: k-map and δ-presence, from the assess
summary's ``population`` (:mod:`safemicro.risk.population`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .format import fmt_int, fmt_num


def population_context(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Rows for the template, or None when no population was given."""
    section = summary.get("population") if isinstance(summary, Mapping) else None
    if not isinstance(section, Mapping):
        return None
    dp = section.get("delta_presence") or {}
    lo, hi = dp.get("delta_min"), dp.get("delta_max")
    bounds = None if lo is None and hi is None else f"[{fmt_num(lo or 0)}, {fmt_num(1 if hi is None else hi)}]"
    below = section.get("n_records_below_k")
    return {
        "source": section.get("source") or "the population file",
        "n_population": fmt_int(section.get("n_population")),
        "fraction": fmt_num(section.get("sampling_fraction")),
        "k_map": fmt_int(section.get("k_map")),
        "k": section.get("k"),
        "below": fmt_int(below),
        "below_flag": bool(below),
        "missing": fmt_int(section.get("n_records_not_in_population")),
        "missing_flag": bool(section.get("n_records_not_in_population")),
        "delta_lo": fmt_num(dp.get("observed_min")),
        "delta_hi": fmt_num(dp.get("observed_max")),
        "bounds": bounds,
        "outside": fmt_int(dp.get("n_records_outside")),
        "outside_flag": bounds is not None and bool(dp.get("n_records_outside")),
    }
