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
from test_service_differencing_growth import VALUES, _frame, _request, agree_with_the_full_search


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
    agree_with_the_full_search(monkeypatch, seed, n, threshold, {"_MERGE": False, "_FEWER_CELLS": False}, steps=6)


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


@pytest.fixture(scope="module")
def searched():
    """Blocks proved clear by the first search, without the empty classes (not vacuous)."""
    seen = {"proved first": 0}
    yield seen
    assert seen["proved first"] > 0, seen


@random_sequences(25, 40, 160)
def test_searching_first_without_empty_classes_decides_as_the_bounded_search(
    milp_only, searched, monkeypatch, seed, n, threshold
):
    """The first search leaves the classes of empty regions out (a relaxation of bounding them
    to [0, 1]); its "none" ends the search, a union it finds goes to the bounded search. A
    guard so and one searching bounded at once decide every request alike, and what they
    accept passes the oracle over every point of the space."""
    guard = agree_with_the_full_search(monkeypatch, seed, n, threshold, {"_EMPTY_FIRST": False}, steps=6)
    searched["proved first"] += guard.proved_without_empty


def test_a_union_found_without_empty_classes_counts_only_within_their_bounds():
    """Atoms a (3 records), e (empty), L1 and L2 (large). With cells {a, e, L1}, {e, L2},
    {L1, L2} every combination that is 0 on the large atoms has e = 2a: leaving e out finds
    {a} (3 records) but only with e at 2, so the search says LOOSE and the bounded search
    finds none; with cells {a, e, L1}, {L1} it has e = a, within [0, 1]: a union of both."""
    from scipy import sparse

    from safemicro.service.differencing_milp import LOOSE, smallest_union

    large, sizes = np.array([2, 3]), np.array([3, 0])
    leaning = sparse.csr_matrix(np.array([[1, 1, 1, 0], [0, 1, 0, 1], [0, 0, 1, 1]], dtype=float))
    within = sparse.csr_matrix(np.array([[1, 1, 1, 0], [0, 0, 1, 0]], dtype=float))
    free = dict(rows=np.array([0]), weight=sizes[:1], integral=np.array([True]), threshold=10, loose=np.array([1]))
    bounded = dict(rows=np.array([0, 1]), weight=sizes, integral=np.array([True, False]), threshold=10)
    assert smallest_union(leaning, large, **free) == LOOSE
    assert smallest_union(leaning, large, **bounded) is None
    assert smallest_union(within, large, **free) == 3
    assert smallest_union(within, large, **bounded) == 3
