"""The differencing guard's exact 0/1 search over the released cells themselves.

A set of atoms is determined when its indicator is a linear combination of released cells:
``x = C^T λ`` with ``C`` the cells × atoms 0/1 matrix. The search looks for a 0/1 ``x``
on some candidate atoms (0 everywhere else) weighing 1..threshold-1 records, as a mixed
integer programme with free ``λ``.

Why over the cells and not over a basis of the determined space: the basis rows are dense
and fractional, and HiGHS's presolve declared such systems infeasible while they held a
group (the example survey under the mixed benchmark: 4 atoms, 8 people, determined with
λ = ±1, passed as safe). The cells are sparse integer rows, which HiGHS presolves soundly,
and it is the formulation of the independent oracle the property tests use.
"""

from __future__ import annotations

import numpy as np

LOOSE = -2  # smallest_union: a union found only because atoms left free went outside [0, 1]


def smallest_group(
    cells,
    counts: np.ndarray,
    candidates: np.ndarray,
    threshold: int,
    *,
    smallest: bool = True,
    time_limit: float = 10.0,
    relax: np.ndarray | None = None,
    undecided: int = 1,
):
    """Smallest number of records (1..threshold-1) in a union of ``candidates`` atoms whose
    indicator is in the row space of ``cells`` (sparse, cells × atoms); None when there is
    none, ``undecided`` (1: fail closed) when the solver did not decide within ``time_limit``. Without
    ``smallest``, the size of the first such union found (the same answer to "is there
    one"). ``relax`` (bool per candidate): those take any value in [0, 1], not only 0 or 1 —
    the empty regions of a value space (:mod:`.differencing_space`), thousands of them: a
    relaxation, so None stays a proof that no such union exists, and a union found weighs
    1..threshold-1 records on the others with the empty ones' share unknown to the analyst
    (refused: fail closed)."""
    from scipy import sparse

    cells = sparse.csr_matrix(cells, dtype=float)
    k, m = cells.shape
    nb = len(candidates)
    if k == 0 or nb == 0:
        return None
    pick = sparse.csr_matrix((np.ones(nb), (candidates, np.arange(nb))), shape=(m, nb))
    a = sparse.hstack([cells.T, -pick], format="csr")  # C^T λ - x = 0 on every atom
    w = counts[candidates].astype(float)
    integral = np.ones(nb) if relax is None else (~relax).astype(float)
    return _lightest_union(a, w, integral, threshold, smallest, time_limit, undecided)[0]


def _lightest_union(
    a, weight: np.ndarray, integral: np.ndarray, threshold: int, smallest: bool, time_limit: float, undecided: int
) -> tuple[int | None, np.ndarray | None]:
    """The MILP both searches solve: ``a @ [λ; x] = 0`` (λ free: the cells' multipliers, then
    one variable per atom or class in [0, 1], integer where ``integral``), ``x`` weighing
    1..threshold-1 records; its weight (None when infeasible, else ``undecided``) and the
    solution found."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    k, g = a.shape[1] - len(weight), len(weight)
    cost = np.concatenate([np.zeros(k), weight.astype(float)])
    cons = [LinearConstraint(a, 0.0, 0.0), LinearConstraint(cost[None, :], 1.0, threshold - 1.0)]
    bounds = Bounds(
        np.concatenate([np.full(k, -np.inf), np.zeros(g)]), np.concatenate([np.full(k, np.inf), np.ones(g)])
    )
    # Always the weight as objective: HiGHS proves "no group" about 3x faster with it than
    # as a pure feasibility problem (13 MILPs of the mixed bench, 7.7 s against 22.7 s), and
    # it keeps the solver from searching blindly among zero-cost empty regions.
    # Without ``smallest`` any gap is accepted: it stops at the first group it finds.
    res = milp(
        cost,
        constraints=cons,
        integrality=np.concatenate([np.zeros(k), integral.astype(float)]),
        bounds=bounds,
        options={"time_limit": time_limit, **({} if smallest else {"mip_rel_gap": 1e9})},
    )
    if res.status == 0:
        return int(round(float(cost @ res.x))), res.x
    if res.status == 2:  # infeasible: no small group
        return None, None
    return undecided, None  # not decided within the time limit (1 by default: fail closed)


def smallest_union(
    cells,
    large: np.ndarray,
    rows: np.ndarray,
    weight: np.ndarray,
    integral: np.ndarray,
    threshold: int,
    *,
    smallest: bool = True,
    time_limit: float = 10.0,
    undecided: int = 1,
    loose: np.ndarray | None = None,
):
    """:func:`smallest_group` on classes of atoms (:mod:`.differencing_merge`): ``x = C^T λ``
    is 0 on the ``large`` atoms, and on each class's representative atom (``rows``) equal to
    the class's variable — 0/1 where ``integral``, else in [0, 1] — weighing ``weight``
    records; the union weighs 1..threshold-1. Same answers as :func:`smallest_group`.

    ``loose``: atoms left out of the programme (free) that should lie in [0, 1]; a union
    found that puts one of them outside answers :data:`LOOSE` instead of its weight (it
    holds for the relaxation only)."""
    from scipy import sparse

    cells = sparse.csr_matrix(cells, dtype=float)
    k = cells.shape[0]
    g = len(rows)
    if k == 0 or g == 0:
        return None
    ct = cells.T.tocsr()
    a = sparse.vstack(
        [
            sparse.hstack([ct[large], sparse.csr_matrix((len(large), g))]),
            sparse.hstack([ct[rows], -sparse.identity(g)]),
        ],
        format="csr",
    )
    found, solution = _lightest_union(a, weight, integral, threshold, smallest, time_limit, undecided)
    if solution is not None and loose is not None and len(loose):
        values = ct[loose] @ solution[:k]  # x = C^T λ where the programme left it free
        if (values < -1e-7).any() or (values > 1 + 1e-7).any():
            return LOOSE
    return found
