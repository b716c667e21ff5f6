"""The differencing guard's 0/1 search, block by block: a reduced basis of the directions
lying on small atoms splits into blocks with disjoint supports (a 0/1 vector of the space
is 0/1 on every block, so the smallest one lies in one block), and a block of a few
directions is searched by enumerating its pivots' values (larger ones go to the MILP of
:mod:`.differencing_milp`)."""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["independent_blocks", "enumerate_block"]


def independent_blocks(basis: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Connected blocks (atom rows, direction columns) of a reduced basis: two directions
    are linked when some atom's value depends on both. The rows of a block are its support
    (atoms every direction leaves at 0 belong to none)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    nz = np.abs(basis) > 1e-9
    nzf = nz.astype(np.float32)  # a BLAS product (integer matmul has none: seconds on 10 000 atoms)
    link = (nzf.T @ nzf) > 0  # (d, d) directions sharing an atom
    n, label = connected_components(csr_matrix(link), directed=False)
    out = []
    row_label = np.where(nz.any(axis=1), label[np.argmax(nz, axis=1)], -1)  # atoms on no direction: always 0
    for b in range(n):
        out.append((np.flatnonzero(row_label == b), np.flatnonzero(label == b)))
    return out


def enumerate_block(basis: np.ndarray, sizes: np.ndarray, threshold: int) -> int | None:
    """The smallest 0/1 vector weighing less than ``threshold`` on one small block of a
    reduced basis (``basis[pivots] = I``), None when there is none: every choice of 0/1
    pivot values, kept when all atoms come out 0 or 1."""
    d = basis.shape[1]
    combos = np.array(list(itertools.product((0.0, 1.0), repeat=d))[1:])  # every non-empty choice
    v = combos @ basis.T  # (2^d - 1, atoms)
    r = np.round(v)
    ok = (np.abs(v - r).max(axis=1) <= 1e-6) & (r.min(axis=1) >= 0) & (r.max(axis=1) <= 1)
    size = r[ok] @ sizes  # every choice is non-empty; 0 is an empty region (value space only)
    size = size[size < threshold]
    return int(size.min()) if len(size) else None
