"""Local suppression: set key values to missing until every record is safe.

A record is safe when its key is shared by at least ``k`` records (k-anonymity) or, for
:func:`suppress_by_risk`, when its individual re-identification risk is at most
``max_risk``. Missing values count as wildcards exactly as in
:func:`safemicro.keys.wildcard_frequencies` (sdcMicro's ``freqCalc``), so a suppressed value
makes its record match every category of that variable.

Two algorithms:

- ``"optimal"`` (the default) works on the key table, never record by record. Records
  sharing a key are treated alike: for each unsafe key it suppresses the cheapest set of
  variables (cells x importance weight) whose wildcard frequency reaches the target,
  counting every record the new key then matches and, among equally cheap choices, the one
  that also makes the most other unsafe records safe. The unsafe key with the lowest fk
  goes next; frequencies are updated incrementally after each move, a restore pass then
  un-suppresses values that turned out not to be needed, and a recomputation from scratch
  confirms the result (suppression goes on should it not). Masks only grow while
  suppressing and a record with every key value suppressed is shared by all ``n >= k``
  records, so the loop ends with every record safe.
- ``"sdcmicro"`` reproduces sdcMicro 5.8.1's ``localSuppression`` (definitions in
  ``SDCMICRO_SEMANTICS.md``): same default importance, the same data reduction, the same
  record order, distance and candidate rule, hence the same cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import polars as pl
from pydantic import Field, ValidationError

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import combine_codes, dense_ids, encode_column, wildcard_frequencies
from safemicro.methods.base import Change, MethodResult, StepContext, StepParams, count_changes, register
from safemicro.plan import Roles
from safemicro.risk.individual import individual_risk

__all__ = ["local_suppression", "suppress_by_risk"]

Importance = Sequence[str] | Mapping[str, float] | None
Safe = Callable[[np.ndarray, np.ndarray], np.ndarray]

_EPS = 1e-9
_MAX_KEYS = 62  # suppression patterns are bit masks in an int64
_ZETA_KEYS = 12  # up to this many keys every suppression pattern is considered
_HELP = 0.01  # tie-break: records made safe count fully, records merely helped a little


# -- inputs ------------------------------------------------------------------------------


@dataclass
class _Input:
    keys: list[str]
    codes: np.ndarray  # (n, m) int64 codes of the key values, 0 = missing (user-missing too)
    weights: np.ndarray  # sampling weights (ones when none)
    weighted: bool
    household: np.ndarray | None  # dense household ids 0..H-1
    household_bits: int  # mask of the household-level keys


def _error(message: str, ds: Dataset, column: str | None = None) -> SafemicroError:
    return SafemicroError(message, file=ds.source, column=column)


def _prepare(
    ds: Dataset,
    keys: Sequence[str],
    weight: str | None,
    household: str | None,
    household_level: Sequence[str],
) -> _Input:
    from safemicro.assess import validate_roles

    if isinstance(keys, str):
        keys = [keys]
    keys = list(keys or [])
    level = [v for v in household_level if v in keys]
    if household is None and level:
        raise _error("household_level keys need a household id (household=...)", ds)
    try:
        roles = Roles(keys=keys, weight=weight, household=household, household_level=level)
    except ValidationError as exc:
        raise _error(exc.errors()[0]["msg"].removeprefix("Value error, "), ds) from None
    validate_roles(ds, roles)
    if len(keys) > _MAX_KEYS:
        raise _error(f"local suppression handles at most {_MAX_KEYS} key variables, got {len(keys)}", ds)
    codes = np.column_stack([encode_column(ds.analysis_column(name))[0] for name in keys]).astype(np.int64)
    if weight is not None:
        w = ds.frame.get_column(weight).cast(pl.Float64).to_numpy()
    else:
        w = np.ones(ds.n)
    hh = None
    if household is not None:
        hh = encode_column(ds.frame.get_column(household))[0] - 1
    bits = sum(1 << keys.index(v) for v in level)
    return _Input(keys, codes, w, weight is not None, hh, bits)


def _importance_names(
    importance: Importance, keys: list[str], ds: Dataset
) -> Sequence[str] | Mapping[str, float] | None:
    """Check the importance argument: key names (most important first) or {key: weight}."""
    if importance is None:
        return None
    if isinstance(importance, str):
        importance = [importance]
    names = list(importance.keys()) if isinstance(importance, Mapping) else list(importance)
    for name in names:
        if name not in keys:
            raise _error(f"importance names {name!r}, which is not a key variable", ds, column=str(name))
    if len(set(names)) != len(names):
        raise _error("importance lists a key variable twice", ds)
    if isinstance(importance, Mapping):
        for name, value in importance.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not np.isfinite(value)
                or value <= 0
            ):
                raise _error(
                    f"importance weight of {name!r} must be a positive number, got {value!r}", ds, column=name
                )
    return importance


def _plain(importance: Importance) -> list[str] | dict[str, float] | None:
    """The importance as JSON-friendly parameters."""
    if importance is None:
        return None
    return dict(importance) if isinstance(importance, Mapping) else list(importance)


def _importance_ranks(importance: Importance, keys: list[str], codes: np.ndarray) -> np.ndarray:
    """sdcMicro importance ranks (1 = most important = suppressed last).

    Default: fewest distinct observed values first, ties in column order. A list gives the
    order (unlisted keys after, in column order); a dict ranks by decreasing weight
    (unlisted keys weigh 1, as in :func:`_importance_costs`).
    """
    m = len(keys)
    if importance is None:
        distinct = np.array([len(np.unique(c[c != 0])) for c in codes.T])
        order = np.lexsort((np.arange(m), distinct))
    elif isinstance(importance, Mapping):
        weight = np.array([float(importance.get(k, 1.0)) for k in keys])
        order = np.lexsort((np.arange(m), -weight))
    else:
        listed = [keys.index(k) for k in importance]
        order = np.array(listed + [j for j in range(m) if j not in listed])
    ranks = np.empty(m, dtype=np.int64)
    ranks[order] = np.arange(1, m + 1)
    return ranks


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


# -- key tables of the current values ---------------------------------------------------


def _group(codes: np.ndarray, extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids of the distinct rows of ``codes`` (plus an extra column) and one
    representative row index per id."""
    n, m = codes.shape
    cols = [codes[:, j] for j in range(m)]
    cards = [int(c.max()) if n else 0 for c in cols]
    if extra is not None:
        cols.append(extra)
        cards.append(int(extra.max()) if n else 0)
    combined, space = combine_codes(cols, cards)
    ids, _ = dense_ids(combined, space)
    rep = np.zeros(int(ids.max()) + 1 if n else 0, dtype=np.int64)
    rep[ids] = np.arange(n)
    return ids, rep


def _record_fk(codes: np.ndarray, weights: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """fk and Fk per record with missing codes (0) as wildcards."""
    ids, rep = _group(codes)
    count = np.bincount(ids, minlength=len(rep)).astype(np.float64)
    wsum = np.bincount(ids, weights=weights, minlength=len(rep))
    fk, Fk = wildcard_frequencies(codes[rep], count, wsum, alpha)
    return fk[ids], Fk[ids]


def _masked(codes: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Codes with the masked positions set to missing (0)."""
    bits = np.int64(1) << np.arange(codes.shape[1], dtype=np.int64)
    return np.where((masks[:, None] & bits) != 0, 0, codes)


# -- sdcMicro's algorithm ---------------------------------------------------------------


def _sdcmicro_masks(codes: np.ndarray, k: int, alpha: float, ranks: np.ndarray) -> np.ndarray:
    """Suppression masks per record as sdcMicro 5.8.1's localSuppression sets them.

    Works on the reduced data (the first k records of each group of identical keys, with
    missing values filled by the column's first value for the grouping only); passes over
    the records with fk < k in order of increasing fk, suppressing for each the most
    expendable variable in which a nearest record (smallest positive distance) differs.
    """
    n, m = codes.shape
    filled = np.where(codes == 0, codes[0], codes)
    gid, _ = _group(filled)
    order = np.argsort(gid, kind="stable")
    g = gid[order]
    start = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    rank_in_group = np.arange(n) - np.repeat(start, np.diff(np.r_[start, n]))
    kept = np.sort(order[rank_in_group < k])
    x = codes[kept].copy()
    var_order = np.argsort(-ranks, kind="stable")  # largest importance number first
    while True:
        fk, _ = _record_fk(x, np.ones(len(x)), alpha)
        problems = np.flatnonzero(fk < k - _EPS)
        if len(problems) == 0:
            break
        problems = problems[np.argsort(fk[problems], kind="stable")]
        for i in problems:
            xi = x[i]
            differ = (x != xi) & (x != 0) & (xi != 0)
            dist = differ.sum(axis=1)
            positive = dist[dist > 0]
            if len(positive):
                allowed = differ[dist == positive.min()].any(axis=0)
            else:  # every record is compatible: any observed value of i
                allowed = xi != 0
            pick = [j for j in var_order if allowed[j]]
            if not pick:
                raise SafemicroError(
                    f"record cannot reach k={k}: all its key values are already missing "
                    f"and the data has too few records (sdcMicro would loop forever here)",
                    row=int(kept[i]) + 1,
                )
            x[i, pick[0]] = 0
    suppressed = (x == 0) & (codes[kept] != 0)
    masks = np.zeros(n, dtype=np.int64)
    masks[kept] = suppressed @ (np.int64(1) << np.arange(m, dtype=np.int64))
    return masks


# -- the key-table algorithm ------------------------------------------------------------


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
        self.N, self.W = float(n), float(weights.sum())
        if masks.any():  # never mask a value that is missing anyway
            masks = masks & ((codes != 0) @ self.bits)
        self.rec_unit, rep = _group(codes, masks)
        self.unit_codes = codes[rep]
        self.unit_mask = masks[rep].copy()
        self.unit_n = np.bincount(self.rec_unit, minlength=len(rep)).astype(np.float64)
        self.unit_w = np.bincount(self.rec_unit, weights=weights, minlength=len(rep))
        current = _masked(self.unit_codes, self.unit_mask)
        self.unit_slot, slot_rep = _group(current)
        s = len(slot_rep)
        self.codes = current[slot_rep].copy()
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
        tries = [
            (-self.unit_n[u] * self.costs[j], int(u), j)
            for u in units
            for j in range(self.m)
            if (int(self.unit_mask[u]) & allowed) >> j & 1
        ]
        tries.sort()
        for _, u, j in tries:
            done += self._try_restore(u, j)
        return done

    def _new_slot(self) -> int:
        """A free slot (a dead one, or room added at the end)."""
        if not self.free:
            s = len(self.n)
            extra = max(s, 16)
            self.codes = np.vstack([self.codes, np.zeros((extra, self.m), dtype=np.int64)])
            self.obs = np.vstack([self.obs, np.zeros((extra, self.m), dtype=bool)])
            self.mpat = np.concatenate([self.mpat, np.full(extra, self.full, dtype=np.int64)])
            self.cls = np.concatenate([self.cls, np.full(extra, 2, dtype=np.intp)])
            self.n, self.w = (np.concatenate([a, np.zeros(extra)]) for a in (self.n, self.w))
            self.fk, self.Fk = (np.concatenate([a, np.full(extra, np.inf)]) for a in (self.fk, self.Fk))
            self.free = list(range(s + extra - 1, s - 1, -1))
        return self.free.pop()

    def _set_key(self, g: int, key: np.ndarray, pattern: int) -> None:
        self.codes[g], self.obs[g] = key, key != 0
        self.mpat[g], self.cls[g] = pattern, self._class(pattern)

    def _kill(self, g: int, key: np.ndarray) -> None:
        del self.index[key.tobytes()]
        self.n[g] = self.w[g] = 0.0
        self.fk[g] = self.Fk[g] = np.inf
        self.free.append(g)

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
        if h is None:
            n, w = self.n.copy(), self.w.copy()
            n[g], w[g] = rest, self.w[g] - wu
            gain = self._from_slots(My2) * (D2 == 0)
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


# -- drivers ----------------------------------------------------------------------------


def _spread(masks: np.ndarray, inp: _Input) -> np.ndarray:
    """Household-level suppressions extended to every member of the household."""
    if inp.household is None or not inp.household_bits:
        return masks
    bits = np.int64(1) << np.arange(len(inp.keys), dtype=np.int64)
    observed = (inp.codes != 0) @ bits
    spread = np.zeros_like(masks)
    for j in range(len(inp.keys)):
        if inp.household_bits >> j & 1:
            hit = np.bincount(inp.household, weights=(masks >> j) & 1) > 0
            spread |= np.where(hit[inp.household], bits[j], 0)
    return masks | (spread & observed)


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


def _sdcmicro(inp: _Input, k: int, alpha: float, ranks: np.ndarray) -> np.ndarray:
    masks = _sdcmicro_masks(inp.codes, k, alpha, ranks)
    while inp.household_bits:
        spread = _spread(masks, inp)
        if np.array_equal(spread, masks):
            break
        masks = spread | _sdcmicro_masks(_masked(inp.codes, spread), k, alpha, ranks)
    return masks


def _apply(ds: Dataset, keys: list[str], masks: np.ndarray) -> Dataset:
    """The dataset with the masked key cells set to null (dtypes and order kept)."""
    exprs = []
    for j, name in enumerate(keys):
        hit = (masks >> j) & 1 == 1
        if hit.any():
            exprs.append(pl.when(pl.lit(pl.Series(hit))).then(None).otherwise(pl.col(name)).alias(name))
    return ds.with_frame(ds.frame.with_columns(exprs) if exprs else ds.frame)


def _check_alpha(alpha: float, ds: Dataset) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise _error(f"alpha must lie between 0 and 1, got {alpha!r}", ds)
    return float(alpha)


def _result(
    ds: Dataset,
    inp: _Input,
    masks: np.ndarray,
    method: str,
    params: dict[str, Any],
    details: dict[str, Any],
    notes: list[str],
) -> MethodResult:
    out = _apply(ds, inp.keys, masks)
    changed, suppressed, touched = count_changes(ds.frame, out.frame, inp.keys)
    details = {
        "cells_suppressed": int(sum(suppressed.values())),
        "suppressed_per_variable": suppressed,
        "records_with_suppression": touched,
        **details,
    }
    change = Change(
        method=method,
        params=params,
        changed=changed,
        suppressed=suppressed,
        records_touched=touched,
        seed=None,
        details=details,
        notes=notes,
    )
    return MethodResult(out, change)


def local_suppression(
    ds: Dataset,
    *,
    keys: Sequence[str],
    k: int = 3,
    method: Literal["optimal", "sdcmicro"] = "optimal",
    importance: Importance = None,
    alpha: float = 1.0,
    household: str | None = None,
    household_level: Sequence[str] = (),
    weight: str | None = None,
) -> MethodResult:
    """Suppress key values (set them to missing) until every record's key is shared by at
    least ``k`` records, missing values counting as wildcards (sdcMicro's fk).

    ``method="optimal"`` (default) finds the cheap suppressions on the key table;
    ``"sdcmicro"`` reproduces sdcMicro 5.8.1's ``localSuppression`` cell for cell.
    ``importance``: key names, most important (suppressed last) first, or ``{key: weight}``
    (higher = more costly to suppress). With ``household`` and ``household_level``, a
    household-level key suppressed for one member is suppressed for the whole household.
    ``weight`` only adds the individual risk after suppression to the details.

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> df = pl.DataFrame({"sex": [1, 1, 1, 2, 2, 2, 1], "region": [1, 1, 1, 2, 2, 2, 2]})
    >>> res = local_suppression(Dataset(df), keys=["sex", "region"], k=3)
    >>> res.change.suppressed
    {'sex': 1, 'region': 0}
    """
    inp = _prepare(ds, keys, weight, household, household_level)
    alpha = _check_alpha(alpha, ds)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise _error(f"k must be a positive whole number, got {k!r}", ds)
    k = int(k)
    if method not in ("optimal", "sdcmicro"):
        raise _error(f"method must be 'optimal' or 'sdcmicro', got {method!r}", ds)
    if k > ds.n:
        raise _error(f"k={k} cannot be reached: the data has only {ds.n} records", ds)
    importance = _importance_names(importance, inp.keys, ds)
    safe: Safe = lambda fk, Fk: fk >= k - _EPS  # noqa: E731
    notes: list[str] = []
    if method == "sdcmicro":
        ranks = _importance_ranks(importance, inp.keys, inp.codes)
        fk0, _ = _record_fk(inp.codes, inp.weights, alpha)
        unsafe_before = float((fk0 < k - _EPS).sum())
        masks = _sdcmicro(inp, k, alpha, ranks)
        fk, Fk = _record_fk(_masked(inp.codes, masks), inp.weights, alpha)
        used = {name: int(r) for name, r in zip(inp.keys, ranks)}
        if fk.min() < k - _EPS:  # its fk comes from the reduced data (possible with alpha < 1)
            notes.append(
                f"sdcMicro's algorithm left {int((fk < k - _EPS).sum())} records below k={k} "
                "in the full data; method='optimal' guarantees k"
            )
    else:
        costs = _importance_costs(importance, inp.keys)
        eng, (fk0, Fk0, n0) = _optimal(inp, alpha, safe, costs)
        unsafe_before = n0[~safe(fk0, Fk0)].sum()
        masks = eng.record_masks()
        alive = eng.n > 0
        fk, Fk = eng.fk[alive], eng.Fk[alive]
        used = {name: float(c) for name, c in zip(inp.keys, costs)}
    details: dict[str, Any] = {
        "algorithm": method,
        "fk_min_after": float(fk.min()),
        "n_unsafe_records_before": int(round(unsafe_before)),
        "importance": used,
    }
    if inp.weighted:
        details["max_individual_risk_after"] = float(individual_risk(fk, Fk, weighted=True).max())
    if inp.household_bits:
        notes.append("household-level keys are suppressed for every member of a household")
    params = {
        "keys": inp.keys,
        "k": k,
        "method": method,
        "importance": _plain(importance),
        "alpha": alpha,
        "household": household,
        "household_level": [v for v in household_level if v in inp.keys],
        "weight": weight,
    }
    return _result(ds, inp, masks, "local_suppression", params, details, notes)


def suppress_by_risk(
    ds: Dataset,
    *,
    keys: Sequence[str],
    max_risk: float,
    weight: str | None = None,
    alpha: float = 1.0,
    importance: Importance = None,
    household: str | None = None,
    household_level: Sequence[str] = (),
) -> MethodResult:
    """Suppress key values until no record's individual re-identification risk exceeds
    ``max_risk`` (Benedetti-Franconi with ``weight``, 1/fk without), on the key table.

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> df = pl.DataFrame({"sex": [1, 1, 1, 2, 2, 2, 1], "region": [1, 1, 1, 2, 2, 2, 2]})
    >>> suppress_by_risk(Dataset(df), keys=["sex", "region"], max_risk=0.34).change.suppressed
    {'sex': 1, 'region': 0}
    """
    inp = _prepare(ds, keys, weight, household, household_level)
    alpha = _check_alpha(alpha, ds)
    if isinstance(max_risk, bool) or not isinstance(max_risk, (int, float)) or not 0.0 < max_risk <= 1.0:
        raise _error(f"max_risk must lie in (0, 1], got {max_risk!r}", ds)
    max_risk = float(max_risk)
    weighted = inp.weighted

    def safe(fk: np.ndarray, Fk: np.ndarray) -> np.ndarray:
        return individual_risk(fk, Fk, weighted=weighted) <= max_risk + 1e-12

    if not safe(np.array([float(ds.n)]), np.array([float(inp.weights.sum())]))[0]:
        raise _error(
            f"max_risk={max_risk:g} cannot be reached: even a record with every key value "
            "suppressed would be above it",
            ds,
        )
    importance = _importance_names(importance, inp.keys, ds)
    costs = _importance_costs(importance, inp.keys)
    eng, (fk0, Fk0, n0) = _optimal(inp, alpha, safe, costs)
    risk_before = individual_risk(fk0, Fk0, weighted=weighted)
    unsafe_before = n0[~safe(fk0, Fk0)].sum()
    alive = eng.n > 0
    risk_after = individual_risk(eng.fk[alive], eng.Fk[alive], weighted=weighted)
    details = {
        "algorithm": "optimal",
        "max_risk": max_risk,
        "max_risk_before": float(risk_before.max()),
        "max_risk_after": float(risk_after.max()),
        "n_unsafe_records_before": int(round(unsafe_before)),
        "fk_min_after": float(eng.fk[alive].min()),
        "importance": {name: float(c) for name, c in zip(inp.keys, costs)},
    }
    notes = (
        ["household-level keys are suppressed for every member of a household"] if inp.household_bits else []
    )
    params = {
        "keys": inp.keys,
        "max_risk": max_risk,
        "weight": weight,
        "alpha": alpha,
        "importance": _plain(importance),
        "household": household,
        "household_level": [v for v in household_level if v in inp.keys],
    }
    return _result(ds, inp, eng.record_masks(), "suppress_by_risk", params, details, notes)


# -- plan steps -------------------------------------------------------------------------


class _SuppressionParams(StepParams):
    keys: list[str] | None = Field(None, description="key variables (default: roles.keys)")
    importance: list[str] | dict[str, float] | None = Field(
        None, description="keys most important (suppressed last) first, or {key: cost weight}"
    )
    household_mode: bool = Field(True, description="suppress roles.household_level keys per household")

    def key_list(self, ctx: StepContext) -> list[str]:
        return list(self.keys) if self.keys is not None else list(ctx.roles.keys)

    def household(self, ctx: StepContext) -> tuple[str | None, list[str]]:
        if not self.household_mode or ctx.roles.household is None:
            return None, []
        keys = self.key_list(ctx)
        return ctx.roles.household, [v for v in ctx.roles.household_level if v in keys]

    def reads(self, ctx: StepContext) -> list[str]:
        household, _ = self.household(ctx)
        extra = [v for v in (household, ctx.roles.weight) if v is not None]
        return list(dict.fromkeys(self.key_list(ctx) + extra))

    def check(self, ctx: StepContext) -> None:
        keys = self.key_list(ctx)
        if not keys:
            raise ValueError("no key variables: give keys or set roles.keys")
        if self.importance is not None:
            for name in self.importance:
                if name not in keys:
                    raise ValueError(f"importance names {name!r}, which is not one of the keys")


class LocalSuppressionParams(_SuppressionParams):
    """Suppress key values until every key combination has at least k records (NA wildcards); keys, k and alpha default to the plan's roles and targets."""

    k: int | None = Field(None, ge=1, description="default: targets.k")
    method: Literal["optimal", "sdcmicro"] = "optimal"
    alpha: float | None = Field(None, ge=0.0, le=1.0, description="default: the plan's alpha")


class RiskSuppressionParams(_SuppressionParams):
    """Suppress key values until no record's individual risk exceeds max_risk (default: targets.max_individual_risk)."""

    max_risk: float | None = Field(None, gt=0.0, le=1.0, description="default: targets.max_individual_risk")

    def check(self, ctx: StepContext) -> None:
        super().check(ctx)
        if self.max_risk is None and ctx.targets.max_individual_risk is None:
            raise ValueError("give max_risk or set targets.max_individual_risk")


def _breakdown(change: Change) -> str:
    parts = [f"{name} {count}" for name, count in change.suppressed.items() if count]
    return "; ".join(parts)


def _describe_local(params: LocalSuppressionParams, change: Change) -> str:
    keys = ", ".join(change.params.get("keys", []))
    k = change.params.get("k")
    cells = change.details.get("cells_suppressed", sum(change.suppressed.values()))
    if not cells:
        return f"No key values needed suppressing: every combination of {keys} was already shared by at least {k} records."
    return (
        f"Values of the key variables were suppressed (set to missing) in {cells} cells of "
        f"{change.records_touched} records ({_breakdown(change)}) so that every combination of {keys} "
        f"is shared by at least {k} records; treat these as missing at random only with care."
    )


def _describe_risk(params: RiskSuppressionParams, change: Change) -> str:
    keys = ", ".join(change.params.get("keys", []))
    limit = f"{100 * change.params.get('max_risk', 0):g}%"
    cells = change.details.get("cells_suppressed", sum(change.suppressed.values()))
    if not cells:
        return f"No key values needed suppressing: no record's re-identification risk on {keys} exceeded {limit}."
    return (
        f"Values of the key variables were suppressed (set to missing) in {cells} cells of "
        f"{change.records_touched} records ({_breakdown(change)}) so that no record's estimated "
        f"re-identification risk on {keys} exceeds {limit}; treat these as missing at random only with care."
    )


@register("local_suppression", LocalSuppressionParams, _describe_local)
def _local_suppression_step(ds: Dataset, params: LocalSuppressionParams, ctx: StepContext) -> MethodResult:
    household, level = params.household(ctx)
    return local_suppression(
        ds,
        keys=params.key_list(ctx),
        k=params.k if params.k is not None else ctx.targets.k,
        method=params.method,
        importance=params.importance,
        alpha=params.alpha if params.alpha is not None else ctx.alpha,
        household=household,
        household_level=level,
        weight=ctx.roles.weight,
    )


@register("risk_suppression", RiskSuppressionParams, _describe_risk)
def _risk_suppression_step(ds: Dataset, params: RiskSuppressionParams, ctx: StepContext) -> MethodResult:
    household, level = params.household(ctx)
    max_risk = params.max_risk if params.max_risk is not None else ctx.targets.max_individual_risk
    return suppress_by_risk(
        ds,
        keys=params.key_list(ctx),
        max_risk=max_risk,
        weight=ctx.roles.weight,
        alpha=ctx.alpha,
        importance=params.importance,
        household=household,
        household_level=level,
    )
