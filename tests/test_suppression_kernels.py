"""Optimal local suppression's compiled kernels: the same decisions as the NumPy engine,
and fast enough for the workbench on the example survey (issue: ~1.25 s of CPU before)."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from safemicro.examples import generate_survey
from safemicro.io import Dataset
from safemicro.methods.suppression import local_suppression
from safemicro.methods.suppression_input import _prepare, k_safe
from safemicro.methods.suppression_optimal import _importance_costs, _optimal

KEYS = ["camp", "origin", "hh_size", "relationship", "sex", "age"]


@pytest.fixture(scope="module")
def survey() -> Dataset:
    """The example survey with the example plan's recodes (age bands, household size ≤ 10)."""
    ds = generate_survey()
    bands = sum((pl.col("age") >= b).cast(pl.Int32) for b in (5, 10, 15, 18, 25, 35, 45, 60))
    return ds.with_frame(ds.frame.with_columns(bands.alias("age"), pl.col("hh_size").clip(upper_bound=10)))


@pytest.mark.parametrize(
    "k, alpha, household", [(3, 1.0, None), (5, 0.5, None), (3, 1.0, "hhid"), (2, 0.3, "hhid")]
)  # fmt: skip
def test_kernels_decide_as_the_numpy_engine(survey, k, alpha, household):
    ds = survey if household is None else survey.with_frame(survey.frame.head(3000))
    inp = _prepare(ds, KEYS, None, household, ["camp", "hh_size"] if household else [])
    costs = _importance_costs(["hh_size", "camp"], inp.keys)
    fast = k_safe(k)

    def plain(fk, Fk):  # the same test without the threshold: the NumPy engine
        return fast(fk, Fk)

    eng_fast, _ = _optimal(inp, alpha, fast, costs)
    eng_plain, _ = _optimal(inp, alpha, plain, costs)
    assert eng_fast.kernels is not None and eng_plain.kernels is None
    assert np.array_equal(eng_fast.record_masks(), eng_plain.record_masks())
    alive = eng_fast.n > 0
    assert np.array_equal(eng_fast.fk[alive], eng_plain.fk[eng_plain.n > 0])


def test_example_survey_is_fast(survey):
    local_suppression(survey, keys=KEYS, k=3)  # compile (or load numba's cache)
    cpu = []
    for _ in range(3):
        t0 = time.process_time()
        r = local_suppression(survey, keys=KEYS, k=3)
        cpu.append(time.process_time() - t0)
    assert r.change.details["cells_suppressed"] == 2089  # the NumPy engine's count
    assert min(cpu) < 0.6, cpu  # ~1.25 s of CPU with the NumPy engine, ~0.17 s compiled
