"""Primary suppression: the provider's policy and the rules a cell fails on its own.

Threshold on the number of contributors, zero cells, (n, k) dominance and p % for
magnitudes; and the interval an analyst knows for a suppressed cell from its rule alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.service.protection_cells import _TOPS


@dataclass(frozen=True)
class ProtectionPolicy:
    """The data provider's protection rules (ACRO-compatible defaults where ACRO has them).

    threshold: cells with 1..threshold-1 contributors are suppressed (ACRO ``safe_threshold``).
    dominance_n, dominance_k: a magnitude cell fails when its ``dominance_n`` largest
        contributions make up at least ``dominance_k`` percent of its total (n <= 3).
    p_percent: a magnitude cell fails when the total less its two largest contributions is
        below ``p_percent`` percent of the largest (the second-largest contributor could
        then estimate the largest within p %).
    secondary: run secondary suppression (off only for tables without relations).
    rounding_base: round released counts and sums to this base (None = exact).
    protection_width: the smallest feasible-interval width a threshold-suppressed count cell
        must keep (None = threshold // 3, at least 1, and never more than the width the rule
        flag itself leaves, threshold - 2).
    protection_percent: for magnitude cells, the interval must be at least this percent of
        the cell total wide (None = p_percent).
    zeros_disclosive: suppress zero cells too (rule "zero"); default releases them.
    hide_presence: treat an empty cell as a small one (rule "threshold", interval
        [0, threshold - 1]), so that "nobody" and "a few" look the same (the service's choice).
    nonnegative: magnitudes are sums of non-negative contributions (lower bound 0 in the LP).
    secondary_method: "heuristic" (grow the pattern, LP-audited) or "optimal" (least total
        suppressed value, a MILP with HiGHS: safemicro.service.protection_optimal).
    """

    threshold: int = 10
    dominance_n: int = 2
    dominance_k: float = 85.0
    p_percent: float = 10.0
    secondary: bool = True
    rounding_base: int | None = None
    protection_width: float | None = None
    protection_percent: float | None = None
    zeros_disclosive: bool = False
    hide_presence: bool = False
    nonnegative: bool = True
    secondary_method: str = "heuristic"

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise SafemicroError(f"threshold must be at least 1, got {self.threshold}")
        if not 1 <= self.dominance_n <= 3:
            raise SafemicroError(f"dominance_n must be 1, 2 or 3, got {self.dominance_n}")
        if not 0 < self.dominance_k <= 100:
            raise SafemicroError(f"dominance_k is a percentage in (0, 100], got {self.dominance_k}")
        if not 0 <= self.p_percent <= 100:
            raise SafemicroError(f"p_percent is a percentage in [0, 100], got {self.p_percent}")
        if self.secondary_method not in ("heuristic", "optimal"):
            raise SafemicroError(f"secondary_method must be 'heuristic' or 'optimal', got {self.secondary_method!r}")
        if self.rounding_base is not None and self.rounding_base < 1:
            raise SafemicroError(f"rounding_base must be a positive integer, got {self.rounding_base}")


def _primary(t: pl.DataFrame, statistic: str, policy: ProtectionPolicy) -> list[str | None]:
    n = t.get_column("n").to_numpy().astype(float)
    rules: list[str | None] = [None] * t.height
    small = ((n > 0) | policy.hide_presence) & (n < policy.threshold)
    zero = (n == 0) & policy.zeros_disclosive
    magnitude = statistic in ("sum", "mean") and "total" in t.columns and not t.get_column("total").is_null().all()
    dom = np.zeros(t.height, dtype=bool)
    ppc = np.zeros(t.height, dtype=bool)
    if magnitude:
        total = t.get_column("total").fill_null(0.0).to_numpy().astype(float)
        tops = np.column_stack([t.get_column(c).fill_null(0.0).to_numpy().astype(float) for c in _TOPS])
        positive = total > 0
        dom = positive & (tops[:, : policy.dominance_n].sum(axis=1) >= policy.dominance_k / 100.0 * total)
        ppc = positive & (total - tops[:, 0] - tops[:, 1] < policy.p_percent / 100.0 * tops[:, 0])
    for i in range(t.height):
        if small[i]:
            rules[i] = "threshold"
        elif zero[i]:
            rules[i] = "zero"
        elif dom[i]:
            rules[i] = "dominance"
        elif ppc[i]:
            rules[i] = "p_percent"
    return rules


def _prior_bounds(rules, suppressed, policy: ProtectionPolicy, statistic: str):
    """Interval of a suppressed cell known from its rule alone (no relations)."""
    lo = np.full(len(rules), np.nan)
    hi = np.full(len(rules), np.nan)
    for i, r in enumerate(rules):
        if not suppressed[i]:
            continue
        if statistic == "count" and r in ("threshold", "zero"):
            lo[i] = 0.0 if policy.zeros_disclosive or policy.hide_presence else 1.0
            hi[i] = policy.threshold - 1.0 if r == "threshold" else 0.0
        elif statistic in ("count", "sum"):
            lo[i] = 0.0 if (statistic == "count" or policy.nonnegative) else -np.inf
            hi[i] = np.inf
    return lo, hi
