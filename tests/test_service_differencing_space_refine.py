"""The value space's refinement never merges classes (issue 13): with more than a few
predicates on one column, the bit code of a tuple reached 2^61 and ``class * (code + 1)``
overflowed int64, so distinct (class, code) keys collided and a refinement made the grid
coarser — found on the example survey's mixed benchmark, where a request of 81 cells
turned 6 livelihood classes into 4 and the ledger's basis lost its orthonormality
(earlier released cells fell out of its span)."""

from __future__ import annotations

import numpy as np

from safemicro.service.differencing_space import ValueSpace


def test_many_predicates_on_one_column_only_split_its_classes():
    values = {"livelihood": [str(i) for i in range(1, 7)], "camp": [str(i) for i in range(1, 9)]}
    space = ValueSpace.build(values, mass=100.0)
    grid, _, _ = space.refine(space.empty_grid(), [{"livelihood": {"in": [v]}} for v in values["livelihood"]])
    preds = [{"livelihood": {"in": ["2", "3", "4", "6"]}, "camp": {"in": [c]}} for c in values["camp"] * 9]
    preds += [{"livelihood": {"in": ["1"]}}]  # 73 predicates: two chunks of 62 bits
    new, origin, member = space.refine(grid, preds)
    g = next(i for i, f in enumerate(space.groups) if "livelihood" in f.columns)
    old_cls, new_cls = grid.classes[g], new.classes[g]
    assert len(new.sizes[g]) >= len(grid.sizes[g])
    # a refinement: tuples in one new class were in one old class and agree on every predicate
    for c in np.unique(new_cls):
        assert len(np.unique(old_cls[new_cls == c])) == 1
    assert len(new.weight) >= len(grid.weight)
    assert np.isclose(new.weight.sum(), grid.weight.sum())
    assert len(new.sizes[g]) == 6  # every value its own class already: nothing to merge
