"""Optimal local suppression on the key table, never record by record.

For each unsafe key the cheapest set of variables (cells x importance weight) whose
wildcard frequency reaches the target; frequencies are updated incrementally after each
move, a restore pass un-suppresses values that turned out not to be needed, and a
recomputation from scratch confirms the result. For k-anonymity targets with up to 12 keys
each move runs as compiled kernels (:mod:`safemicro.methods.suppression_kernels`), with
the same decisions as the NumPy code below.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from safemicro.errors import SafemicroError
from safemicro.keys import wildcard_frequencies
from safemicro.methods.suppression_input import (
    Importance,
    Safe,
    _group,
    _Input,
    _masked,
    _spread,
)
from safemicro.methods.suppression_kernels import kernels

_ZETA_KEYS = 12  # up to this many keys every suppression pattern is considered
_HELP = 0.01  # tie-break: records made safe count fully, records merely helped a little


def _importance_costs(importance: Importance, keys: list[str]) -> np.ndarray:
    """Cost of suppressing one cell of each key: 1 each by default; a list (most important
    first, unlisted keys after in column order) costs m, m-1, ..., 1; a dict gives the
    weights (unlisted keys 1)."""
    m = len(keys)
    if importance is None:
        return np.ones(m)
    if isinstance(importance, Mapping):
        return np.array([float(importance.get(k, 1.0)) for k in keys])
    listed = [keys.index(k) for k in importance]
    order = listed + [j for j in range(m) if j not in listed]
    costs = np.empty(m)
    costs[order] = np.arange(m, 0, -1, dtype=np.float64)
    return costs


def _zeta(table: np.ndarray, m: int) -> np.ndarray:
    """Subset sums over bit masks: out[..., P] = sum of table[..., D] over D ⊆ P."""
    out = table.copy()
    rows = out.shape[0]
    for b in range(m):
        view = out.reshape(rows, -1, 2, 1 << b)
        view[:, :, 1, :] += view[:, :, 0, :]
    return out


class _Engine:
    """Distinct current keys ("slots") with counts and wildcard frequencies.

    Records with the same original key and the same suppression mask form a *unit*; units
    move between slots as values are suppressed or restored, and every move updates the
    frequencies of the slots it affects, so a pass costs (moves x slots), never records.
    """

    def __init__(self, inp: _Input, masks: np.ndarray, alpha: float, safe: Safe, costs: np.ndarray):
        codes, weights = inp.codes, inp.weights
        n, m = codes.shape
        self.m, self.full, self.alpha, self.safe, self.costs = m, (1 << m) - 1, alpha, safe, costs
        self.bits = np.int64(1) << np.arange(m, dtype=np.int64)
        counts = np.ones(n) if inp.counts is None else inp.counts
        self.N, self.W = float(counts.sum()), float(weights.sum())
        if masks.any():  # never mask a value that is missing anyway
            masks = masks & ((codes != 0) @ self.bits)
        self.rec_unit, rep = _group(codes, masks)
        self.unit_codes = codes[rep]
        self.unit_mask = masks[rep].copy()
        self.unit_n = np.bincount(self.rec_unit, weights=counts, minlength=len(rep)).astype(np.float64)
        self.unit_w = np.bincount(self.rec_unit, weights=weights, minlength=len(rep))
        current = _masked(self.unit_codes, self.unit_mask)
        self.unit_slot, slot_rep = _group(current)
        s = len(slot_rep)
        self.codes = np.asfortranarray(current[slot_rep])  # column by column: the kernels' scans
        self.obs = self.codes != 0
        self.mpat = (~self.obs) @ self.bits
        self.cls = self._class(self.mpat)
        self.n = np.bincount(self.unit_slot, weights=self.unit_n, minlength=s)
        self.w = np.bincount(self.unit_slot, weights=self.unit_w, minlength=s)
        self.fk = np.zeros(s)
        self.Fk = np.zeros(s)
        self.index = {self.codes[i].tobytes(): i for i in range(s)}
        a = alpha
        # receiver class x giver class -> weight (complete, partial, all missing)
        self.table = np.array([[1.0, a, a if m == 1 else 0.0], [1.0, a, a], [0.0, 0.0, 0.0]])
        self.free: list[int] = []
        if m <= _ZETA_KEYS:
            self.all_masks = np.arange(1 << m, dtype=np.int64)
            self.mask_cost = ((self.all_masks[:, None] & self.bits) != 0) @ costs
        # a k target (safe: fk >= threshold) runs each move as one compiled kernel
        self.threshold = getattr(safe, "threshold", None)
        self.kernels = kernels() if self.threshold is not None and m <= _ZETA_KEYS else None
        self.refresh()

    # exact frequencies ----------------------------------------------------------------

    def refresh(self) -> None:
        alive = self.n > 0
        fk, Fk = wildcard_frequencies(self.codes[alive], self.n[alive], self.w[alive], self.alpha)
        self.fk[:] = np.inf
        self.Fk[:] = np.inf
        self.fk[alive], self.Fk[alive] = fk, Fk

    def unsafe(self) -> np.ndarray:
        alive = np.flatnonzero(self.n > 0)
        return alive[~self.safe(self.fk[alive], self.Fk[alive])]

    def record_masks(self) -> np.ndarray:
        return self.unit_mask[self.rec_unit]

    # helpers --------------------------------------------------------------------------

    def _diff(self, x: np.ndarray) -> np.ndarray:
        """Per slot: the positions where slot and ``x`` are both observed and differ."""
        differ = self.codes != x
        differ &= self.obs
        bits = np.where(x != 0, self.bits, 0)
        if self.m <= 8:  # a uint8 product is several times faster than an int64 one
            return (differ.view(np.uint8) @ bits.astype(np.uint8)).astype(np.int64)
        return differ @ bits

    def _class(self, pattern):
        """0 = complete key, 1 = some values missing, 2 = all missing."""
        pattern = np.asarray(pattern)
        return (pattern != 0).astype(np.intp) + (pattern == self.full)

    def _weight(self, receiver: int, giver: int) -> float:
        """What one record with missing pattern ``giver`` adds to the fk of a compatible,
        different key with pattern ``receiver`` (sdcMicro's rules; all-missing keys have
        fk = n and are left alone)."""
        return float(self.table[self._class(receiver), self._class(giver)])

    def _to_slots(self, giver: int) -> np.ndarray:
        """:meth:`_weight` for every slot as receiver."""
        return self.table[:, self._class(giver)][self.cls]

    def _from_slots(self, receiver: int) -> np.ndarray:
        """:meth:`_weight` for every slot as giver."""
        return self.table[self._class(receiver)][self.cls]

    def _subset_sums(self, D: np.ndarray, vals: np.ndarray, cands: np.ndarray) -> np.ndarray:
        """For each candidate mask P: sum of ``vals`` over slots whose diff D ⊆ P."""
        if self.m <= _ZETA_KEYS:
            size = 1 << self.m
            rows = vals.shape[0]
            flat = np.bincount(
                (D + size * np.arange(rows)[:, None]).ravel(), weights=vals.ravel(), minlength=rows * size
            )
            return _zeta(flat.reshape(rows, size), self.m)[:, cands]
        uniq, inv = np.unique(D, return_inverse=True)
        agg = np.stack([np.bincount(inv.ravel(), weights=v, minlength=len(uniq)) for v in vals])
        inside = (uniq[None, :] & ~cands[:, None]) == 0
        return agg @ inside.T.astype(np.float64)

    def _candidates(self, observed: int) -> np.ndarray:
        """Suppression masks to consider for a key with these observed positions."""
        if self.m <= _ZETA_KEYS:
            masks = self.all_masks[1:]
            return masks[(masks & ~observed) == 0]
        pos = [int(b) for b in self.bits if observed & int(b)]
        single = pos + [a | b for i, a in enumerate(pos) for b in pos[i + 1 :]]
        return np.array(sorted(set(single) | {observed}), dtype=np.int64)

    def _cost(self, cands: np.ndarray) -> np.ndarray:
        if self.m <= _ZETA_KEYS:
            return self.mask_cost[cands]
        return ((cands[:, None] & self.bits) != 0) @ self.costs

    # greedy suppression ---------------------------------------------------------------

    def make_safe(self, verify: bool = True) -> None:
        """Suppress until every slot is safe, always fixing the slot with the lowest fk next.

        The incremental frequencies are exact; with ``verify`` they are recomputed from
        scratch at the end and the loop goes on should any slot still be unsafe."""
        while True:
            if self.kernels is not None:
                nxt = self.kernels["_next_unsafe"]
                while (g := nxt(self.n, self.fk, self.threshold)) >= 0:
                    self._suppress_fast(g)
            else:
                todo = self.unsafe()
                while len(todo):
                    self._suppress(int(todo[np.argmin(self.fk[todo])]))
                    todo = self.unsafe()
            if not verify:
                return
            self.refresh()
            if len(self.unsafe()) == 0:
                return

    def _suppress(self, g: int) -> None:
        """Move slot g to its best generalisation (cheapest mask that makes it safe)."""
        x, Mx, ng, wg = self.codes[g].copy(), int(self.mpat[g]), self.n[g], self.w[g]
        observed = self.full & ~Mx
        if observed == 0:
            raise SafemicroError("the target cannot be reached even with every key value suppressed")
        D = self._diff(x)
        n, w = self.n.copy(), self.w.copy()
        n[g] = w[g] = 0.0
        complete = self.mpat == 0
        alive = n > 0
        # other unsafe slots this move would make safe or bring closer (the tie-break)
        helped = alive & (D != 0) & (self.mpat != self.full)
        helped &= ~self.safe(self.fk, self.Fk)
        fixed = helped & self.safe(self.fk + self.alpha * ng, self.Fk + self.alpha * wg)
        benefit = n * fixed + _HELP * n * helped
        vals = np.stack([n * complete, n * ~complete, w * complete, w * ~complete, benefit])
        cands = self._candidates(observed)
        S = self._subset_sums(D, vals, cands)
        My = Mx | cands
        same = alive & (D == 0)  # identical to the new key when patterns agree
        pats, inv = np.unique(self.mpat[same], return_inverse=True)
        e_n = np.bincount(inv.ravel(), weights=n[same], minlength=len(pats))
        e_w = np.bincount(inv.ravel(), weights=w[same], minlength=len(pats))
        pos = np.minimum(np.searchsorted(pats, My), max(len(pats) - 1, 0))
        hit = (pats[pos] == My) if len(pats) else np.zeros(len(My), dtype=bool)
        ident_n = np.where(hit, e_n[pos] if len(pats) else 0.0, 0.0)
        ident_w = np.where(hit, e_w[pos] if len(pats) else 0.0, 0.0)
        a = self.alpha
        fk = ng + S[0] + a * S[1] + (1 - a) * ident_n
        Fk = wg + S[2] + a * S[3] + (1 - a) * ident_w
        allna = My == self.full
        fk[allna], Fk[allna] = self.N, self.W
        ok = self.safe(fk, Fk)
        if not ok.any():
            raise SafemicroError("the target cannot be reached even with every key value suppressed")
        cost = ng * self._cost(cands)
        choice = np.flatnonzero(ok)[np.lexsort((-fk[ok], -S[4][ok], cost[ok]))[0]]
        self._move(g, int(cands[choice]), D, fk[choice], Fk[choice])

    def _suppress_fast(self, g: int) -> None:
        """:meth:`_suppress` and :meth:`_move` as compiled kernels (k targets)."""
        K, D = self.kernels, np.empty(len(self.n), dtype=np.int64)
        P, fk_new, Fk_new = K["_choose"](
            self.codes, self.mpat, self.n, self.w, self.fk, g, self.bits, self.full,
            self.alpha, self.threshold, _HELP, self.mask_cost, self.N, self.W, D,
        )  # fmt: skip
        if P < 0:
            raise SafemicroError("the target cannot be reached even with every key value suppressed")
        x, My = self.codes[g].copy(), int(self.mpat[g]) | P
        y = np.where((P & self.bits) != 0, 0, x)
        h = self.index.get(y.tobytes())
        K["_move"](
            self.mpat, self.cls, self.n, self.w, self.fk, self.Fk, g, P, D, -1 if h is None else h,
            self.table, self.full, self.unit_slot, self.unit_mask,
        )  # fmt: skip
        if h is not None:
            self.n[h] += self.n[g]
            self.w[h] += self.w[g]
            self._kill(g, x)
        else:
            del self.index[x.tobytes()]
            self._set_key(g, y, My)
            self.fk[g], self.Fk[g] = fk_new, Fk_new
            self.index[y.tobytes()] = g

    def _move(self, g: int, P: int, D: np.ndarray, fk_new: float, Fk_new: float) -> None:
        x, Mx, ng, wg = self.codes[g].copy(), int(self.mpat[g]), self.n[g], self.w[g]
        My = Mx | P
        y = np.where((P & self.bits) != 0, 0, x)
        f = self._to_slots(My) * ((D & ~P) == 0) - self._to_slots(Mx) * (D == 0)
        h = self.index.get(y.tobytes())
        if h is not None:
            f[h] = 1.0 - self._weight(int(self.mpat[h]), Mx)
        f[g] = 0.0
        f[(self.n == 0) | (self.mpat == self.full)] = 0.0
        self.fk += ng * f
        self.Fk += wg * f
        members = self.unit_slot == g
        self.unit_mask[members] |= P
        if h is not None:
            self.n[h] += ng
            self.w[h] += wg
            self._kill(g, x)
            self.unit_slot[members] = h
        else:
            del self.index[x.tobytes()]
            self._set_key(g, y, My)
            self.fk[g], self.Fk[g] = fk_new, Fk_new
            self.index[y.tobytes()] = g

    # restoring values that are not needed ---------------------------------------------

    def restore(self, allowed: int) -> int:
        """Un-suppress values (only of keys in ``allowed``) whose return keeps every record
        safe; costliest cells first. Returns the number of units restored."""
        done = 0
        units = np.flatnonzero(self.unit_mask & allowed)
        held = (((self.unit_mask[units, None] & allowed) >> np.arange(self.m)) & 1) == 1
        rows, j = np.nonzero(held)
        u = units[rows]
        order = np.lexsort((j, u, -self.unit_n[u] * self.costs[j]))  # costliest cells first
        attempt = self._try_restore if self.kernels is None else self._try_restore_fast
        for uu, jj in zip(u[order].tolist(), j[order].tolist()):
            done += attempt(uu, jj)
        return done

    def _new_slot(self) -> int:
        """A free slot (a dead one, or room added at the end)."""
        if not self.free:
            s = len(self.n)
            extra = max(s, 16)
            self.codes = np.asfortranarray(np.vstack([self.codes, np.zeros((extra, self.m), dtype=np.int64)]))
            self.obs = np.vstack([self.obs, np.zeros((extra, self.m), dtype=bool)])
            self.mpat = np.concatenate([self.mpat, np.full(extra, self.full, dtype=np.int64)])
            self.cls = np.concatenate([self.cls, np.full(extra, 2, dtype=np.intp)])
            self.n, self.w = (np.concatenate([a, np.zeros(extra)]) for a in (self.n, self.w))
            self.fk, self.Fk = (np.concatenate([a, np.full(extra, np.inf)]) for a in (self.fk, self.Fk))
            self.free = list(range(s + extra - 1, s - 1, -1))
        return self.free.pop()

    def _set_key(self, g: int, key: np.ndarray, pattern: int) -> None:
        self.codes[g], self.obs[g] = key, key != 0
        self.mpat[g], self.cls[g] = pattern, int(pattern != 0) + int(pattern == self.full)

    def _kill(self, g: int, key: np.ndarray) -> None:
        del self.index[key.tobytes()]
        self.n[g] = self.w[g] = 0.0
        self.fk[g] = self.Fk[g] = np.inf
        self.free.append(g)

    def _try_restore_fast(self, u: int, j: int) -> int:
        """:meth:`_try_restore` with the safety check as a compiled kernel (k targets)."""
        g = int(self.unit_slot[u])
        y, My = self.codes[g], int(self.mpat[g])
        y2 = y.copy()
        y2[j] = self.unit_codes[u, j]
        nu = self.unit_n[u]
        h = self.index.get(y2.tobytes())
        f, gain = np.empty(len(self.n)), np.empty(len(self.n))
        if not self.kernels["_restore_ok"](
            self.codes, self.mpat, self.cls, self.n, self.fk, g, j, y2[j], -1 if h is None else h,
            nu, self.bits, self.table, self.full, self.threshold, f, gain,
        ):  # fmt: skip
            return 0
        return self._restored(u, j, g, y2, My & ~(1 << j), h, f, gain)

    def _try_restore(self, u: int, j: int) -> int:
        g = int(self.unit_slot[u])
        y, My = self.codes[g], int(self.mpat[g])
        bit = 1 << j
        y2 = y.copy()
        y2[j] = self.unit_codes[u, j]
        My2 = My & ~bit
        nu, wu = self.unit_n[u], self.unit_w[u]
        D1 = self._diff(y)
        D2 = D1 | np.where(self.obs[:, j] & (self.codes[:, j] != y2[j]), bit, 0)
        f = self._to_slots(My2) * (D2 == 0) - self._to_slots(My) * (D1 == 0)
        h = self.index.get(y2.tobytes())
        if h is not None:
            f[h] = 1.0 - self._weight(int(self.mpat[h]), My)
        rest = self.n[g] - nu
        f[g] = (self._weight(My, My2) - 1.0) if rest > 0 else 0.0
        f[(self.n == 0) | (self.mpat == self.full)] = 0.0
        changed = np.flatnonzero(f != 0)
        if not self.safe(self.fk[changed] + nu * f[changed], self.Fk[changed] + wu * f[changed]).all():
            return 0
        return self._restored(u, j, g, y2, My2, h, f, self._from_slots(My2) * (D2 == 0))

    def _restored(self, u, j, g, y2, My2, h, f, gain) -> int:
        """Un-suppress key ``j`` of unit ``u`` (from slot ``g`` to key ``y2``, slot ``h`` or a
        new one) unless the new key would be unsafe; ``f``: the frequency change per record."""
        y, bit, nu, wu = self.codes[g], 1 << j, self.unit_n[u], self.unit_w[u]
        rest = self.n[g] - nu
        if h is None:
            n, w = self.n.copy(), self.w.copy()
            n[g], w[g] = rest, self.w[g] - wu
            fk_new = nu + gain @ n
            Fk_new = wu + gain @ w
            if not self.safe(np.array([fk_new]), np.array([Fk_new]))[0]:
                return 0
        self.fk += nu * f
        self.Fk += wu * f
        self.unit_mask[u] &= ~bit
        self.n[g] -= nu
        self.w[g] -= wu
        if rest <= 0:
            self._kill(g, y)
        if h is not None:
            self.n[h] += nu
            self.w[h] += wu
            self.unit_slot[u] = h
        else:
            s = self._new_slot()
            self._set_key(s, y2, My2)
            self.n[s], self.w[s] = nu, wu
            self.fk[s], self.Fk[s] = fk_new, Fk_new
            self.index[y2.tobytes()] = s
            self.unit_slot[u] = s
        return 1


def _optimal(
    inp: _Input, alpha: float, safe: Safe, costs: np.ndarray
) -> tuple[_Engine, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Greedy suppression on the key table, restore pass, household consistency.

    Returns the final engine and the key table before (fk, Fk, count). A household-level
    value suppressed in one record is suppressed in its whole household, so in household
    mode those keys cost the mean household size per cell."""
    if inp.household_bits:
        size = len(inp.household) / (int(inp.household.max()) + 1)
        level = (inp.household_bits >> np.arange(len(costs))) & 1 == 1
        costs = np.where(level, costs * size, costs)
    eng = _Engine(inp, np.zeros(len(inp.codes), dtype=np.int64), alpha, safe, costs)
    alive = eng.n > 0
    before = (eng.fk[alive].copy(), eng.Fk[alive].copy(), eng.n[alive].copy())
    eng.make_safe(verify=False)
    eng.restore(eng.full)
    eng.make_safe()
    while inp.household_bits:
        masks = eng.record_masks()
        spread = _spread(masks, inp)
        if np.array_equal(spread, masks):
            break
        eng = _Engine(inp, spread, alpha, safe, costs)
        eng.make_safe(verify=False)
        eng.restore(eng.full & ~inp.household_bits)
        eng.make_safe()
    return eng, before
