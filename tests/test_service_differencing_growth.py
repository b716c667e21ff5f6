"""The differencing guard's shortcut for requests that add no direction on small atoms
(safemicro.service.differencing_growth, issue 13 fresh free queries) and its fail-closed
time budget.

The shortcut skips the 0/1 search when the state before the request was searched clear and
the request adds no new direction of the released span lying wholly on small atoms. Checked
on random request sequences over a value space (as the node builds its ledgers): a guard
with the shortcut and one without it give the same verdict at every step, the shortcut
fires, and what the guard accepts passes the independent MILP oracle (tests/service_oracle.py)
over every point of the space.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import safemicro.service.differencing as dif
from guard_sequences import random_sequences
from safemicro.service.differencing import DifferencingGuard
from safemicro.service.differencing_space import ValueSpace
from service_oracle import empty_regions_bounded, small_group_determined

VALUES = {"admin1": ["n", "s", "e"], "day": list(range(1, 7)), "group": ["idp", "ref", "host"]}


def _frame(rng: np.random.Generator, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "admin1": rng.choice(VALUES["admin1"], n),
            "day": rng.integers(1, 7, n),
            "group": rng.choice(VALUES["group"], n, p=[0.5, 0.4, 0.1]),
        }
    )


def _grid() -> pl.DataFrame:
    out = pl.DataFrame({"admin1": VALUES["admin1"]})
    for col in ("day", "group"):
        out = out.join(pl.DataFrame({col: VALUES[col]}), how="cross")
    return out


def _request(rng: np.random.Generator) -> list[dict]:
    """A table by one dimension (often with its total), under a random filter: the shape of
    the node's requests, margins making many of them add nothing new on small atoms."""
    dim = str(rng.choice(["admin1", "group", "day"]))
    base: dict = {}
    for other in ("admin1", "group"):
        if other != dim and rng.random() < 0.4:
            vals = VALUES[other]
            base[other] = {"in": sorted(rng.choice(vals, int(rng.integers(1, len(vals))), replace=False).tolist())}
    if dim != "day" and rng.random() < 0.4:
        lo = int(rng.integers(1, 7))
        base["day"] = {"between": [lo, int(rng.integers(lo, 7))]}
    cells = [{**base, dim: {"in": [v]}} for v in VALUES[dim]]
    return cells + ([base or {"admin1": {"in": VALUES["admin1"]}}] if rng.random() < 0.7 else [])


@pytest.fixture(scope="module")
def fired():
    """Shortcuts taken over all examples (the test below must not pass vacuously)."""
    seen = {"shortcuts": 0}
    yield seen
    assert seen["shortcuts"] > 0, seen


def agree_with_the_full_search(monkeypatch, seed: int, n: int, threshold: int, off: dict, steps: int = 7):
    """A guard over a value space and one with the attributes ``off`` of
    safemicro.service.differencing patched (a shortcut turned off) decide every request of a
    random sequence alike, and what they accept passes the oracle over every point of the
    space. Returns the fast guard."""
    rng = np.random.default_rng(seed)
    df = _frame(rng, n)
    space = ValueSpace.build(VALUES, mass=df.height)
    fast = DifferencingGuard(df, threshold, space=space)
    full = DifferencingGuard(df, threshold, space=space)
    released: list[dict] = []
    for _ in range(steps):
        cells = _request(rng)
        a = fast.check(cells, locate=False)
        with monkeypatch.context() as m:
            for name, value in off.items():
                m.setattr(dif, name, value)
            b = full.check(cells, locate=False)
        assert (a.ok, a.kind) == (b.ok, b.kind)
        if a.ok:
            fast.commit(cells)
            full.commit(cells)
            released += cells
    if released:  # everything accepted together: nothing small or empty determined over the space
        grid = _grid()
        assert small_group_determined(released, df, threshold, grid=grid) is None
        assert empty_regions_bounded(released, df, grid) == []
    return fast


@random_sequences(25, 60, 200)
def test_the_shortcut_decides_as_the_full_search(fired, monkeypatch, seed, n, threshold):
    off = {"no_new_small_directions": lambda *args: False}
    fired["shortcuts"] += agree_with_the_full_search(monkeypatch, seed, n, threshold, off).shortcuts


def test_a_search_out_of_time_is_refused_and_counted():
    """Fail closed: a 0/1 search that does not finish within the budget refuses the request
    (kind "undecided"), counts it, and never marks the ledger clear."""
    rng = np.random.default_rng(5)
    df = _frame(rng, 400)
    space = ValueSpace.build(VALUES, mass=df.height)
    guard = DifferencingGuard(df, 8, space=space, search_seconds=1e-9)
    old = dif._ENUMERATE_MAX
    dif._ENUMERATE_MAX = 0  # every block goes to the MILP (which cannot finish in 1 ns)
    try:
        verdicts = []
        for _ in range(8):
            cells = _request(rng)
            v = guard.check(cells, locate=False)
            verdicts.append(v)
            if v.ok:
                guard.commit(cells)
    finally:
        dif._ENUMERATE_MAX = old
    undecided = [v for v in verdicts if v.kind == "undecided"]
    assert undecided and guard.undecided == len(undecided)
    assert all(not v.ok for v in undecided)
