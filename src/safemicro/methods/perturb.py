"""Perturbation of continuous variables: noise addition, rank swapping and data shuffling.

- :func:`add_noise` adds normal noise: independent per variable with sd ``amount``·sd(x)
  (the Practice Guide uses 0.01·sd), or correlated noise with covariance ``amount``·Σ
  (Brand 2002), which keeps the correlations of the variables in expectation. These are
  sdcMicro's ``addNoise`` "additive" and "correlated" conventions. ``"restricted"``,
  ``"romm"`` and ``"outdect"`` are defined in :mod:`safemicro.methods.perturb_noise`.
- :func:`rank_swap` swaps each value with one chosen at random among the values at most
  ``p`` % of the ranks above it (Moore 1996): every variable keeps exactly its values.
- :func:`shuffle` is data shuffling (Muralidhar & Sarathy 2006): values y* are drawn from
  the conditional distribution of the variables given the non-confidential ``by``
  variables (a normal model on normal scores), and each variable's original values are
  handed out in the rank order of y*. Marginals are kept exactly, rank correlations with
  ``by`` and between the variables approximately.

Missing and user-missing cells are never changed and never take part; a noisy value that
would land on a user-missing code is drawn again.

Household-level variables (one value per household, such as a cash transfer) are
perturbed once per household with ``household=``: the method runs on one record per
household and every member gets its household's result (:func:`base.per_household`, also used
by microaggregation), so the variable stays constant within households.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, model_serializer

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods import base
from safemicro.methods.base import Change, MethodResult, StepContext, StepParams, register
from safemicro.methods.perturb_cells import _noisy_column
from safemicro.methods.perturb_kernels import _complete, _jit, _shuffle_keys
from safemicro.methods.perturb_noise import outliers, restricted_noise, romm_noise

__all__ = ["add_noise", "rank_swap", "shuffle"]


def add_noise(
    ds: Dataset,
    *,
    variables: str | Sequence[str],
    amount: float = 0.01,
    method: Literal["additive", "correlated", "restricted", "romm", "outdect"] = "additive",
    household: str | None = None,
    seed: int | None = None,
    block: int = 50,
    outlier_amount: float | None = None,
    alpha: float = 0.975,
) -> MethodResult:
    """Add normal noise to ``variables`` (once per household with ``household``).

    ``"additive"``: independent noise with sd ``amount``·sd(x) per variable.
    ``"correlated"``: noise with covariance ``amount``·Σ (Σ the covariance of the
    variables on complete records), so its sd is √amount·sd(x). ``"restricted"``: correlated
    noise followed by the affine map that restores the mean vector and covariance matrix
    exactly. ``"romm"``: random orthogonal matrix masking in random blocks of ``block``
    records (mean and covariance kept exactly; perturbation ≈ amount·Σ). ``"outdect"``:
    sd ``outlier_amount``·sd(x) on robust outliers (χ² quantile ``alpha``; default
    5·amount), ``amount``·sd(x) on other records. For restricted and ROMM, records missing
    a variable get correlated-size noise (√amount·sd) on the cells they have. Integer columns
    are rounded back to whole numbers and keep their type (so moments are then kept only up
    to that rounding); ``amount=0`` changes nothing.

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> ds = Dataset(pl.DataFrame({"income": [100, 200, 300, 400]}))
    >>> add_noise(ds, variables="income", amount=0.0, seed=1).dataset.frame["income"].to_list()
    [100, 200, 300, 400]
    """
    step = "noise"
    variables = _variables(variables, step)
    if isinstance(amount, bool) or not isinstance(amount, (int, float, np.integer, np.floating)):
        raise SafemicroError("amount must be a number", step=step)
    amount = float(amount)
    if not np.isfinite(amount) or amount < 0:
        raise SafemicroError(f"amount must be 0 or more, got {amount}", step=step)
    methods = ("additive", "correlated", "restricted", "romm", "outdect")
    if method not in methods:
        raise SafemicroError(f"method must be one of {', '.join(methods)}; got {method!r}", step=step)
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 2:
        raise SafemicroError(f"block must be an integer of at least 2, got {block!r}", step=step)
    if not 0.0 < alpha < 1.0:
        raise SafemicroError(f"alpha must lie strictly between 0 and 1, got {alpha}", step=step)
    outlier_amount = 5.0 * amount if outlier_amount is None else float(outlier_amount)
    if not np.isfinite(outlier_amount) or outlier_amount < 0:
        raise SafemicroError(f"outlier_amount must be 0 or more, got {outlier_amount}", step=step)
    if household is not None:
        given: dict[str, Any] = {"amount": amount, "method": method, "seed": seed, "block": int(block)}
        given.update(outlier_amount=outlier_amount, alpha=float(alpha))
        run = functools.partial(add_noise, variables=variables, **given)
        return base.per_household(ds, variables, household, run, step)
    rng, used_seed = base.rng_for(seed)
    x = base.numeric_matrix(ds, variables, step)
    observed = ~np.isnan(x)

    sd = np.array([np.std(c[~np.isnan(c)], ddof=1) if (~np.isnan(c)).sum() > 1 else 0.0 for c in x.T])
    details: dict[str, Any] = {}
    if method == "additive":
        scale = amount * sd
        noise = rng.standard_normal(x.shape) * scale
    elif method in ("restricted", "romm"):
        complete = observed.all(axis=1)
        if complete.sum() < 2:
            raise SafemicroError(f"{method} noise needs at least 2 records with every variable observed", step=step)
        scale = np.sqrt(amount) * sd
        noise = rng.standard_normal(x.shape) * scale  # records missing a variable: marginal-size noise
        kernel = restricted_noise if method == "restricted" else functools.partial(romm_noise, block=int(block))
        noise[complete] = kernel(x[complete], amount, rng=rng)
        details["records_missing_a_variable"] = int((~complete & observed.any(axis=1)).sum())
    elif method == "outdect":
        multi, uni, fitted = outliers(x, alpha, used_seed)
        flagged = multi | uni
        scale = outlier_amount * sd
        noise = rng.standard_normal(x.shape) * np.where(flagged[:, None], outlier_amount, amount) * sd
        details.update(
            outliers=int(flagged.sum()),
            multivariate_outliers=int(multi.sum()),
            univariate_outliers=int(uni.sum()),
            mcd_fitted=fitted,
        )
    else:
        complete = observed.all(axis=1)
        if complete.sum() < 2:
            raise SafemicroError("correlated noise needs at least 2 records with every variable observed", step=step)
        cov = np.atleast_2d(np.cov(x[complete], rowvar=False))
        vals, vecs = np.linalg.eigh(amount * cov)
        root = vecs * np.sqrt(np.clip(vals, 0.0, None))  # root @ root.T = amount·Σ
        scale = np.sqrt(np.clip(np.diag(amount * cov), 0.0, None))
        noise = rng.standard_normal(x.shape) @ root.T

    columns, rounded, redrawn = [], [], 0
    for j, name in enumerate(variables):
        column, integral, again = _noisy_column(ds, name, x[:, j], noise[:, j], scale[j], observed[:, j], rng)
        columns.append(column)
        redrawn += again
        if integral:
            rounded.append(name)
    frame = ds.frame.with_columns(columns)
    if method in ("restricted", "romm"):  # the realised size of the perturbation
        spread = [np.std(noise[observed[:, j], j]) if observed[:, j].sum() > 1 else 0.0 for j in range(len(sd))]
        scale = np.array(spread)
    relative = {v: (float(scale[j] / sd[j]) if sd[j] > 0 else 0.0) for j, v in enumerate(variables)}
    notes = [f"{', '.join(rounded)}: noisy values rounded to whole numbers (integer columns)"] if rounded else []
    if method == "outdect" and not details["mcd_fitted"]:
        notes.append("outdect: the MCD could not be fitted; outliers found univariately only")
    params = {"variables": variables, "amount": amount, "method": method, "household": None}
    params.update({"block": int(block)} if method == "romm" else {})
    params.update({"outlier_amount": outlier_amount, "alpha": float(alpha)} if method == "outdect" else {})
    return _result(
        ds,
        frame,
        variables,
        "noise",
        params,
        used_seed,
        {
            "method": method,
            "noise_sd_relative": relative,
            "rounded": rounded,
            "redrawn_off_missing_codes": redrawn,
            **details,
        },
        notes,
    )


def rank_swap(
    ds: Dataset,
    *,
    variables: str | Sequence[str],
    p: float = 5,
    household: str | None = None,
    seed: int | None = None,
) -> MethodResult:
    """Rank swapping: each value is swapped with a random partner at most ``p`` % of the
    ranks above it (each variable separately); the values of every variable are kept.
    With ``household`` households swap their (household-level) values.

    Walking up the ranks, a value not yet swapped picks its partner uniformly among the
    not-yet-swapped values whose rank is above its own by at most ⌊p/100·n⌋ (n = observed
    values); with no such partner left it stays.
    """
    step = "rank_swap"
    variables = _variables(variables, step)
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not 0 <= p <= 100:
        raise SafemicroError(f"p must be a percentage between 0 and 100, got {p!r}", step=step)
    if household is not None:
        run = functools.partial(rank_swap, variables=variables, p=p, seed=seed)
        return base.per_household(ds, variables, household, run, step)
    rng, used_seed = base.rng_for(seed)
    x = base.numeric_matrix(ds, variables, step)
    swap = _jit()["_swap_ranks"]
    columns, window, swapped = [], {}, {}
    for j, name in enumerate(variables):
        rows = np.flatnonzero(~np.isnan(x[:, j]))
        ranked = rows[np.argsort(x[rows, j], kind="stable")]
        width = int(np.floor(p / 100.0 * len(rows)))
        partner = swap(width, rng.random(len(rows)))
        source = np.arange(ds.n)
        source[ranked] = ranked[partner]  # the record whose value each record receives
        columns.append(ds.frame[name].gather(source))
        window[name] = width
        swapped[name] = int((partner != np.arange(len(rows))).sum())
    frame = ds.frame.with_columns(columns)
    return _result(
        ds,
        frame,
        variables,
        step,
        {"variables": variables, "p": float(p), "household": None},
        used_seed,
        {"rank_window": window, "values_swapped": swapped},
        [],
    )


def shuffle(
    ds: Dataset,
    *,
    variables: str | Sequence[str],
    by: str | Sequence[str] | None = None,
    household: str | None = None,
    seed: int | None = None,
) -> MethodResult:
    """Data shuffling: hand each variable's own values out again in the rank order of
    values drawn from its distribution given ``by`` (Muralidhar & Sarathy). With
    ``household`` households are shuffled (``by`` taken from each household's first record).

    Works on normal scores Φ⁻¹((rank − ½)/n): with Σ their correlation matrix (records
    complete on every variable and ``by``), y* = Σ_XS Σ_SS⁻¹ s + e with e ~ N(0, Σ_XX −
    Σ_XS Σ_SS⁻¹ Σ_SX); records missing a ``by`` value draw from N(0, Σ_XX). Then the
    record with the r-th smallest y*_j gets the r-th smallest observed x_j. Without ``by``
    each variable is randomly permuted among its observed cells.
    """
    step = "shuffle"
    variables = _variables(variables, step)
    by = base.column_names(by, "by", step) if by is not None else []
    for name in by:
        if name in variables:
            raise SafemicroError("a variable cannot be shuffled by itself", column=name, step=step)
    if household is not None:
        run = functools.partial(shuffle, variables=variables, by=by or None, seed=seed)
        return base.per_household(ds, variables, household, run, step)
    rng, used_seed = base.rng_for(seed)
    x = base.numeric_matrix(ds, variables, step)
    s = base.numeric_matrix(ds, by, step) if by else np.zeros((ds.n, 0))
    y = _shuffle_keys(x, s, rng)

    columns, moved = [], {}
    for j, name in enumerate(variables):
        rows = np.flatnonzero(~np.isnan(x[:, j]))
        by_value = rows[np.argsort(x[rows, j], kind="stable")]
        by_key = rows[np.argsort(y[rows, j], kind="stable")]
        source = np.arange(ds.n)
        source[by_key] = by_value  # r-th smallest key receives the r-th smallest value
        columns.append(ds.frame[name].gather(source))
        moved[name] = int((source[rows] != rows).sum())
    frame = ds.frame.with_columns(columns)
    notes = []
    if by and y.shape[1] and not _complete(np.hstack([x, s])).any():
        notes.append("no record is complete on the variables and by: shuffled as random permutations")
    return _result(
        ds,
        frame,
        variables,
        step,
        {"variables": variables, "by": by or None, "household": None},
        used_seed,
        {"records_moved": moved},
        notes,
    )


# -- households ------------------------------------------------------------------------------


# -- helpers -------------------------------------------------------------------------------


def _variables(value: Any, step: str) -> list[str]:
    names = base.column_names(value, "variables", step)
    if not names:
        raise SafemicroError("needs at least one variable", step=step)
    return names


def _result(
    ds: Dataset,
    frame: pl.DataFrame,
    variables: list[str],
    method: str,
    params: dict[str, Any],
    seed: int,
    details: dict[str, Any],
    notes: list[str],
) -> MethodResult:
    change = Change.measured(
        ds.frame, frame, variables, method=method, params=params, seed=seed, details=details, notes=notes
    )
    return MethodResult(ds.with_frame(frame), change)


# -- plan steps ---------------------------------------------------------------------------------


class _NumericParams(StepParams):
    variables: list[str] | None = None  # default: roles.numeric_keys
    household: str | None = None  # default: roles.household when every variable is household-level
    seed: int | None = None

    def _variables(self, ctx: StepContext) -> list[str]:
        return list(self.variables or ctx.roles.numeric_keys)

    def _household(self, ctx: StepContext) -> str | None:
        return base.household_for(self._variables(ctx), self.household, ctx)

    def resolve(self, ctx: StepContext) -> dict[str, Any]:
        return {"variables": self._variables(ctx), "household": self._household(ctx)}

    def reads(self, ctx: StepContext) -> list[str]:
        hh = self._household(ctx)
        return [*self._variables(ctx), *([hh] if hh else [])]

    def check(self, ctx: StepContext) -> None:
        if not self._variables(ctx):
            raise ValueError("needs variables (or roles.numeric_keys): the continuous variables to perturb")
        self._household(ctx)


class NoiseParams(_NumericParams):
    """Add random noise of amount x variance (additive, correlated, restricted: mean and covariance kept exactly, romm: random orthogonal matrix masking, outdect: more noise on robust outliers); variables default to the numeric keys."""

    amount: float = Field(0.01, ge=0.0)
    method: Literal["additive", "correlated", "restricted", "romm", "outdect"] = "additive"
    block: int = Field(50, ge=2, description="romm: records per random block")
    outlier_amount: float | None = Field(None, ge=0.0, description="outdect: noise sd on outliers (default 5 x amount)")
    alpha: float = Field(0.975, gt=0.0, lt=1.0, description="outdect: chi-square quantile of the outlier rule")

    @model_serializer(mode="wrap")
    def _used_only(self, handler: Any) -> dict[str, Any]:
        """The lock plan and reports carry only the parameters the chosen method uses."""
        data = handler(self)
        unused = {"romm": ["outlier_amount", "alpha"], "outdect": ["block"]}.get(
            self.method, ["block", "outlier_amount", "alpha"]
        )
        return {k: v for k, v in data.items() if k not in unused}


class RankSwapParams(_NumericParams):
    """Swap each value with another within p % of its rank (marginals kept exactly)."""

    p: float = Field(5.0, ge=0.0, le=100.0)


class ShuffleParams(_NumericParams):
    """Data shuffling: reassign the observed values by a model on the 'by' variables (marginals kept exactly)."""

    by: list[str] | str | None = None

    def _by(self) -> list[str]:
        return [self.by] if isinstance(self.by, str) else list(self.by or [])

    def resolve(self, ctx: StepContext) -> dict[str, Any]:
        return {**super().resolve(ctx), "by": self._by() or None}

    def reads(self, ctx: StepContext) -> list[str]:
        return [*super().reads(ctx), *self._by()]


def _describe_noise(params: NoiseParams, change: Change) -> str:
    rel = list(change.details.get("noise_sd_relative", {}).values())
    size = f"about {100 * max(rel):.2g} %" if rel else "a small share"
    method = change.params["method"]
    names = ", ".join(change.params["variables"])
    if method in ("restricted", "romm"):
        how = (
            f"Random noise was added to {names} ({size} of each variable's standard deviation)"
            if method == "restricted"
            else f"Values of {names} were mixed within random blocks of records by a random rotation (random "
            f"orthogonal matrix masking; changes of {size} of each variable's standard deviation)"
        )
        return (
            f"{how}, constrained so that the means, variances and covariances of these variables are exactly "
            "those of the original data; individual values are not exact."
        )
    if method == "outdect":
        return (
            f"Random noise was added to {names}: more ({100 * change.params['outlier_amount']:.2g} % of the standard "
            f"deviation) to the {change.details.get('outliers', 0)} records with unusual values or combinations "
            f"(robust outlier detection), {100 * change.params['amount']:.2g} % to the others. Means stay "
            "unbiased; variances are slightly inflated."
        )
    kind = " correlated like the variables themselves," if method == "correlated" else ""
    return (
        f"Random noise was added to {', '.join(change.params['variables'])} ({size} of each variable's "
        f"standard deviation,{kind} independent of everything else): means stay unbiased, variances are "
        "slightly inflated and individual values are not exact."
    )


def _describe_swap(params: RankSwapParams, change: Change) -> str:
    return (
        f"Values of {', '.join(change.params['variables'])} were swapped between records whose values are "
        f"close in rank (within {change.params['p']:g} % of the ranks): each variable keeps exactly its "
        "distribution, but relationships with other variables are somewhat weakened."
    )


def _describe_shuffle(params: ShuffleParams, change: Change) -> str:
    names = ", ".join(change.params["variables"])
    by = change.params.get("by")
    if by:
        return (
            f"Values of {names} were shuffled between records (data shuffling): each variable keeps exactly "
            f"its distribution and, approximately, its rank correlation with {', '.join(by)}; relationships "
            "with other variables are weakened."
        )
    return (
        f"Values of {names} were randomly shuffled between records: each variable keeps exactly its "
        "distribution, but its relationships with all other variables are lost."
    )


register("noise", NoiseParams, _describe_noise, random=True, perturbative=True)(base.calls(add_noise))
register("rank_swap", RankSwapParams, _describe_swap, random=True, perturbative=True)(base.calls(rank_swap))
register("shuffle", ShuffleParams, _describe_shuffle, random=True, perturbative=True)(base.calls(shuffle))
