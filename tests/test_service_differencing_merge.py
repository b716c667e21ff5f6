"""The differencing guard's MILP over classes of atoms (safemicro.service.differencing_merge)
and over an independent subset of the cells with a value space (issue 13, fresh free queries).

Forced onto the MILP path (no enumeration, no shortcut), a guard over a value space with
both reductions and one with neither (every cell, one variable per atom, as before) give
the same verdict at every step of random request sequences, and what they accept passes
the independent oracle over every point of the space (tests/service_oracle.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import safemicro.service.differencing as dif
from guard_sequences import random_sequences
from safemicro.service.differencing import DifferencingGuard
from safemicro.service.differencing_merge import row_classes
from safemicro.service.differencing_space import ValueSpace
from service_oracle import empty_regions_bounded, small_group_determined
from test_service_differencing_growth import VALUES, _frame, _grid, _request, agree_with_the_full_search


def test_row_classes_by_hand():
    """Rows 0 and 2 are equal (class weighing 3 + 0, represented by the non-empty row 0);
    rows 1 and 3 are equal and both empty (a [0, 1] class); row 4 alone."""
    block = np.array([[1.0, 0.5], [0.0, 1.0], [1.0, 0.5 + 1e-12], [0.0, 1.0], [-0.0, 2.0]])
    sizes = np.array([3, 0, 0, 0, 4])
    reps, weight, integral = row_classes(block, sizes)
    classes = {int(r): (int(w), bool(i)) for r, w, i in zip(reps, weight, integral, strict=True)}
    assert classes == {0: (3, True), 1: (0, False), 4: (4, True)}


@pytest.fixture
def milp_only(monkeypatch):
    monkeypatch.setattr(dif, "_ENUMERATE_MAX", 0)
    monkeypatch.setattr(dif, "no_new_small_directions", lambda *args: False)


@random_sequences(25, 40, 160)
def test_the_merged_milp_decides_as_the_milp_over_every_atom(milp_only, monkeypatch, seed, n, threshold):
    monkeypatch.setattr(dif, "_EMPTY_BOUNDS", True)  # the exact reductions alone (empty classes kept)
    agree_with_the_full_search(monkeypatch, seed, n, threshold, {"_MERGE": False, "_FEWER_CELLS": False}, steps=6)


@pytest.fixture(scope="module")
def searched():
    """MILPs solved and requests refused only with empty classes left free (not vacuous)."""
    seen = {"milps": 0, "over": 0}
    yield seen
    assert seen["milps"] > 0, seen


@random_sequences(25, 40, 160)
def test_empty_classes_left_free_refuse_whatever_bounded_ones_refuse(
    milp_only, searched, monkeypatch, seed, n, threshold
):
    """Leaving the classes of empty regions out of the MILP is a relaxation of bounding them
    to [0, 1]: every request the bounded search refuses is refused, and what is accepted
    passes the oracle over every point of the space."""
    rng = np.random.default_rng(seed)
    df = _frame(rng, n)
    space = ValueSpace.build(VALUES, mass=df.height)
    free, bounded = DifferencingGuard(df, threshold, space=space), DifferencingGuard(df, threshold, space=space)
    union = dif.smallest_union

    def counted(*args, **kwargs):
        searched["milps"] += 1
        return union(*args, **kwargs)

    monkeypatch.setattr(dif, "smallest_union", counted)
    released: list[dict] = []
    for _ in range(6):
        cells = _request(rng)
        a = free.check(cells, locate=False)
        with monkeypatch.context() as m:
            m.setattr(dif, "_EMPTY_BOUNDS", True)
            b = bounded.check(cells, locate=False)
        assert b.ok or not a.ok
        searched["over"] += b.ok and not a.ok
        if a.ok:
            free.commit(cells)
            bounded.commit(cells)
            released += cells
    if released:
        grid = _grid()
        assert small_group_determined(released, df, threshold, grid=grid) is None
        assert empty_regions_bounded(released, df, grid) == []


def test_the_subset_with_a_value_space_drops_cells():
    """Not vacuous: with a value space (empty regions) the subset is certified and smaller."""
    from safemicro.service.differencing_cells import independent_cells

    dropped = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        df = _frame(rng, 120)
        guard = DifferencingGuard(df, 2, space=ValueSpace.build(VALUES, mass=df.height))
        for _ in range(6):
            guard.commit(_request(rng))
        state = guard._state
        kept = independent_cells(state.cells, state.basis, state.w).toarray()
        rows = state.cells.toarray()
        assert np.linalg.matrix_rank(kept) == np.linalg.matrix_rank(rows) == kept.shape[0]
        dropped += rows.shape[0] - kept.shape[0]
    assert dropped > 0
