"""An independent subset of the released cells for the exact 0/1 search.

The search of :mod:`.differencing_milp` asks for a 0/1 vector ``x = C^T λ`` over the released
cells ``C`` with one free multiplier per cell. Margins, nested filters and repeated shapes
make about half of the cells linear combinations of the others (on the example survey's
mixed benchmark: 450 cells of rank 230), and every redundant free column is work for the
solver's branch and bound (measured: 2–5× longer proofs that no group exists, and proofs
that ran into the 10 s limit). Any subset of cells with the same row space gives the same
set of feasible ``x``, so the answer is unchanged; the subset is chosen by pivoted QR on
the cells' coordinates in the ledger's basis, and used only when certified: every cell lies
in the basis' span (the ledger's own tolerance) and the chosen cells are independent there,
so they span everything the cells span. Otherwise all cells are used, as before.
"""

from __future__ import annotations

import numpy as np

__all__ = ["independent_cells"]

_IN_SPAN = 1e-7  # relative W-residual below which a vector is in the span (the ledger's _in_span)
_INDEPENDENT = 1e-8  # smallest |R_ii| / |R_00| of the chosen cells' coordinates


def independent_cells(cells, basis: np.ndarray, counts: np.ndarray):
    """Rows of ``cells`` (sparse 0/1, cells × atoms) spanning the same row space, or all of
    them when that cannot be certified. ``basis`` (rank × atoms) is orthonormal under
    ``diag(counts)`` and spans the cells, as the ledger keeps it; with a value space pass the
    ledger's weights (records plus each region's share of the space, all positive), under
    which its basis is orthonormal — with plain counts its empty regions would weigh 0."""
    from scipy import sparse
    from scipy.linalg import qr

    cells = sparse.csr_matrix(cells, dtype=float)
    k, rank = cells.shape[0], basis.shape[0]
    if rank == 0 or k <= rank or (counts <= 0).any():
        # empty regions of a value space weigh 0 under diag(counts): two cells differing only
        # there look alike, and dropping one could lose a union the search must find
        return cells
    w = counts.astype(float)
    coords = np.asarray(cells @ (basis * w).T)  # (k, rank): each cell in the basis
    norm2 = np.asarray(cells.multiply(cells) @ w).ravel()
    resid2 = np.maximum(norm2 - (coords * coords).sum(axis=1), 0.0)
    if (resid2 > _IN_SPAN * np.maximum(norm2, 1.0)).any():
        return cells  # the basis does not hold every cell: no certificate
    _, r, piv = qr(coords.T, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    if len(diag) < rank or diag[0] == 0 or diag[rank - 1] <= _INDEPENDENT * diag[0]:
        return cells
    return cells[np.sort(piv[:rank])]
