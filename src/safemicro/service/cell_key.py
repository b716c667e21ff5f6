"""The cell key method for frequency tables (ABS; ONS's ``cell-key-perturbation``).

Every record carries a **record key**, an integer drawn uniformly from ``0..R-1`` once and
stored with the data (the discrete form of the ABS key uniform in [0, 1): key / R). The
**cell key** of a table cell is the sum of the record keys of its records modulo R (the
fractional part of the sum of the uniform keys). The published count is the true count plus
the perturbation the **ptable** gives for (cell value, cell key). The same set of records
always gives the same cell key, so the same cell always gets the same perturbation: asking
again, or asking an overlapping table that contains the same cell, gains nothing.

Conventions follow the ONS package (3.1): a ptable is a frame with columns ``pcv`` (cell
value 1..P), ``ckey`` (0..R-1) and ``pvalue``; a cell value above P uses the ptable rows of
the last ``cycle`` values (P = 750, cycle = 250: ``((count - 1) % 250) + 501``); an empty
cell is never perturbed; a perturbed count below ``threshold`` is suppressed (null).

:func:`generate_ptable` builds a ptable with a declared maximum perturbation D and variance
V per cell value: the perturbation of a cell of value c takes values in
``max(-c, -D)..D`` (never negative counts) with mean 0 and variance V (or the largest
variance that support allows for small c), and cell keys map to it by the inverse CDF.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.optimize import root

__all__ = ["cell_key_counts", "generate_ptable", "record_keys"]


def record_keys(n: int, seed: int, key_range: int = 256) -> np.ndarray:
    """``n`` record keys uniform in ``0..key_range-1`` from ``seed`` (kept by the provider)."""
    return np.random.default_rng(seed).integers(0, key_range, size=n, dtype=np.int64)


def _pcv(count: np.ndarray, max_pcv: int, cycle: int) -> np.ndarray:
    big = ((count - 1) % cycle) + max_pcv - cycle + 1
    return np.where(count <= max_pcv, count, big)


def cell_key_counts(
    frame: pl.DataFrame,
    dims: Sequence[str],
    record_key: str,
    ptable: pl.DataFrame,
    *,
    threshold: int = 10,
    cycle: int = 250,
) -> pl.DataFrame:
    """The frequency table of ``frame`` by ``dims`` with cell key perturbation.

    Returns one row per observed cell: the ``dims``, ``pre_sdc_count``, ``ckey``, ``pvalue``
    and ``count`` (perturbed; null when below ``threshold``).

    >>> df = pl.DataFrame({"g": [1, 1, 2], "rk": [3, 4, 200]})
    >>> pt = pl.DataFrame({"pcv": [1, 1, 2, 2], "ckey": [7, 200, 7, 200], "pvalue": [1, 1, 2, 0]})
    >>> cell_key_counts(df, ["g"], "rk", pt, threshold=0)["count"].to_list()
    [4, 2]
    """
    dims = list(dims)
    key_range = int(ptable["ckey"].max()) + 1
    max_pcv = int(ptable["pcv"].max())
    cells = (
        frame.group_by(dims)
        .agg(pl.len().alias("pre_sdc_count"), pl.col(record_key).cast(pl.Int64).sum().alias("ckey"))
        .sort(dims, nulls_last=True)
    )
    count = cells["pre_sdc_count"].to_numpy().astype(np.int64)
    ckey = cells["ckey"].to_numpy() % key_range
    pcv = _pcv(count, max_pcv, min(cycle, max_pcv))
    # dense lookup table pvalue[pcv, ckey]; pairs the ptable does not list perturb by 0
    lut = np.zeros((max_pcv + 1, key_range), dtype=np.int64)
    lut[ptable["pcv"].to_numpy(), ptable["ckey"].to_numpy()] = ptable["pvalue"].to_numpy()
    pvalue = np.where(count > 0, lut[np.clip(pcv, 0, max_pcv), ckey], 0)
    out = count + pvalue
    return cells.with_columns(
        pl.Series("ckey", ckey),
        pl.Series("pvalue", pvalue),
        pl.Series("count", out).cast(pl.Int64),
    ).with_columns(pl.when(pl.col("count") < threshold).then(None).otherwise(pl.col("count")).alias("count"))


def _distribution(c: int, d: int, v: float) -> tuple[np.ndarray, np.ndarray]:
    """Perturbations j in max(-c,-d)..d with probabilities ∝ exp(a j + b j²), mean 0 and
    variance v (or as close as the support allows)."""
    j = np.arange(max(-c, -d), d + 1, dtype=np.float64)

    def probs(x):
        z = x[0] * j + x[1] * j**2
        p = np.exp(z - z.max())
        return p / p.sum()

    def eq(x):
        p = probs(x)
        return [p @ j, p @ j**2 - v]

    sol = root(eq, [0.0, -1.0 / (2 * v)], method="hybr")
    p = probs(sol.x)
    if abs(p @ j) > 1e-6:  # v out of reach for this support: keep the mean at 0 regardless
        sol = root(lambda x: [probs([x[0], sol.x[1]]) @ j], [sol.x[0]])
        p = probs([sol.x[0], sol.x[1]])
    return j.astype(np.int64), p


def generate_ptable(
    max_perturbation: int = 3, variance: float = 1.0, *, max_pcv: int = 750, key_range: int = 256
) -> pl.DataFrame:
    """A ptable (``pcv``, ``ckey``, ``pvalue``, plus ``variance`` achieved per pcv) with
    perturbations in -D..D, mean 0 and variance V; cell keys map to perturbations by the
    inverse CDF of each cell value's distribution."""
    if max_perturbation < 1 or variance <= 0:
        raise ValueError("the maximum perturbation must be >= 1 and the variance > 0")
    u = (np.arange(key_range) + 0.5) / key_range
    pcv, ckey, pvalue, var = [], [], [], []
    for c in range(1, max_pcv + 1):
        j, p = _distribution(c, max_perturbation, variance)
        pick = j[np.minimum(np.searchsorted(np.cumsum(p), u), len(j) - 1)]
        pcv.append(np.full(key_range, c))
        ckey.append(np.arange(key_range))
        pvalue.append(pick)
        var.append(np.full(key_range, float(p @ j.astype(float) ** 2)))
    return pl.DataFrame(
        {
            "pcv": np.concatenate(pcv),
            "ckey": np.concatenate(ckey),
            "pvalue": np.concatenate(pvalue),
            "variance": np.concatenate(var),
        }
    )
