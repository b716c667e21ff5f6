"""A sound shortcut of the differencing guard's 0/1 search: a release that adds no new
direction on small atoms cannot determine a new small group.

Notation (:mod:`.differencing`). ``R`` is the row space of the released cells over the
atoms, ``L`` the large atoms (``count >= threshold``), and ``S = {x in R : x_L = 0}`` the
part of ``R`` the 0/1 search looks at (unions of small atoms, empty regions relaxed to
[0, 1], the cone of empty regions and single atoms included). ``before`` is the ledger
state *before* the request, whose own search found nothing (``_State.verified``); ``after``
is the state with the request applied, its atoms a refinement of ``before``'s and its
basis ``before``'s rows (copied onto the new atoms) followed by the new ones.

Claim. Let ``S' = {x in R_before : x_L = 0}`` with ``L`` the large atoms *after*. If
``dim S' == dim S_after``, ``after`` holds no small group (nor empty region proved empty)
that ``before`` did not hold — and ``before`` held none, so ``after``'s search can be
skipped.

Proof sketch. ``S'`` is a subspace of ``S_after`` (``R_before`` lies in ``R_after``), so
equal dimensions mean ``S_after = S'``: every ``x`` the search could find lies in
``R_before``, hence takes one value on all pieces of each atom of ``before``. Let ``x`` be
such a vector, 0/1 on the non-empty small atoms, in [0, 1] on the empty ones, weighing
0..threshold-1 records. An atom ``A`` of ``before`` with ``count >= threshold`` has
``x_A = 0``: if a piece of ``A`` is large after, ``x`` is 0 there; otherwise a non-empty
piece forces ``x_A`` into {0, 1}, and ``x_A = 1`` would weigh at least ``count(A) >=
threshold``. So ``x`` is 0 on ``before``'s large atoms, i.e. ``x`` is in ``S_before``, with
the same values on ``before``'s atoms (an atom of ``before`` is empty exactly when all its
pieces are) and the same weight: ``before``'s search would have found it. The same holds
for a non-negative combination of empty regions (the cone) and for a single atom of
leverage 1. Tolerances: dimensions are counted as the search counts them (directions with
a mass below ``1e-7`` on large atoms), and by eigenvalue interlacing the principal block of
``before``'s rows never counts more such directions than the whole.
"""

from __future__ import annotations

import numpy as np

__all__ = ["no_new_small_directions"]

_ON_LARGE = 1e-7  # mass on large atoms below which a direction lies on small atoms (the search's 1 - 1e-7)


def no_new_small_directions(basis: np.ndarray, weights: np.ndarray, large: np.ndarray, old_rank: int) -> bool:
    """``dim S' == dim S_after`` (see the module docstring): ``basis`` is ``after``'s
    (W-orthonormal rows, ``before``'s ``old_rank`` rows first), ``large`` its large atoms."""
    rank = basis.shape[0]
    if old_rank > rank or old_rank <= 0:
        return False
    if len(large) == 0:
        return old_rank == rank  # S is R itself
    part = basis[:, large] * np.sqrt(weights[large].astype(float))
    gram = part @ part.T  # (rank, rank): each direction's mass on the large atoms
    new = int((np.linalg.eigvalsh(gram) <= _ON_LARGE).sum())
    old = int((np.linalg.eigvalsh(gram[:old_rank, :old_rank]) <= _ON_LARGE).sum())
    return new == old
