"""CART synthesis fitted on a sample: the marginal bound of safemicro.synth.fit_sample holds.

The full data: 1M records drawn with replacement from sdcMicro's testdata (the 7 keys).
A CART fitted on a 20k simple random sample generates 100k records; every cell of every
one- and two-way table of the keys must lie within the documented bound
z·sqrt(p(1−p)((1 − n_s/N)/n_s + 1/n)) + b, z simultaneous over all cells (Bonferroni), b the
CART's own error measured by fitting it on the FULL 1M records (independent reference:
the full-data fit). The safeguards are checked to run against the full input.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import KV7
from safemicro.errors import SafemicroError
from safemicro.io import from_frame
from safemicro.synth.cart import CartSynthesizer
from safemicro.synth.fit_sample import (
    FIT_SAMPLE_ABOVE,
    cart_error,
    fit_size,
    marginal_bound,
    marginal_shares,
    simultaneous_z,
)
from safemicro.synth.synthesis import synthesize

N, N_FIT, N_SYN = 1_000_000, 20_000, 100_000


@pytest.fixture(scope="module")
def full(testdata) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    return testdata.select(KV7)[rng.integers(0, testdata.height, N)]


@pytest.fixture(scope="module")
def shares(full) -> pl.DataFrame:
    model = CartSynthesizer()
    model.fit(from_frame(full), seed=2)
    full_fit = model.sample(20_000, seed=3).frame
    sampled = synthesize(full, n=N_SYN, seed=4, fit_sample=N_FIT, check_copies=False)
    assert sampled.report["fit_sample"] == {"n": N_FIT, "unit": "record"}
    assert sampled.dataset.n == N_SYN
    return marginal_shares([full, full_fit, sampled.dataset.frame], KV7), sampled


def test_marginals_within_the_documented_bound(shares):
    cells, _ = shares
    z = simultaneous_z(cells.height)
    p, p_ff, p_syn = (cells[c].to_numpy() for c in ("p0", "p1", "p2"))
    b = cart_error(p, p_ff, 20_000, z)
    bound = marginal_bound(p, N_FIT, N_SYN, n_full=N, z=z, cart_error=b, p_synth=p_syn)
    err = np.abs(p_syn - p)
    worst = int(np.argmax(err / bound))
    assert (err <= bound).all(), cells.row(worst)
    # the bound is not vacuous: the sampling term alone is below 1.5 percentage points
    assert marginal_bound(0.5, N_FIT, N_SYN, n_full=N, z=z) < 0.015
    # and the one-way tables are reproduced within the sampling term alone (CART draws
    # each key's marginal from its fit sample, the first key exactly)
    one_way = ~cells["table"].str.contains(" x ").to_numpy()
    assert (err[one_way] <= marginal_bound(p, N_FIT, N_SYN, n_full=N, z=z)[one_way] + 0.002).all()


def test_a_sample_of_a_different_file_breaks_the_bound(full, shares):
    """The check can fail: shares of a file whose urbrur shares are shifted by 5 points."""
    cells, sampled = shares
    other = sampled.dataset.frame.with_columns(
        pl.when(pl.Series(np.random.default_rng(5).random(N_SYN) < 0.05))
        .then(1)
        .otherwise(pl.col("urbrur"))
        .alias("urbrur")
    )
    shifted = marginal_shares([full, other], ["urbrur"], two_way=False)
    p, q = shifted["p0"].to_numpy(), shifted["p1"].to_numpy()
    z = simultaneous_z(cells.height)
    assert (np.abs(q - p) > marginal_bound(p, N_FIT, N_SYN, n_full=N, z=z)).any()


def test_safeguards_check_the_full_input(testdata, monkeypatch):
    import safemicro.synth.synthesis as synthesis

    monkeypatch.setattr(synthesis, "Q_DELTA_POOL", 2_000)  # the pool of large files, on a small one
    data = testdata.select([*KV7, "age"])
    out = synthesize(data, n=500, seed=6, fit_sample=1_000, keys=KV7)
    qd = out.report["safeguards"]["q_delta"]
    assert qd["pool"] == {"training": 2_000, "synthetic": 500} and qd["k"] == min(500, 2_000 // 6)
    uniques = int(data.select(KV7 + ["age"]).is_unique().sum())
    assert out.report["safeguards"]["exact_matches"]["train_uniques"] == uniques
    assert out.report["fit_sample"] == {"n": 1_000, "unit": "record"}
    assert any("simple random sample of 1,000 records" in n for n in out.report["notes"])


def test_household_mode_samples_whole_households(testdata):
    out = synthesize(
        testdata.select([*KV7, "age", "ori_hid"]), seed=7, fit_sample=300, household="ori_hid", check_copies=False
    )
    assert out.report["fit_sample"] == {"n": 300, "unit": "household"}
    assert out.dataset.frame["ori_hid"].n_unique() == testdata["ori_hid"].n_unique()


def test_fit_size_rules():
    assert fit_size(FIT_SAMPLE_ABOVE, None, False) is None
    assert fit_size(FIT_SAMPLE_ABOVE + 1, None, False) == FIT_SAMPLE_ABOVE
    assert fit_size(10**7, 0, False) is None
    assert fit_size(50, 100, False) is None
    assert fit_size(10**7, None, True) is None
    with pytest.raises(SafemicroError, match="DP synthesis"):
        fit_size(10**7, 1000, True)
    with pytest.raises(SafemicroError, match="0 \\(fit on all"):
        fit_size(10, -1, False)


def test_fit_rows_takes_whole_households(testdata):
    from safemicro.synth.fit_sample import fit_rows

    ds = from_frame(testdata)
    got = fit_rows(ds, 200, "ori_hid", np.random.default_rng(8)).frame
    sizes = testdata.group_by("ori_hid").len()
    kept = got.group_by("ori_hid").len().join(sizes, on="ori_hid", suffix="_full")
    assert kept.height == 200
    assert (kept["len"] == kept["len_full"]).all()
    rows = fit_rows(from_frame(testdata.with_row_index("r")), 1000, None, np.random.default_rng(8)).frame
    assert rows.height == 1000 and rows["r"].n_unique() == 1000  # without replacement
