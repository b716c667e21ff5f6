"""Optimal secondary suppression (τ-Argus "optimal"): the least total suppressed value such
that every suppressed cell keeps its required interval against an LP attacker.

A mixed-integer programme over x_i ∈ {0, 1} (cell i suppressed), solved with HiGHS through
``scipy.optimize.milp``, minimises Σ (|v_i| + ε) x_i with the primary cells fixed at 1 and:

- no relation (margin = sum of its cells) holds exactly one suppressed cell:
  x_i ≤ Σ_{j ∈ r, j ≠ i} x_j for every cell i of every relation r;
- with hidden presence (counts), the cells a released margin hides hold at least the
  threshold together: Σ_{c ∈ r} v_c x_c ≥ T (x_i − x_margin) for each cell i of r;
- cuts from the attacker: each pattern S is audited with the exact intervals of
  :func:`~safemicro.service.protection_secondary.suppressed_intervals` (min and max of each
  suppressed cell given every released cell and margin); if some interval is narrower than
  required, S and every subset of it fail too (releasing more only narrows intervals), so
  the cut Σ_{i ∉ S} x_i ≥ 1 is added and the programme solved again.

Every cut removes only unsafe patterns, so the first pattern that passes the audit is an
optimal one. The cuts are the plain ones, so this is for published tables of moderate size
(tens to a few hundred cells); the heuristic of ``protection_secondary`` scales further.
"""

from __future__ import annotations

import numpy as np

from safemicro.errors import SafemicroError
from safemicro.service.protection_rules import ProtectionPolicy
from safemicro.service.protection_secondary import Equations, _knowledge, suppressed_intervals

__all__ = ["optimal_secondary"]

MAX_ROUNDS = 500


def _structure(eqs: Equations, values: np.ndarray, n: int, mass: float) -> tuple[list[np.ndarray], list[float]]:
    rows, lows = [], []
    for p, kids in zip(eqs.parents, eqs.children):
        members = np.concatenate([[p], kids])
        for i in members:  # Σ_{j≠i} x_j − x_i ≥ 0
            row = np.zeros(n)
            row[members] = 1.0
            row[i] = -1.0
            rows.append(row)
            lows.append(0.0)
        if mass > 0:
            for i in kids:  # Σ_c v_c x_c − T x_i + T x_p ≥ 0
                row = np.zeros(n)
                row[kids] = values[kids]
                row[i] -= mass
                row[p] += mass
                rows.append(row)
                lows.append(0.0)
    return rows, lows


def _audit(a_eq, a_ub, values, pattern, lb, ub, required, rules, policy) -> tuple[bool, np.ndarray, np.ndarray]:
    idx = np.flatnonzero(pattern)
    lo, hi = suppressed_intervals(a_eq, a_ub, values, idx, lb, ub)
    ok = bool(np.all(hi - lo + 1e-9 >= required[idx]))
    if ok and policy.hide_presence:
        ok = not any(rules[i] == "threshold" and lo[k] > 1e-9 for k, i in enumerate(idx))
    return ok, lo, hi


def optimal_secondary(
    values: np.ndarray,
    name: str,
    eqs: Equations,
    rules: list,
    suppressed: np.ndarray,
    policy: ProtectionPolicy,
    n_cells: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The least-value suppression pattern containing ``suppressed`` whose every suppressed
    cell keeps its required interval; returns (pattern, lower, upper) like the heuristic."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    values = np.asarray(values, dtype=float)
    a_eq, a_ub, lb, ub, required, count = _knowledge(values, name, eqs, rules, policy, n_cells)
    mass = float(policy.threshold) if count and policy.hide_presence else 0.0
    rows, lows = _structure(eqs, values, n_cells, mass)
    cost = np.abs(values) + 1e-3 * max(1.0, float(np.abs(values).mean()) if n_cells else 1.0)
    fixed = np.asarray(suppressed, dtype=float)
    for _ in range(MAX_ROUNDS):
        cons = [LinearConstraint(np.array(rows), np.array(lows), np.inf)] if rows else []
        res = milp(cost, constraints=cons, integrality=np.ones(n_cells), bounds=Bounds(fixed, np.ones(n_cells)))
        if res.status != 0 or res.x is None:
            raise SafemicroError("optimal secondary suppression found no safe pattern (MILP infeasible)")
        pattern = res.x > 0.5
        ok, lo, hi = _audit(a_eq, a_ub, values, pattern, lb, ub, required, rules, policy)
        if ok:
            lower = np.full(n_cells, np.nan)
            upper = np.full(n_cells, np.nan)
            lower[pattern], upper[pattern] = lo, hi
            return pattern, lower, upper
        cut = (~pattern).astype(float)  # some cell outside S must be suppressed too
        if not cut.any():
            raise SafemicroError("optimal secondary suppression: even suppressing every cell is not safe")
        rows.append(cut)
        lows.append(1.0)
    raise SafemicroError(f"optimal secondary suppression did not finish in {MAX_ROUNDS} rounds; use the heuristic")
