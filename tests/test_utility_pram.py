"""Proportions of PRAMed variables: the corrected estimate (P')⁻¹·λ̂ and its wider interval.

Hand-checked case (simple random sample of 100, no weights): P = [[0.8, 0.2], [0.3, 0.7]],
50 records released in each category. (P')⁻¹ = [[1.4, −0.6], [−0.4, 1.6]], so
π̂₁ = 1.4·0.5 − 0.6·0.5 = 0.4; its variance (Kooiman et al. 1997) is
Q·V̂(λ̂)·Q' with V̂(λ̂) = [[1, −1], [−1, 1]]·0.25/99 (the design's n/(n−1) convention), i.e.
(1.4 + 0.6)²·0.25/99 = 1/99, an SE of 0.1005 against the naive 0.0503.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from safemicro.io import Dataset
from safemicro.methods.randomization import pram
from safemicro.plan import Indicator, Roles, Utility
from safemicro.utility import compare
from safemicro.utility.design import make_design
from safemicro.utility.pram_correction import corrected_proportions, pram_matrices

P = [[0.8, 0.2], [0.3, 0.7]]


def test_hand_checked_simple_random_sample():
    released = Dataset(pl.DataFrame({"x": [1] * 50 + [2] * 50}))
    design = make_design(None, None, None, n=100)
    matrices = [{"stratum": {}, "from": [1, 2], "to": [1, 2], "matrix": P}]
    est, why = corrected_proportions(released, "x", [1, 2], matrices, design, None)
    assert why is None
    assert est["estimate"][0] == pytest.approx([0.4, 0.6], abs=1e-12)
    assert est["se"][0] == pytest.approx([math.sqrt(1 / 99)] * 2, rel=1e-9)
    z = 1.959963984540054
    assert est["lower"][0, 0] == pytest.approx(0.4 - z * math.sqrt(1 / 99), rel=1e-6)


def test_kooiman_variance_with_strata_matrices():
    """Two strata with their own matrices: the linearised variance equals Q_s·V̂(λ̂_s)·Q_s'
    summed over the strata (weights 1, each stratum its own simple random sample)."""
    rng = np.random.default_rng(4)
    s = np.repeat([1, 2], [120, 80])
    x = np.where(rng.random(200) < np.where(s == 1, 0.3, 0.6), 1, 2)
    released = Dataset(pl.DataFrame({"s": s, "x": x}))
    p2 = [[0.9, 0.1], [0.25, 0.75]]
    mats = [{"stratum": {"s": 1}, "from": [1, 2], "to": [1, 2], "matrix": P},
            {"stratum": {"s": 2}, "from": [1, 2], "to": [1, 2], "matrix": p2}]  # fmt: skip
    design = make_design(None, pl.Series(s), None, n=200)
    est, _ = corrected_proportions(released, "x", [1, 2], mats, design, None)
    total, var = 0.0, 0.0
    for stratum, mat in ((1, P), (2, p2)):
        q = np.linalg.inv(np.asarray(mat).T)
        n_s = (s == stratum).sum()
        lam = np.array([(x[s == stratum] == 1).mean(), (x[s == stratum] == 2).mean()])
        cov = (np.diag(lam) - np.outer(lam, lam)) * n_s / (n_s - 1) / n_s  # V̂ of λ̂ in the stratum
        share = n_s / 200
        total += share * (q @ lam)[0]
        var += share**2 * (q @ cov @ q.T)[0, 0]
    assert est["estimate"][0, 0] == pytest.approx(total, rel=1e-12)
    assert est["se"][0, 0] == pytest.approx(math.sqrt(var), rel=1e-9)


def test_compare_reports_corrected_interval_for_prammed_proportion():
    rng = np.random.default_rng(7)
    n = 3000
    frame = pl.DataFrame({"status": rng.choice([1, 2, 3, 4], n, p=[0.5, 0.25, 0.18, 0.07]).astype(np.int64)})
    ds = Dataset(frame)
    res = pram(ds, variables="status", keep=0.8, invariant=True, seed=3)
    utility = Utility(indicators=[Indicator(variable="status", kind="proportion", value=4, label="not registered")])
    out = compare(ds, res.dataset, roles=Roles(), utility=utility, changes=[res.change])
    row = out["indicators"][0]
    naive, fixed = row["after"], row["after_pram_corrected"]
    assert fixed["upper"] - fixed["lower"] > 1.2 * (naive["upper"] - naive["lower"])
    assert any("understates" in note for note in out["notes"])
    # without the changes (the old report) there is no correction and no flag
    plain = compare(ds, res.dataset, roles=Roles(), utility=utility)
    assert "after_pram_corrected" not in plain["indicators"][0]
    assert pram_matrices([res.change])["status"][0]["from"] == [1, 2, 3, 4]


def test_corrected_estimate_in_internal_report_only():
    from safemicro.report.sections.utility import _indicator_rows
    from safemicro.utility.pram_correction import public_indicators

    side = {"estimate": 0.4, "se": 0.1, "lower": 0.2, "upper": 0.6, "n": 100}
    row = {"indicator": "x", "variable": "x", "before": side, "after": side, "after_pram_corrected": side}
    assert "PRAM-corrected" in _indicator_rows([row])[0]["after"]
    assert "too narrow" in _indicator_rows([row | {"after_pram_corrected": None}])[0]["after"]
    assert "after_pram_corrected" not in public_indicators([row])[0]
