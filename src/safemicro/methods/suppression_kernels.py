"""Compiled inner steps of optimal local suppression (:mod:`safemicro.methods.suppression_optimal`).

The greedy search is sequential (each move changes the frequencies the next one reads), so
it cannot be vectorised across moves; each move was a few dozen NumPy calls over the slots,
whose call overhead dominated on small data. These kernels do one move's work in one pass,
with the same arithmetic in the same order as the NumPy code (sums of the same terms, slot
by slot), so the decisions are identical. Used for k-anonymity targets (a slot is safe when
fk ≥ threshold) with up to 12 keys; compiled by numba on first use (:func:`kernels`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


def _cls(pattern: int, full: int) -> int:
    """0 = complete key, 1 = some values missing, 2 = all missing."""
    return int(pattern != 0) + int(pattern == full)


def _diff(codes: np.ndarray, x: np.ndarray, bits: np.ndarray, out: np.ndarray) -> None:
    """Per slot: the bit mask of positions where slot and ``x`` are both observed (code ≠ 0)
    and differ; a column at a time (``codes`` in Fortran order: contiguous columns)."""
    s, m = codes.shape
    out[:] = 0
    for j in range(m):
        xj = x[j]
        if xj == 0:
            continue
        b = bits[j]
        for i in range(s):
            c = codes[i, j]
            out[i] |= b * ((c != 0) & (c != xj))


def _next_unsafe(n: np.ndarray, fk: np.ndarray, threshold: float) -> int:
    """The live unsafe slot with the lowest fk (the first on ties); -1 when all are safe."""
    best = -1
    low = 0.0
    for i in range(n.shape[0]):
        if n[i] > 0 and not fk[i] >= threshold:
            if best < 0 or fk[i] < low:
                best, low = i, fk[i]
    return best


def _choose(codes, mpat, n, w, fk, g, bits, full, alpha, threshold, help_, mask_cost, N, W, D):
    """The cheapest suppression mask making slot ``g`` safe (ties: most other unsafe records
    made safe, then highest fk); fills ``D`` with each slot's difference mask from ``g``.
    Returns (mask, fk, Fk) of the choice; mask -1: nothing observed, -2: nothing suffices."""
    s, m = codes.shape
    size = 1 << m
    Mx = mpat[g]
    ng, wg = n[g], w[g]
    observed = full & ~Mx
    if observed == 0:
        return -1, 0.0, 0.0
    _diff(codes, codes[g].copy(), bits, D)
    acc = np.zeros((5, size))
    e_n = np.zeros(size)
    e_w = np.zeros(size)
    for i in range(s):
        ni, wi = n[i], w[i]
        if i == g:
            ni, wi = 0.0, 0.0
        d = D[i]
        alive = ni > 0
        if mpat[i] == 0:
            acc[0, d] += ni
            acc[2, d] += wi
        else:
            acc[1, d] += ni
            acc[3, d] += wi
        helped = alive and d != 0 and mpat[i] != full and not fk[i] >= threshold
        fixed = helped and fk[i] + alpha * ng >= threshold
        acc[4, d] += (ni if fixed else 0.0) + (help_ * ni if helped else 0.0)
        if alive and d == 0:
            e_n[mpat[i]] += ni
            e_w[mpat[i]] += wi
    for b in range(m):  # subset sums: acc[P] = sum over D ⊆ P
        bit = 1 << b
        for P in range(size):
            if P & bit:
                for r in range(5):
                    acc[r, P] += acc[r, P ^ bit]
    best, b_cost, b_ben, b_fk, b_Fk = -2, 0.0, 0.0, 0.0, 0.0
    for P in range(1, size):
        if P & ~observed:
            continue
        My = Mx | P
        fkc = ng + acc[0, P] + alpha * acc[1, P] + (1 - alpha) * e_n[My]
        Fkc = wg + acc[2, P] + alpha * acc[3, P] + (1 - alpha) * e_w[My]
        if My == full:
            fkc, Fkc = N, W
        if not fkc >= threshold:
            continue
        cost = ng * mask_cost[P]
        ben = acc[4, P]
        if best < 0 or cost < b_cost or (cost == b_cost and (ben > b_ben or (ben == b_ben and fkc > b_fk))):
            best, b_cost, b_ben, b_fk, b_Fk = P, cost, ben, fkc, Fkc
    return best, b_fk, b_Fk


def _move(mpat, cls, n, w, fk, Fk, g, P, D, h, table, full, unit_slot, unit_mask):
    """Update the frequencies for slot ``g`` moving under mask ``P`` (into slot ``h`` when
    that key exists, else -1) and the masks (and slots, when ``h`` ≥ 0) of its units."""
    Mx = mpat[g]
    ng, wg = n[g], w[g]
    cy, cx = _cls(Mx | P, full), _cls(Mx, full)
    for i in range(n.shape[0]):
        if i == g or n[i] == 0 or mpat[i] == full:
            continue
        if i == h:
            f = 1.0 - table[cls[h], cx]
        else:
            f = (table[cls[i], cy] if (D[i] & ~P) == 0 else 0.0) - (table[cls[i], cx] if D[i] == 0 else 0.0)
        fk[i] += ng * f
        Fk[i] += wg * f
    for u in range(unit_slot.shape[0]):
        if unit_slot[u] == g:
            unit_mask[u] |= P
            if h >= 0:
                unit_slot[u] = h


def _restore_ok(codes, mpat, cls, n, fk, g, j, value, h, nu, bits, table, full, threshold, f, gain):
    """Whether un-suppressing key ``j`` (back to ``value``) for ``nu`` records of slot ``g``
    keeps every other slot safe; fills ``f`` (the change per record of each slot's
    frequencies) and ``gain`` (what each slot gives the new key, when ``h`` is -1)."""
    My = mpat[g]
    bit = bits[j]
    My2 = My & ~bit
    c1, c2 = _cls(My, full), _cls(My2, full)
    rest = n[g] - nu
    s = n.shape[0]
    D = np.empty(s, dtype=np.int64)
    _diff(codes, codes[g].copy(), bits, D)
    for i in range(s):
        d1 = D[i]
        c = codes[i, j]
        d2 = d1 | (bit if c != 0 and c != value else 0)
        gain[i] = table[c2, cls[i]] if d2 == 0 else 0.0
        if n[i] == 0 or mpat[i] == full:
            f[i] = 0.0
        elif i == g:
            f[i] = (table[c1, c2] - 1.0) if rest > 0 else 0.0
        elif i == h:
            f[i] = 1.0 - table[cls[h], c1]
        else:
            f[i] = (table[cls[i], c2] if d2 == 0 else 0.0) - (table[cls[i], c1] if d1 == 0 else 0.0)
        if f[i] != 0 and not fk[i] + nu * f[i] >= threshold:
            return False
    return True


_KERNELS = ("_cls", "_diff", "_next_unsafe", "_choose", "_move", "_restore_ok")


@functools.cache
def kernels() -> dict[str, Any]:
    """Compile the kernels (cached on disk by numba), callees first so callers see them."""
    import numba

    namespace = globals()
    for name in _KERNELS:
        if not isinstance(namespace[name], numba.core.dispatcher.Dispatcher):
            namespace[name] = numba.njit(cache=True)(namespace[name])
    return {name: namespace[name] for name in _KERNELS}
