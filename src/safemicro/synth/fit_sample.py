"""CART synthesis of large files: fit on a random sample, generate the requested number.

Above :data:`FIT_SAMPLE_ABOVE` records (or with an explicit ``fit_sample``) the sequential
CART is fitted on a simple random sample of ``n_s`` records (whole households, a cluster
sample, in household mode) and then generates ``n`` records; the copy safeguards still
check the synthetic records against the FULL input.

The bound. Let p be the share of a cell of a one- or two-way table in the full input of N
records, p_s its share in the fit sample and p̂ its share in n synthetic records. The
sample share has variance p(1−p)/n_s·(1 − n_s/N) (simple random sampling without
replacement); a synthesizer that reproduces its training marginals up to its own error b
(measured by fitting it on the full data, :func:`cart_error`) and draws n records
independently adds p(1−p)/n. So, per cell, with probability about 95 %

    |p̂ − p| ≤ 1.96 · sqrt(p(1−p) · ((1 − n_s/N)/n_s + 1/n)) + b,

and for all C cells of a set of tables at once with z = Φ⁻¹(1 − 0.025/C) in place of 1.96
(Bonferroni). The variance p(1−p) is degenerate at p = 0, and a CART fitted on fewer
records (shallower trees) does put a little mass into combinations the full data lacks:
the bound takes the larger of p(1−p) and p̂(1−p̂) (conservative), as
:func:`marginal_bound` does when given ``p_synth``. With n_s = 200 000 the first term is at most 0.0022 for any cell (p = ½,
n ≥ N large); with n_s = 20 000 it is at most 0.0069. Household mode samples clusters:
the variance of person-level cells grows by the design effect (about 1 + (m − 1)·ρ for
households of m people with intra-household correlation ρ), so the bound is stated for
records, not persons in households. Tested in tests/test_synth_fit_sample.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from statistics import NormalDist

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.methods.base import take_rows

FIT_SAMPLE_ABOVE = 200_000  # inputs with more records are fitted on a sample of this size


def fit_size(n_units: int, fit_sample: int | None, dp: bool) -> int | None:
    """How many units to fit on (None: all). ``fit_sample`` None: automatic (above
    :data:`FIT_SAMPLE_ABOVE`); 0: always all; N: N units when the input has more."""
    if fit_sample is not None and fit_sample < 0:
        raise SafemicroError(f"fit_sample must be 0 (fit on all records) or positive, got {fit_sample}")
    if dp:
        if fit_sample:
            raise SafemicroError("fit_sample is for CART synthesis; DP synthesis measures the whole file")
        return None
    target = FIT_SAMPLE_ABOVE if fit_sample is None else fit_sample
    if target == 0 or n_units <= target:
        return None
    if target < 2:
        raise SafemicroError(f"fit_sample must be at least 2 records, got {fit_sample}")
    return int(target)


def fit_rows(ds: Dataset, n_fit: int, household: str | None, rng: np.random.Generator) -> Dataset:
    """A simple random sample of ``n_fit`` records, or of ``n_fit`` whole households."""
    if household is None:
        rows = np.sort(rng.choice(ds.n, size=n_fit, replace=False))
        return take_rows(ds, rows)
    unit = ds.frame[household].rank("dense").cast(pl.Int64).to_numpy() - 1
    chosen = np.zeros(int(unit.max()) + 1, dtype=bool)
    chosen[rng.choice(len(chosen), size=n_fit, replace=False)] = True
    return take_rows(ds, np.flatnonzero(chosen[unit]))


def simultaneous_z(n_cells: int, level: float = 0.95) -> float:
    """z for ``n_cells`` two-sided intervals holding together with ``level`` (Bonferroni)."""
    return NormalDist().inv_cdf(1 - (1 - level) / 2 / max(n_cells, 1))


def marginal_bound(
    p: np.ndarray,
    n_fit: int,
    n_synth: int,
    *,
    n_full: int | None = None,
    z: float = 1.96,
    cart_error=0.0,
    p_synth: np.ndarray | None = None,
) -> np.ndarray:
    """The bound of the module docstring per cell share ``p`` (with ``p_synth``: the larger
    of the two binomial variances)."""
    p = np.asarray(p, dtype=np.float64)
    var = p * (1 - p)
    if p_synth is not None:
        q = np.asarray(p_synth, dtype=np.float64)
        var = np.maximum(var, q * (1 - q))
    fpc = 1.0 if n_full is None else max(1.0 - n_fit / n_full, 0.0)
    return z * np.sqrt(var * (fpc / n_fit + 1.0 / n_synth)) + cart_error


def marginal_shares(frames: Sequence[pl.DataFrame], columns: Sequence[str], two_way: bool = True) -> pl.DataFrame:
    """Cell shares of the one-way (and two-way) tables of ``columns`` in each frame
    (``p0``, ``p1``, ...; missing is a category; a cell absent from a frame has share 0)."""
    tables = [[c] for c in columns] + ([list(p) for p in combinations(columns, 2)] if two_way else [])
    out = []
    for cols in tables:
        merged = None
        for i, f in enumerate(frames):
            t = f.select([pl.col(c).cast(pl.String).fill_null("(missing)") for c in cols]).group_by(cols).len()
            t = t.with_columns((pl.col("len") / f.height).alias(f"p{i}")).drop("len")
            merged = t if merged is None else merged.join(t, on=cols, how="full", coalesce=True)
        merged = merged.with_columns([pl.col(f"p{i}").fill_null(0.0) for i in range(len(frames))])
        label = pl.concat_str([pl.lit(f"{c}=") + pl.col(c) for c in cols], separator=" & ")
        out.append(merged.select(pl.lit(" x ".join(cols)).alias("table"), label.alias("cell"), pl.col("^p\\d+$")))
    return pl.concat(out)


def cart_error(p_full: np.ndarray, p_synth_full_fit: np.ndarray, n_synth: int, z: float) -> np.ndarray:
    """Per cell, the CART's own error b: how far a CART fitted on the FULL data puts the
    cell, bounded above: the distance it measured plus the noise of its ``n_synth`` draws."""
    return np.abs(p_synth_full_fit - p_full) + z * np.sqrt(p_full * (1 - p_full) / n_synth)
