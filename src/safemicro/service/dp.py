"""Differential-privacy mode: OpenDP noise for counts and sums, and the budget arithmetic.

Noise comes from OpenDP (``opendp``, secure randomness, the "contrib" features): the
Laplace mechanism on integer counts (discrete Laplace) and on clamped float sums, or the
Gaussian mechanism (zero-concentrated DP, ρ). The privacy loss of each measurement is
OpenDP's own privacy map for the declared sensitivity; sums clamp every unit's contribution
to the configured bounds first, so a unit changes a cell sum by at most
``max(|lower|, |upper|)``.

Budgets are plain arithmetic over amounts (:class:`Balance`, :func:`reserve`, :func:`commit`,
:func:`cancel`): reserve at every scope (analyst, organisation, dataset) before running, then
commit the reservation on release or cancel it on failure. The store keeps the balances
(a row-locked table); these functions decide. Every noisy answer spends budget, so asking
the same question again to average the noise away runs the budget out; the service also
serves a cached identical query without drawing new noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError

__all__ = [
    "Mechanism",
    "NoisyValues",
    "laplace_scale",
    "gaussian_scale",
    "noisy_counts",
    "noisy_sums",
    "dp_table",
    "Balance",
    "Reservation",
    "BudgetExceeded",
    "reserve",
    "commit",
    "cancel",
]

Mechanism = Literal["laplace", "gaussian"]


def _opendp():
    try:
        import opendp.prelude as dp
    except ImportError:  # pragma: no cover - depends on the environment
        raise SafemicroError("differential-privacy mode needs the 'opendp' package (pip install opendp)") from None
    dp.enable_features("contrib")
    return dp


@dataclass(frozen=True)
class NoisyValues:
    """Noisy answers with what a user needs to combine or judge them.

    ``epsilon`` is the privacy loss spent (pure DP for Laplace; for Gaussian the ρ of
    zero-concentrated DP, reported as ``rho``, and ``epsilon`` is None). ``variance`` is the
    noise variance of each value (2·scale² for Laplace, scale² for Gaussian).
    """

    values: np.ndarray
    mechanism: str
    scale: float
    variance: float
    epsilon: float | None
    rho: float | None
    sensitivity: float


def laplace_scale(epsilon: float, sensitivity: float) -> float:
    """Scale b = sensitivity / ε of the Laplace mechanism for an ε-DP release."""
    _positive(epsilon, "epsilon")
    _positive(sensitivity, "sensitivity")
    return float(sensitivity) / float(epsilon)


def gaussian_scale(rho: float, sensitivity: float) -> float:
    """Standard deviation σ = sensitivity / sqrt(2ρ) of the Gaussian mechanism for ρ-zCDP."""
    _positive(rho, "rho")
    _positive(sensitivity, "sensitivity")
    return float(sensitivity) / math.sqrt(2.0 * float(rho))


def _positive(x: float, name: str) -> None:
    if not (isinstance(x, (int, float)) and math.isfinite(x) and x > 0):
        raise SafemicroError(f"{name} must be a positive number, got {x!r}")


def noisy_counts(counts, epsilon: float, *, contributions: int = 1, mechanism: Mechanism = "laplace") -> NoisyValues:
    """Noisy integer counts (one query over disjoint cells or any cells: ``contributions`` is
    the largest number of cells one unit can be counted in, the L1 sensitivity for Laplace;
    for Gaussian the same bound is used for L2, conservatively). For Gaussian, ``epsilon`` is
    read as ρ."""
    dp = _opendp()
    x = [int(v) for v in np.asarray(counts).ravel()]
    if contributions < 1:
        raise SafemicroError(f"contributions must be at least 1, got {contributions}")
    if mechanism == "laplace":
        scale = laplace_scale(epsilon, contributions)
        meas = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=scale)
        spent = float(meas.map(int(contributions)))
        out = np.asarray(meas(x), dtype=float)
        return NoisyValues(out, "laplace", scale, 2.0 * scale * scale, spent, None, float(contributions))
    if mechanism == "gaussian":
        l2 = float(contributions)  # integer L2 distance: bounded by the L1 one (conservative)
        scale = gaussian_scale(epsilon, l2)
        meas = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int), scale=scale)
        spent = float(meas.map(int(contributions)))
        out = np.asarray(meas(x), dtype=float)
        return NoisyValues(out, "gaussian", scale, scale * scale, None, spent, l2)
    raise SafemicroError(f"unknown mechanism {mechanism!r}; use laplace or gaussian")


def noisy_sums(
    sums, epsilon: float, bounds: tuple[float, float], *, contributions: int = 1, mechanism: Mechanism = "laplace"
) -> NoisyValues:
    """Noisy cell sums of contributions already clamped to ``bounds`` (see :func:`dp_table`).

    Sensitivity: ``contributions × max(|lower|, |upper|)`` (L1) — adding or removing one unit
    changes each of at most ``contributions`` cells by at most the largest bound.
    """
    dp = _opendp()
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo <= hi:
        raise SafemicroError(f"clamping bounds must satisfy lower <= upper, got {bounds!r}")
    per_unit = max(abs(lo), abs(hi))
    _positive(per_unit, "clamping bound")
    x = [float(v) for v in np.asarray(sums, dtype=float).ravel()]
    if mechanism == "laplace":
        sens = contributions * per_unit
        scale = laplace_scale(epsilon, sens)
        meas = dp.m.make_laplace(
            dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float), scale=scale
        )
        spent = float(meas.map(sens))
        return NoisyValues(np.asarray(meas(x), dtype=float), "laplace", scale, 2.0 * scale * scale, spent, None, sens)
    if mechanism == "gaussian":
        sens = math.sqrt(contributions) * per_unit
        scale = gaussian_scale(epsilon, sens)
        meas = dp.m.make_gaussian(
            dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float), scale=scale
        )
        spent = float(meas.map(sens))
        return NoisyValues(np.asarray(meas(x), dtype=float), "gaussian", scale, scale * scale, None, spent, sens)
    raise SafemicroError(f"unknown mechanism {mechanism!r}; use laplace or gaussian")


def dp_table(
    records: pl.DataFrame,
    dims: list[str],
    keys: pl.DataFrame,
    statistic: Literal["count", "sum"],
    epsilon: float,
    *,
    measure: str | None = None,
    bounds: tuple[float, float] | None = None,
    unit: str | None = None,
    max_contributions: int = 1,
    mechanism: Mechanism = "laplace",
) -> tuple[pl.DataFrame, NoisyValues]:
    """A noisy table over public ``keys`` (every combination to publish, e.g. from the unit
    registry, so no key reveals presence), in the shape of ``protect``'s output.

    With ``unit``, each unit keeps at most ``max_contributions`` records (the first ones in
    the data's order) so the sensitivity holds; without, every row is its own unit and
    ``max_contributions`` must bound the rows of one person. Sums clamp each record's
    ``measure`` to ``bounds``. Noisy values are released as they are (negative counts
    included, they are unbiased), with ``noise_scale`` and ``noise_variance``; nothing is
    thresholded on the true counts.
    """
    if statistic not in ("count", "sum"):
        raise SafemicroError(f"DP mode answers count and sum, not {statistic!r}")
    missing = [d for d in dims if d not in keys.columns or d not in records.columns]
    if missing:
        raise SafemicroError("key table and records must both hold every dimension", column=missing[0])
    data = records.lazy()  # one plan, collected once: each eager step costs a pass of its own
    if unit is not None and max_contributions == 1:
        # the first record of each unit; a hash pass, ~20x cheaper than the window below
        data = data.filter(pl.col(unit).is_first_distinct())
    elif unit is not None:
        data = data.with_row_index("_r").filter(pl.int_range(pl.len()).over(unit) < max_contributions).drop("_r")
    if statistic == "sum":
        if measure is None or bounds is None:
            raise SafemicroError("a DP sum needs a measure column and clamping bounds")
        value = pl.col(measure).cast(pl.Float64).fill_null(0.0).clip(bounds[0], bounds[1]).sum()
    else:
        # rows per group with pl.len(): a literal's sum (pl.lit(1.0).sum()) is 1.0 per
        # group under polars 2, not the group's size
        value = pl.len().cast(pl.Float64)
    agg = data.group_by(dims).agg(value.alias("_v")) if dims else data.select(value.alias("_v"))
    if dims:
        table = keys.lazy().select(dims).unique(maintain_order=True)
        agg = table.join(agg, on=dims, how="left", maintain_order="left").with_columns(pl.col("_v").fill_null(0.0))
    table = agg.collect()
    if statistic == "count":
        noisy = noisy_counts(
            table.get_column("_v").to_numpy(), epsilon, contributions=max_contributions, mechanism=mechanism
        )
    else:
        noisy = noisy_sums(
            table.get_column("_v").to_numpy(), epsilon, bounds, contributions=max_contributions, mechanism=mechanism
        )
    out = table.select(dims).with_columns(
        pl.Series("value", noisy.values, dtype=pl.Float64),
        *released_columns(noisy.scale),
        pl.lit(noisy.variance, dtype=pl.Float64).alias("noise_variance"),
    )
    return out, noisy


def released_columns(noise_scale: float | None) -> list[pl.Expr]:
    """The cell columns of a released DP cell from ``status`` to ``noise_scale`` (no rule,
    bounds or rounding; its noise variance is the caller's)."""
    return [
        pl.lit("released").alias("status"),
        pl.lit(None, dtype=pl.String).alias("rule"),
        pl.lit(None, dtype=pl.Float64).alias("lower"),
        pl.lit(None, dtype=pl.Float64).alias("upper"),
        pl.lit(None, dtype=pl.Int64).alias("rounded_to"),
        pl.lit(noise_scale, dtype=pl.Float64).alias("noise_scale"),
    ]


# -- budget arithmetic ------------------------------------------------------------------------


class BudgetExceeded(SafemicroError):
    """A reservation would take a scope over its limit."""


@dataclass(frozen=True)
class Balance:
    """One scope's budget (an analyst, an organisation or the dataset): all in one unit (ε or ρ)."""

    limit: float
    spent: float = 0.0
    reserved: float = 0.0

    @property
    def available(self) -> float:
        return self.limit - self.spent - self.reserved


@dataclass(frozen=True)
class Reservation:
    """An amount held at several scopes until it is committed or cancelled."""

    amount: float
    scopes: tuple[str, ...]


_SLACK = 1e-12  # float rounding in sums of many small amounts


def reserve(
    balances: Mapping[str, Balance], amount: float, scopes: list[str] | None = None
) -> tuple[dict[str, Balance], Reservation]:
    """Hold ``amount`` at every scope (default: all given), or raise :class:`BudgetExceeded`
    naming the first scope without enough left. All or nothing."""
    _positive(amount, "privacy cost")
    scopes = list(balances) if scopes is None else list(scopes)
    for s in scopes:
        if s not in balances:
            raise BudgetExceeded(f"no budget defined for {s}")
        if balances[s].available + _SLACK < amount:
            raise BudgetExceeded(f"budget of {s} exhausted: {balances[s].available:.6g} left, {amount:.6g} needed")
    new = dict(balances)
    for s in scopes:
        new[s] = replace(new[s], reserved=new[s].reserved + amount)
    return new, Reservation(float(amount), tuple(scopes))


def commit(
    balances: Mapping[str, Balance], reservation: Reservation, actual: float | None = None
) -> dict[str, Balance]:
    """Turn a reservation into spending (``actual`` ≤ the reserved amount; the rest is freed)."""
    spend = reservation.amount if actual is None else float(actual)
    if spend < 0 or spend > reservation.amount + _SLACK:
        raise SafemicroError(f"cannot commit {spend} against a reservation of {reservation.amount}")
    new = dict(balances)
    for s in reservation.scopes:
        b = new[s]
        new[s] = replace(b, reserved=max(0.0, b.reserved - reservation.amount), spent=b.spent + spend)
    return new


def cancel(balances: Mapping[str, Balance], reservation: Reservation) -> dict[str, Balance]:
    """Release a reservation without spending it (the query failed, nothing was released)."""
    new = dict(balances)
    for s in reservation.scopes:
        b = new[s]
        new[s] = replace(b, reserved=max(0.0, b.reserved - reservation.amount))
    return new
