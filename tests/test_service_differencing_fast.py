"""The differencing guard's speed-ups keep its exact decision (issue 13, fresh free queries).

Two shortcuts, each checked against the full search on random request sequences and
against the independent MILP oracle (tests/service_oracle.py):

- the 0/1 search solves its MILP over an independent subset of the released cells
  (safemicro.service.differencing_cells) instead of all of them: forced onto the MILP path
  (no enumeration), a guard with the subset and one with every cell give the same verdict
  and group size at every step, and the oracle agrees;
- when every unit has one record, the node checks a magnitude release against the unit
  ledger only: with both guards built as the node builds them, "unit ledger refuses" and
  "either ledger refuses" are the same on every step.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import safemicro.service.differencing as dif
from guard_sequences import random_sequences
from safemicro.service.differencing import DifferencingGuard
from safemicro.service.differencing_cells import independent_cells
from service_oracle import small_group_determined


@pytest.fixture
def milp_only():
    """Every block of the 0/1 search goes to the MILP (the path the subset changes); the same
    for every generated example, so a function-scoped fixture is right here."""
    old = dif._ENUMERATE_MAX
    dif._ENUMERATE_MAX = 0
    yield
    dif._ENUMERATE_MAX = old


def _frame(rng: np.random.Generator, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "admin1": rng.choice(["n", "s", "e"], n),
            "day": rng.integers(1, 7, n),
            "group": rng.choice(["idp", "ref", "host"], n, p=[0.5, 0.4, 0.1]),
        }
    )


def _cell(rng: np.random.Generator) -> dict:
    cell: dict = {}
    if rng.random() < 0.6:
        cell["admin1"] = {"in": sorted(rng.choice(["n", "s", "e"], rng.integers(1, 3), replace=False).tolist())}
    if rng.random() < 0.6:
        lo = int(rng.integers(1, 7))
        cell["day"] = {"between": [lo, int(rng.integers(lo, 7))]}
    if rng.random() < 0.6:
        cell["group"] = {"in": sorted(rng.choice(["idp", "ref", "host"], rng.integers(1, 3), replace=False).tolist())}
    return cell


def _request(rng: np.random.Generator) -> list[dict]:
    """A few cells and, often, their margin (dependent cells: what the subset drops)."""
    cells = [_cell(rng) for _ in range(int(rng.integers(1, 4)))]
    if rng.random() < 0.5:
        dim = str(rng.choice(["admin1", "group"]))
        values = ["n", "s", "e"] if dim == "admin1" else ["idp", "ref", "host"]
        base = {k: v for k, v in cells[0].items() if k != dim}
        cells = [{**base, dim: {"in": [v]}} for v in values] + [base]
    return cells


@random_sequences(30, 30, 90)
def test_the_milp_over_independent_cells_decides_as_over_all_cells(milp_only, seed, n, threshold):
    rng = np.random.default_rng(seed)
    df = _frame(rng, n)
    fast, full = DifferencingGuard(df, threshold), DifferencingGuard(df, threshold)
    released: list[dict] = []
    for _ in range(8):
        cells = _request(rng)
        dif._FEWER_CELLS = True
        a = fast.check(cells, locate=False)
        dif._FEWER_CELLS = False
        try:
            b = full.check(cells, locate=False)
        finally:
            dif._FEWER_CELLS = True
        assert (a.ok, a.kind) == (b.ok, b.kind)
        if a.ok:
            assert small_group_determined(released + cells, df, threshold) is None
            fast.commit(cells)
            full.commit(cells)
            released += cells
        elif a.kind == "small_group":
            assert small_group_determined(released + cells, df, threshold) is not None


def test_the_subset_is_smaller_and_spans_the_same_cells():
    """Not a vacuous pass: on random ledgers with margins the subset drops cells, and every
    dropped cell is a combination of the kept ones (least squares, exact to rounding)."""
    dropped = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        df = _frame(rng, 80)
        guard = DifferencingGuard(df, 2)  # a low threshold: most requests are accepted
        for _ in range(6):
            cells = _request(rng)
            if guard.check(cells, locate=False).ok:
                guard.commit(cells)
        state = guard._state
        if state.cells is None:
            continue
        all_rows = state.cells.toarray()
        kept = independent_cells(state.cells, state.basis, state.counts).toarray()
        assert np.linalg.matrix_rank(kept) == np.linalg.matrix_rank(all_rows) == kept.shape[0]
        coef, *_ = np.linalg.lstsq(kept.T, all_rows.T, rcond=None)
        assert np.abs(kept.T @ coef - all_rows.T).max() < 1e-8
        dropped += all_rows.shape[0] - kept.shape[0]
    assert dropped > 0


@random_sequences(30, 30, 90)
def test_one_record_per_unit_the_unit_ledger_decides_for_both(seed, n, threshold):
    """The node's two guards over a frame with one record per unit (unit ledger: every
    release; record ledger: sums only). Refused by the unit ledger alone iff refused by
    either, on every step of a random sequence of counts and sums."""
    from safemicro.service.population import one_record_per_unit

    rng = np.random.default_rng(seed)
    df = _frame(rng, n).with_row_index("_unit").with_columns(pl.col("_unit").cast(pl.String))
    assert one_record_per_unit(df)
    units = DifferencingGuard(df, threshold, unit="_unit")
    records = DifferencingGuard(df.drop("_unit"), threshold)
    for _ in range(10):
        cells = _request(rng)
        magnitude = rng.random() < 0.5
        u = units.check(cells, locate=False)
        r = records.check(cells, locate=False) if magnitude else None
        either_refuses = not u.ok or (r is not None and not r.ok)
        assert either_refuses == (not u.ok)
        if u.ok:
            units.commit(cells)
            if magnitude:
                records.commit(cells)


def test_the_first_group_found_and_the_smallest_agree_on_existence():
    """The node's search stops at the first group it finds (any gap accepted); on random
    ledgers it finds one exactly when the minimising search does, never a smaller one, and
    below the threshold (the MILP over all small atoms, as the guard would pass them)."""
    from safemicro.service.differencing_milp import smallest_group

    seen = {True: 0, False: 0}
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        df = _frame(rng, int(rng.integers(60, 300)))
        threshold = int(rng.integers(3, 9))
        guard = DifferencingGuard(df, 1)  # unchecked commits: ledgers with and without groups
        for _ in range(int(rng.integers(1, 5))):
            guard.commit(_request(rng))
        state = guard._state
        small = np.flatnonzero(state.counts < threshold)
        if state.cells is None or len(small) == 0:
            continue
        best = smallest_group(state.cells, state.counts, small, threshold, smallest=True)
        first = smallest_group(state.cells, state.counts, small, threshold, smallest=False)
        assert (best is None) == (first is None)
        if best is not None:
            assert best <= first < threshold
        seen[best is None] += 1
    assert seen[True] and seen[False]  # both outcomes occurred
