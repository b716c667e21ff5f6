"""The value space of the differencing ledger: where nobody is, as well as where somebody is.

Why. Records alone cannot describe an *empty* region: if the ledger's atoms were only
blocks of records, a region of the value space that holds nobody would have no atom, so
``count(camp=6) = 369`` and ``count(camp=6, origin≠7) = 369`` would pass (no group of records
is isolated) while telling that nobody of origin 7 is in camp 6 — exactly what the node
hides when it suppresses an empty cell like a small one (see :mod:`.presence`). Conversely
the ledger would treat every empty region as known to the analyst, so a table whose
secondary suppression hides a small cell behind an empty partner (a sparse origin ×
destination table) looked disclosive although the analyst cannot know the partner is empty.

Definition. The *value space* ``V`` is the set of points an analyst considers possible
before any release: every combination of the declared values of the ledger's columns,
except what the node's public declarations rule out — a column read from the same source
column by two datasets of a population is one coordinate (``same``), and an admin unit lies
in its declared parent only (``parent``; a unit the data never shows may lie in any parent).
Each released or suppressed cell is a predicate over ``V`` (a box: per column a set of
values). The *regions* are the non-empty sets of points of ``V`` with the same membership
in every cell so far (realisable membership signatures), and a region's count (possibly 0)
is the number of records (or units) whose values fall in it. The guard reasons over these
regions: a request is refused when, with everything released before, it would determine the
count of a union of regions to lie in ``0..threshold-1`` (a 0/1 combination of regions in
the row space of the released cells), or would prove a union of empty regions empty through
non-negativity (a non-negative, non-zero combination of empty regions equal to a combination
of released cells) — the count of an empty region is protected exactly as a small one.

Cost. ``V`` is never enumerated. Per group of linked coordinates the possible tuples are
kept once; released cells split each group's tuples into *classes* (tuples no cell tells
apart), and the ledger's virtual points are the combinations of classes — one per class of
each touched group, a single point for an untouched one — each weighing its share of ``V``
(additive, so the ledger's basis stays orthonormal when points split). Only dimensions that
released cells touch, and only as finely as they cut them, cost anything; above
``max_points`` virtual points the guard refuses (fail closed) rather than grow.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError

__all__ = ["ValueSpace", "Grid", "GridTooFine", "empty_cone"]

MAX_POINTS = 50_000  # regions of a value space kept at most (beyond: refused, fail closed)
_counter = itertools.count(1)


class GridTooFine(SafemicroError):
    """The released cells would cut the value space into more virtual points than allowed."""


@dataclass(frozen=True)
class Grid:
    """The value space as cut so far: per group the class of each tuple and the tuples per
    class; the virtual points (one class per group) with their weights."""

    classes: tuple  # per group: (tuples,) class id
    sizes: tuple  # per group: (classes,) tuples per class
    points: np.ndarray  # (points, groups) class ids
    weight: np.ndarray  # (points,) share of V times the space's mass
    generation: int  # changes whenever the points change (cache keys over points use it)


class ValueSpace:
    """The publicly possible points of the ledger's columns (see the module docstring)."""

    def __init__(self, groups: list[pl.DataFrame], alias: Mapping[str, str], mass: float, max_points: int) -> None:
        self.groups = groups
        self.mass = float(mass)
        self.max_points = int(max_points)
        self.where: dict[str, tuple[int, str]] = {}  # ledger column -> (group, coordinate column)
        for g, frame in enumerate(groups):
            for coord in frame.columns:
                self.where[coord] = (g, coord)
        for col, coord in alias.items():
            self.where[col] = self.where[coord]
        self._values = {c: frame.get_column(c).to_numpy() for frame in groups for c in frame.columns}

    @classmethod
    def build(
        cls,
        values: Mapping[str, list],
        *,
        same: Mapping[str, Any] | None = None,
        parent: Mapping[str, str] | None = None,
        observed: pl.DataFrame | None = None,
        mass: float = 1.0,
        max_points: int = MAX_POINTS,
    ) -> ValueSpace:
        """The space of ``values`` (column -> declared values). ``same``: column -> identity
        key, columns with equal keys are one coordinate; ``parent``: column -> its parent
        column (admin nesting), the pairs observed in ``observed`` (the records) fix each
        unit's parent; ``mass``: the total weight of the virtual points (about the number of
        records keeps the ledger's arithmetic balanced)."""
        same = dict(same or {})
        parent = dict(parent or {})
        rep: dict[Any, str] = {}
        alias: dict[str, str] = {}
        coords: dict[str, list] = {}
        for col, vals in values.items():
            key = same.get(col, ("column", col))
            first = rep.setdefault(key, col)
            alias[col] = first
            have = coords.setdefault(first, [])
            seen = set(have)
            have.extend(v for v in vals if v not in seen and not seen.add(v))
        up = {}
        for col, p in parent.items():
            if col in alias and p in alias and alias[col] != alias[p]:
                up[alias[col]] = alias[p]
        # groups: coordinates linked by nesting
        root = {c: c for c in coords}

        def find(c: str) -> str:
            while root[c] != c:
                c = root[c]
            return c

        for c, p in up.items():
            root[find(c)] = find(p)
        members: dict[str, list[str]] = {}
        for c in coords:
            members.setdefault(find(c), []).append(c)
        groups = []
        for cols in members.values():
            groups.append(_tuples(cols, coords, up, observed, alias))
        return cls(groups, {c: a for c, a in alias.items() if c != a}, mass, max_points)

    # -- the cut value space ------------------------------------------------------------------

    def empty_grid(self) -> Grid:
        g = len(self.groups)
        return Grid(
            classes=tuple(np.zeros(f.height, dtype=np.int64) for f in self.groups),
            sizes=tuple(np.array([f.height], dtype=np.int64) for f in self.groups),
            points=np.zeros((1, g), dtype=np.int64),
            weight=np.array([self.mass]),
            generation=0,
        )

    def tuple_masks(self, predicate: Mapping[str, Any]) -> dict[int, np.ndarray]:
        """Per group it constrains: which of the group's tuples the predicate admits."""
        out: dict[int, np.ndarray] = {}
        for column, cond in predicate.items():
            if column not in self.where:
                raise SafemicroError("the ledger's value space does not declare this column", column=str(column))
            g, coord = self.where[column]
            vals = self._values[coord]
            ((op, arg),) = cond.items()
            if op == "in":
                mask = np.isin(vals, np.asarray(list(arg), dtype=vals.dtype)) if len(arg) else np.zeros(len(vals), bool)
            elif op == "eq":
                mask = vals == arg
            elif op == "between":
                lo, hi = arg
                mask = (vals >= lo) & (vals <= hi)
            else:
                raise SafemicroError(f"unknown condition {op!r}", column=str(column))
            out[g] = out[g] & mask if g in out else mask
        return out

    def refine(self, grid: Grid, predicates: list[Mapping[str, Any]]) -> tuple[Grid, np.ndarray, np.ndarray]:
        """Cut ``grid`` by ``predicates``: the new grid, each new point's point in ``grid``,
        and the (predicates × points) membership of the new points."""
        tm = [self.tuple_masks(p) for p in predicates]
        classes, sizes = list(grid.classes), list(grid.sizes)
        points, weight = grid.points, grid.weight
        origin = np.arange(len(weight))
        changed = False
        for g in range(len(self.groups)):
            rows = [m[g] for m in tm if g in m]
            if not rows:
                continue
            cls = classes[g]
            for start in range(0, len(rows), 62):
                code = np.zeros(len(cls), dtype=np.uint64)
                for j, m in enumerate(rows[start : start + 62]):
                    code |= m.astype(np.uint64) << np.uint64(j)
                # compact code ids first: up to 62 bits times the class id overflowed int64 and
                # merged classes (a coarser grid, the ledger's basis no longer orthonormal)
                _, code_id = np.unique(code, return_inverse=True)
                key = cls * (int(code_id.max()) + 1) + code_id.ravel().astype(np.int64)
                _, first, cls = np.unique(key, return_index=True, return_inverse=True)
            cls = cls.astype(np.int64)
            new_sizes = np.bincount(cls)
            if len(new_sizes) == len(sizes[g]):
                classes[g], sizes[g] = cls, new_sizes
                continue
            changed = True
            # each old class -> its new classes; points of an old class split over them
            _, first = np.unique(cls, return_index=True)
            old_of_new = classes[g][first]
            order = np.argsort(old_of_new, kind="stable")
            per_old = np.bincount(old_of_new, minlength=len(sizes[g]))
            offsets = np.concatenate([[0], np.cumsum(per_old)[:-1]])
            c_old = points[:, g]
            reps = per_old[c_old]
            if int(reps.sum()) > self.max_points:
                raise GridTooFine(
                    f"the released cells would cut the ledger's value space into more than {self.max_points} regions"
                )
            idx = np.repeat(np.arange(len(c_old)), reps)
            local = np.arange(len(idx)) - np.repeat(np.cumsum(reps) - reps, reps)
            child = order[offsets[c_old[idx]] + local]
            points = points[idx].copy()
            points[:, g] = child
            weight = weight[idx] * new_sizes[child] / sizes[g][c_old[idx]]
            origin = origin[idx]
            classes[g], sizes[g] = cls, new_sizes
        new = Grid(tuple(classes), tuple(sizes), points, weight, next(_counter) if changed else grid.generation)
        member = np.ones((len(predicates), len(weight)), dtype=bool)
        firsts = {g: np.unique(new.classes[g], return_index=True)[1] for m in tm for g in m}
        for i, m in enumerate(tm):
            for g, mask in m.items():
                member[i] &= mask[firsts[g]][points[:, g]]
        return new, origin, member


def _tuples(
    cols: list[str], coords: Mapping[str, list], up: Mapping[str, str], observed: pl.DataFrame | None, alias
) -> pl.DataFrame:
    """The possible tuples of one group of nested coordinates: from the root down, a unit
    with an observed parent lies in it, a unit never observed in any."""
    kids: dict[str, list[str]] = {}
    roots = []
    for c in cols:
        if c in up:
            kids.setdefault(up[c], []).append(c)
        else:
            roots.append(c)
    frame: pl.DataFrame | None = None
    for r in roots:
        part = pl.DataFrame({r: coords[r]})
        frame = part if frame is None else frame.join(part, how="cross")
    todo = list(roots)
    while todo:
        p = todo.pop(0)
        for c in kids.get(p, []):
            todo.append(c)
            declared = pl.DataFrame({c: coords[c]})
            pairs = pl.DataFrame({c: [], p: []}, schema={c: declared.schema[c], p: frame.schema[p]})
            if observed is not None:
                oc = next((k for k, a in alias.items() if a == c and k in observed.columns), None)
                op = next((k for k, a in alias.items() if a == p and k in observed.columns), None)
                if oc is not None and op is not None:
                    pairs = (
                        observed.select(pl.col(oc).alias(c), pl.col(op).alias(p))
                        .unique()
                        .cast({c: declared.schema[c], p: frame.schema[p]})
                        .join(declared, on=c, how="semi")
                    )
            loose = declared.join(pairs, on=c, how="anti").join(frame.select(p).unique(), how="cross")
            frame = frame.join(pl.concat([pairs, loose]), on=p, how="inner")
    return frame


def empty_cone(z: np.ndarray, empty: np.ndarray) -> bool:
    """Is there a non-negative, non-zero combination of empty atoms in the column space of
    ``z`` (directions lying wholly on small atoms, rows = those atoms) that is 0 on every
    non-empty one? Its count is 0 and known, so every empty atom it weighs is proved empty
    (counts are never negative): a linear programme, feasibility only."""
    from scipy.optimize import linprog

    y = z[empty]
    rest = z[~empty]
    if rest.shape[0]:
        # the whole right basis (its null part included) without the left one when it is tall:
        # U of a tall matrix was (rows x rows), 100 ms a call on the example's thousands of regions
        _, s, vt = np.linalg.svd(rest, full_matrices=rest.shape[0] < rest.shape[1])
        rank = int((s > 1e-9 * max(1.0, s[0] if len(s) else 1.0)).sum())
        null = vt[rank:].T
        if null.shape[1] == 0:
            return False
        y = y @ null
    y = y[:, np.abs(y).max(axis=0) > 1e-9] if y.size else y
    if y.shape[1] == 0:
        return False
    res = linprog(
        np.zeros(y.shape[1]),
        A_ub=-y,
        b_ub=np.zeros(y.shape[0]),
        A_eq=y.sum(axis=0)[None, :],
        b_eq=[1.0],
        bounds=(None, None),
        method="highs",
    )
    return res.status == 0
