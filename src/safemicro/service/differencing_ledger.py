"""The differencing guard's ledger: atoms, the row space of released cells over them, and the
feasible width of registered suppressed cells.

Every released cell is a union of atoms (blocks of records — and, with a value space, of
virtual points of it, see :mod:`.differencing_space` — in exactly the same cells); the row
space is kept as a basis orthonormal under the atom weights (records plus the virtual
points' shares, positive and additive when atoms split), refined incrementally as new cells
split atoms (see :mod:`.differencing`). ``counts`` are the records (or units) per atom, 0
for an empty region.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from safemicro.service.differencing_predicates import predicate_mask


@dataclass
class _State:
    atom: np.ndarray  # (records + virtual points,) atom id of each record, then of each point
    counts: np.ndarray  # (atoms,) records per atom (0: an empty region)
    basis: np.ndarray  # (rank, atoms), orthonormal under diag(weights)
    suppressed: np.ndarray  # (k, atoms) 0/1 indicators of registered suppressed cells
    released: int = 0
    history: list = field(default_factory=list)
    cells: Any = None  # sparse (released cells, atoms) 0/1: the exact 0/1 search and protection_width LPs
    # dimension of the row-space part lying wholly on small atoms, when it is known to hold
    # no small group (-1: not searched): that part only grows, so the same dimension later
    # means the same space and the 0/1 search can be skipped
    small_dim: int = -1
    # blocks of that part searched and found to hold no small group, by (records, dimension):
    # the part on those records can only grow, so the same records and dimension later mean
    # the same block and its search can be skipped
    cleared: frozenset = frozenset()
    weights: Any = None  # (atoms,) positive: counts plus the virtual points' shares (None: counts)
    grid: Any = None  # the value space as cut so far (.differencing_space.Grid), or None
    # this state's own 0/1 search found no small group (the shortcut of .differencing_growth)
    verified: bool = False

    @property
    def w(self) -> np.ndarray:
        return self.counts.astype(float) if self.weights is None else self.weights

    def copy(self) -> _State:
        return _State(
            self.atom,
            self.counts,
            self.basis,
            self.suppressed,
            self.released,
            list(self.history),
            self.cells,
            self.small_dim,
            self.cleared,
            self.weights,
            self.grid,
            self.verified,
        )


class _Ledger:
    """Atoms, basis and span tests of :class:`~safemicro.service.differencing.DifferencingGuard`
    (a mixin: the records, their multiplicities and ``protection_width`` live on the guard)."""

    def _with_cells(self, state: _State, cells: list) -> tuple[_State, np.ndarray]:
        """Refine the atoms so that every cell is a union of atoms; return the cells as
        0/1 vectors over the new atoms."""
        masks = self._coded.masks(cells) if cells else None
        if masks is None:
            masks = predicate_mask(self.records, cells)
        if self._entity is not None and masks.shape[0]:
            # a unit belongs to a cell when any of its records does
            n_units = len(self._mult)
            masks = np.vstack([np.bincount(self._entity, weights=m, minlength=n_units) > 0 for m in masks])
        grid, atom = state.grid, state.atom
        if self.space is not None and masks.shape[0]:  # the virtual points of the value space
            n_rec = len(self._mult)
            grid, origin, member = self.space.refine(state.grid, cells)
            atom = np.concatenate([atom[:n_rec], atom[n_rec:][origin]])
            masks = np.hstack([masks, member])
        if masks.shape[0] == 0:
            return state, np.zeros((0, len(state.counts)))
        parents = np.arange(len(state.counts))  # current atom -> atom of `state`
        for start in range(0, masks.shape[0], 62):
            block = masks[start : start + 62]
            code = np.zeros(atom.shape[0], dtype=np.uint64)
            for j in range(block.shape[0]):
                code |= block[j].astype(np.uint64) << np.uint64(j)
            _, code_id = np.unique(code, return_inverse=True)
            key = atom * (int(code_id.max()) + 1 if code_id.size else 1) + code_id
            _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            parents = parents[atom[first]]
            atom = inverse
        atom = atom.astype(np.int64)
        size = int(atom.max()) + 1 if atom.size else 0
        mult, weight = self._mult, None
        if grid is not None:
            mult = np.concatenate([self._mult, np.zeros(len(grid.weight), dtype=np.int64)])
            weight = np.bincount(atom, weights=np.concatenate([self._mult, grid.weight]), minlength=size)
        counts = np.bincount(atom, weights=mult, minlength=size).astype(np.int64)
        new = _State(
            atom=atom,
            counts=counts,
            basis=state.basis[:, parents],
            suppressed=state.suppressed[:, parents],
            released=state.released,
            history=state.history,
            cells=None if state.cells is None else state.cells[:, parents],
            small_dim=state.small_dim,
            cleared=state.cleared,
            weights=weight,
            grid=grid,
        )
        # a cell's vector: 1 on the atoms its records fall into
        _, first_rec = np.unique(atom, return_index=True)
        vecs = masks[:, first_rec].astype(float)
        return new, vecs

    def _in_span(self, basis: np.ndarray, weights: np.ndarray, vecs: np.ndarray) -> np.ndarray:
        """For each 0/1 vector, whether it lies in the row space (relative W-residual ~ 0)."""
        if vecs.shape[0] == 0:
            return np.zeros(0, dtype=bool)
        w = weights.astype(float)
        norm2 = (vecs * vecs) @ w
        if basis.shape[0] == 0:
            return norm2 <= 0
        coef = (vecs * w) @ basis.T
        resid2 = np.maximum(norm2 - (coef * coef).sum(axis=1), 0.0)
        return resid2 <= 1e-7 * np.maximum(norm2, 1.0)

    def _extend(self, basis: np.ndarray, weights: np.ndarray, vecs: np.ndarray) -> np.ndarray:
        """Basis of the row space plus ``vecs`` (W-orthonormal rows), Gram-Schmidt twice."""
        if vecs.shape[0] == 0:
            return basis
        w = weights.astype(float)
        sw = np.sqrt(w)
        resid = vecs.copy()
        for _ in range(2):
            if basis.shape[0]:
                resid = resid - ((resid * w) @ basis.T) @ basis
        scaled = resid * sw
        norms = np.sqrt((vecs * vecs) @ w)
        keep = np.sqrt((scaled * scaled).sum(axis=1)) > 1e-7 * np.maximum(norms, 1.0)
        if not keep.any():
            return basis
        u, s, vt = np.linalg.svd(scaled[keep], full_matrices=False)
        rank = int((s > 1e-7 * max(1.0, s[0])).sum())
        new_rows = vt[:rank] / np.where(sw > 0, sw, 1.0)
        if basis.shape[0]:  # re-orthogonalise against the old basis once more
            new_rows = new_rows - ((new_rows * w) @ basis.T) @ basis
            g = (new_rows * w) @ new_rows.T
            evals, evecs = np.linalg.eigh(g)
            ok = evals > 1e-10
            new_rows = (evecs[:, ok] / np.sqrt(evals[ok])).T @ new_rows
        return np.vstack([basis, new_rows])

    def _apply(self, state: _State, cells: list, suppressed: list) -> tuple[_State, np.ndarray, np.ndarray]:
        new, vecs = self._with_cells(state, list(cells) + list(suppressed))
        rel, sup = vecs[: len(cells)], vecs[len(cells) :]
        new.basis = self._extend(new.basis, new.w, rel)
        if len(sup):
            new.suppressed = np.vstack([new.suppressed, sup])
        if len(rel):  # the 0/1 search (and the protection_width LPs) work on the cells themselves
            from scipy import sparse

            block = sparse.csr_matrix(rel)
            new.cells = block if new.cells is None else sparse.vstack([new.cells, block], format="csr")
        new.released = state.released + len(cells)
        new.history = state.history + [{"released": list(cells), "suppressed": list(suppressed)}]
        return new, rel, sup

    def _narrowest(self, state: _State, rel: np.ndarray) -> float | None:
        """Smallest feasible-interval width of the registered suppressed cells (LP over
        non-negative atom counts, released counts fixed). Every cell is checked: a release
        that shares no atom with a cell can still narrow it through earlier releases.

        Over the non-empty atoms and the empty ones inside some suppressed cell only: the
        other empty regions of a value space (thousands: the LPs over them took a second
        each) count as known to be empty here, which only narrows intervals — stricter."""
        from scipy.optimize import linprog

        keep = (state.counts > 0) | state.suppressed.any(axis=0)
        sup = state.suppressed[:, keep]
        touched = np.flatnonzero(sup.any(axis=1))
        if len(touched) == 0 or state.basis.shape[0] == 0 or state.cells is None:
            return None
        a_eq = state.cells[:, np.flatnonzero(keep)]  # sparse 0/1 rows of every released cell
        x_true = state.counts[keep].astype(float)
        b_eq = a_eq @ x_true
        values = sup[touched] @ x_true
        seen_lo, seen_hi = values.copy(), values.copy()  # span of feasible points met so far
        # LPs that move every cell still too narrow towards `width` from its value at once
        # (t_k <= ±(cell_k - value_k), t_k <= width, max sum t), up then down, while they
        # clear cells: most are cleared so, the rest get their exact interval below
        from scipy import sparse

        m = len(x_true)
        for _ in range(4):
            open_ = np.flatnonzero(seen_hi - seen_lo < self.protection_width)
            if len(open_) == 0:
                break
            before = len(open_)
            for sign in (1.0, -1.0):
                k = len(open_)
                rows = sparse.csr_matrix(sup[touched[open_]])
                a_big = sparse.hstack([a_eq, sparse.csr_matrix((a_eq.shape[0], k))], format="csr")
                res = linprog(
                    np.concatenate([np.zeros(m), -np.ones(k)]),
                    A_ub=sparse.hstack([-sign * rows, sparse.identity(k)], format="csr"),
                    b_ub=-sign * values[open_],
                    A_eq=a_big,
                    b_eq=b_eq,
                    bounds=[(0, None)] * m + [(None, self.protection_width)] * k,
                    method="highs",
                )
                if res.status == 0:
                    vals = sup[touched] @ res.x[:m]
                    seen_lo, seen_hi = np.minimum(seen_lo, vals), np.maximum(seen_hi, vals)
                open_ = np.flatnonzero(seen_hi - seen_lo < self.protection_width)
                if len(open_) == 0:
                    break
            if len(open_) == before:
                break
        narrowest = None
        for j, k in enumerate(touched):
            if seen_hi[j] - seen_lo[j] >= self.protection_width:
                continue  # two feasible points already this far apart
            c = sup[k]
            hi = linprog(-c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
            if hi.status == 3:
                continue  # unbounded above
            if hi.status != 0:  # not solved: fail closed
                return 0.0
            vals = sup[touched] @ hi.x
            seen_lo, seen_hi = np.minimum(seen_lo, vals), np.maximum(seen_hi, vals)
            if seen_hi[j] - seen_lo[j] >= self.protection_width:
                continue
            lo = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
            if lo.status != 0:
                return 0.0
            width = -hi.fun - lo.fun  # both ends optimal: the exact width
            narrowest = width if narrowest is None else min(narrowest, width)
        return narrowest
