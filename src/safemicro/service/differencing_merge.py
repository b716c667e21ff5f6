"""The exact 0/1 search of one block, smaller: atoms the block cannot tell apart share one
variable, and only the block's own atoms are constrained.

The MILP of :mod:`.differencing_milp` asks for ``x = C^T λ`` (released cells ``C``), 0 on the
large atoms ``L``, 0/1 on the non-empty candidates (in [0, 1] on the empty ones), weighing
1..threshold-1, with one constraint row and one variable per atom — on the example survey
10 000 atoms, 9 000 of them empty regions of the value space, and proofs that no group
exists ran past 10 s. Two exact reductions:

* Only the block's rows. ``{C^T λ : (C^T λ)_L = 0}`` is the space ``S`` the search works in
  (the released span on small atoms); its reduced basis splits into blocks with disjoint
  supports, so the part of ``x`` on one block is itself in ``S``, and a union found on the
  block's rows (the others left free) is a union of ``S``. Rows of small atoms outside the
  block need no constraint.
* One variable per class of identical rows. Two atoms whose rows of the block's reduced
  basis are equal take the same value in every ``x`` of the block, so the class is one 0/1
  variable (in [0, 1] when all its atoms are empty) weighing the class's records, with the
  constraint row of one of its atoms (a non-empty one when there is one). On the example
  survey: 10 000 rows become 300 large + 2 000 classes, 300 of them non-empty.

Rows are compared after rounding to ``1e-7`` (the ledger's own tolerance for the span: its
reduced basis holds rationals of small denominators, which never come that close unless
equal); rows straddling a rounding boundary stay apart, which only keeps more variables.
"""

from __future__ import annotations

import numpy as np

__all__ = ["row_classes"]

_DECIMALS = 7


def row_classes(block: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classes of equal rows of ``block`` (a reduced basis: atoms × directions): for each
    class the row of its representative (a non-empty atom when it has one), its records
    (``sizes`` summed) and whether it must be 0/1 (it holds a non-empty atom)."""
    key = np.ascontiguousarray(np.round(np.where(np.abs(block) > 1e-9, block, 0.0), _DECIMALS) + 0.0)  # no -0.0
    # equal rows as equal bytes: one sort of fixed-width keys (3x faster than unique(axis=0))
    if key.shape[1]:
        rows = key.view(np.dtype((np.void, key.dtype.itemsize * key.shape[1]))).ravel()
        inverse = np.unique(rows, return_inverse=True)[1].ravel()
    else:  # no direction: every row is the zero row
        inverse = np.zeros(key.shape[0], dtype=np.int64)
    n = int(inverse.max()) + 1 if inverse.size else 0
    weight = np.bincount(inverse, weights=sizes, minlength=n)
    integral = np.bincount(inverse, weights=(sizes > 0).astype(float), minlength=n) > 0
    # representative: the first non-empty atom of the class, else its first atom
    order = np.lexsort((np.arange(len(inverse)), sizes == 0, inverse))
    first = np.flatnonzero(np.r_[True, inverse[order][1:] != inverse[order][:-1]])
    return order[first], np.rint(weight).astype(np.int64), integral
