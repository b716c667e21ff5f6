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

**Magnitudes** (sums and means; the top-contributor variant of the ABS method and of the
EU SGA "cellKey" work) are perturbed by their largest contributions:
``total' = total + p * sum_j e_j * x_(j) * v_j`` over the ``k`` largest absolute
contributions ``x_(j)`` of the cell, with magnitude ``p``, weights ``e_1 = 1 >= e_2 ...``
and factors ``v_j`` read off the cell's magnitude key: uniform in size on ``[s, 1]``, either
sign, never 0 (the separation ``s`` keeps the largest contributor from learning the rest of
the cell exactly). The magnitude keys are record keys of their own per measure, so a
published count (whose ptable row partly tells its cell key) says nothing about them. A
mean is the perturbed total over the perturbed count.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.optimize import root

__all__ = [
    "cell_key_counts",
    "cell_key_magnitudes",
    "count_perturbation",
    "generate_ptable",
    "magnitude_keys",
    "magnitude_perturbation",
    "ptable_lookup",
    "record_keys",
]

MAGNITUDE_KEY_RANGE = 1 << 32
_GOLDEN = 0.6180339887498949  # key variants of the j-th contributor: u + j * golden ratio, mod 1


def record_keys(n: int, seed: int, key_range: int = 256) -> np.ndarray:
    """``n`` record keys uniform in ``0..key_range-1`` from ``seed`` (kept by the provider)."""
    return np.random.default_rng(seed).integers(0, key_range, size=n, dtype=np.int64)


def _pcv(count: np.ndarray, max_pcv: int, cycle: int) -> np.ndarray:
    big = ((count - 1) % cycle) + max_pcv - cycle + 1
    return np.where(count <= max_pcv, count, big)


def ptable_lookup(ptable: pl.DataFrame) -> np.ndarray:
    """The ptable as a dense ``pvalue[pcv, ckey]`` array; pairs it does not list perturb by 0."""
    lut = np.zeros((int(ptable["pcv"].max()) + 1, int(ptable["ckey"].max()) + 1), dtype=np.int64)
    lut[ptable["pcv"].to_numpy(), ptable["ckey"].to_numpy()] = ptable["pvalue"].to_numpy()
    return lut


def count_perturbation(count: np.ndarray, key_sum: np.ndarray, lut: np.ndarray, cycle: int = 250) -> np.ndarray:
    """The ptable's perturbation of cells with these true counts and sums of record keys
    (0 for an empty cell)."""
    max_pcv, key_range = lut.shape[0] - 1, lut.shape[1]
    pcv = _pcv(count, max_pcv, min(cycle, max_pcv))
    return np.where(count > 0, lut[np.clip(pcv, 0, max_pcv), key_sum % key_range], 0)


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
    lut = ptable_lookup(ptable)
    cells = (
        frame.group_by(dims)
        .agg(pl.len().alias("pre_sdc_count"), pl.col(record_key).cast(pl.Int64).sum().alias("ckey"))
        .sort(dims, nulls_last=True)
    )
    count = cells["pre_sdc_count"].to_numpy().astype(np.int64)
    ckey = cells["ckey"].to_numpy() % lut.shape[1]
    pvalue = count_perturbation(count, ckey, lut, cycle)
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


def magnitude_keys(n: int, seed: int, measure: str) -> np.ndarray:
    """``n`` record keys in ``0..2**32-1`` for the magnitudes of ``measure``: a stream of
    their own, from the provider's seed and the measure's name."""
    stream = np.random.SeedSequence([seed, zlib.crc32(measure.encode("utf-8"))])
    return np.random.default_rng(stream).integers(0, MAGNITUDE_KEY_RANGE, size=n, dtype=np.int64)


def perturbation_factors(u: np.ndarray, separation: float) -> np.ndarray:
    """Keys uniform in (0, 1) to factors uniform in size on ``[separation, 1]``, either sign
    with probability 1/2 (mean 0), never 0."""
    size = separation + (1.0 - separation) * np.abs(2.0 * u - 1.0)
    return np.where(u >= 0.5, size, -size)


def magnitude_perturbation(
    key_sum: np.ndarray, tops: np.ndarray, percent: float, epsilon: Sequence[float], separation: float
) -> np.ndarray:
    """``p * sum_j e_j * x_(j) * v_j`` per cell, from the sums of its magnitude keys and its
    largest absolute contributions ``tops`` (cells x k, largest first, 0 where fewer)."""
    u = ((key_sum % MAGNITUDE_KEY_RANGE) + 0.5) / MAGNITUDE_KEY_RANGE
    out = np.zeros(len(key_sum))
    for j, e in enumerate(epsilon):
        out += percent * e * tops[:, j] * perturbation_factors((u + j * _GOLDEN) % 1.0, separation)
    return out


def cell_key_magnitudes(
    frame: pl.DataFrame,
    dims: Sequence[str],
    measure: str,
    magnitude_key: str,
    *,
    percent: float = 0.25,
    epsilon: Sequence[float] = (1.0, 0.5),
    separation: float = 0.2,
) -> pl.DataFrame:
    """The magnitude table of ``measure`` by ``dims`` with top-contributor perturbation.

    Returns one row per observed cell: the ``dims``, ``n``, ``pre_sdc_total``,
    ``perturbation`` and ``total`` (perturbed); ``len(epsilon)`` contributors are perturbed.

    >>> df = pl.DataFrame({"g": [1, 1], "y": [10.0, -4.0], "mk": [1 << 30, 0]})
    >>> t = cell_key_magnitudes(df, ["g"], "y", "mk", percent=0.5, epsilon=[1.0, 0.5], separation=0.2)
    >>> round(t["perturbation"][0], 4)  # u ~ 0.25: 0.5 * 10 * -0.6 + 0.5 * 0.5 * 4 * v2 (u2 ~ 0.868, v2 ~ 0.789)
    -2.2111
    """
    dims = list(dims)
    eps = [float(e) for e in epsilon]
    if not eps or eps[0] != 1.0 or any(b > a or b <= 0 for a, b in zip(eps, eps[1:], strict=False)):
        raise ValueError("epsilon: 1 first, then weights in (0, 1] in descending order")
    if not 0 < percent <= 1 or not 0 <= separation < 1:
        raise ValueError("percent must be in (0, 1] and separation in [0, 1)")
    keys = dims or ["_all"]
    source = frame if dims else frame.with_columns(pl.lit(1).alias("_all"))
    cells = (
        source.group_by(keys)
        .agg(
            pl.len().alias("n"),
            pl.col(measure).sum().alias("pre_sdc_total"),
            pl.col(magnitude_key).cast(pl.Int64).sum().alias("_key"),
            pl.col(measure).abs().top_k(len(eps)).sort(descending=True).alias("_top"),
        )
        .sort(keys, nulls_last=True)
    )
    tops = np.column_stack(
        [cells["_top"].list.get(j, null_on_oob=True).fill_null(0.0).to_numpy() for j in range(len(eps))]
    )
    perturbation = magnitude_perturbation(cells["_key"].to_numpy(), tops, percent, eps, separation)
    out = cells.drop("_key", "_top").with_columns(
        pl.Series("perturbation", perturbation),
        (pl.col("pre_sdc_total") + pl.Series(perturbation)).alias("total"),
    )
    return out if dims else out.drop("_all")
