"""PRAM: post-randomisation of categorical variables.

Each observed category ``i`` of a variable is replaced by category ``j`` with probability
``P[i, j]`` (Gouweleeuw, Kooiman, Willenborg & de Wolf 1998), so no released value can be
trusted to be the true one while tables stay estimable. ``P`` is either given or built
from the data: the value is kept with probability ``keep`` (Practice Guide: 0.8 for a
scientific use file, 0.6 for a public use file) and otherwise moved to another observed
category chosen in proportion to that category's frequency, so common categories absorb
most of the moves and rare ones are not inflated.

Invariant PRAM replaces ``P`` by ``R = alpha·(P·P̃) + (1 − alpha)·I`` where ``P̃`` is the
backward matrix ``P̃[j, k] = P[k, j]·π_k / (π'P)_j`` and ``π`` the observed distribution;
then ``π'R = π'``: the expected frequencies after PRAM equal the original ones (Gouweleeuw
et al.; the ``alpha`` mixing as in Shlomo & de Waal 2006). With ``strata`` the matrix is
built and applied within each stratum, from the stratum's own frequencies, so a category
absent from a stratum is never produced there.

Missing and user-missing cells are never changed and do not count in the frequencies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import encode_column
from safemicro.methods import base
from safemicro.methods.base import Change, MethodResult, StepContext, StepParams, register
from safemicro.methods.pram_matrix import _matrix_specs, _parse_matrix

__all__ = ["pram"]

# PRAM is for categorical variables; more distinct values than this means "recode first".
MAX_CATEGORIES = 1000
# Transition matrices kept in the change record (internal report) up to this many cells
# per variable; the seed and parameters reproduce the rest.
MAX_STORED_CELLS = 200_000


def pram(
    ds: Dataset,
    *,
    variables: str | Sequence[str],
    matrix: Any = None,
    keep: float = 0.8,
    invariant: bool = False,
    strata: str | Sequence[str] | None = None,
    alpha: float = 0.5,
    household: str | None = None,
    seed: int | None = None,
) -> MethodResult:
    """Post-randomise ``variables`` (each independently).

    ``matrix``: a transition matrix ``{from: {to: probability}}``, ``{"categories": [...],
    "probabilities": [[...]]}``, or a square array over the observed categories in sorted
    order; with several variables ``{variable: matrix}`` (variables not listed get the
    estimated matrix). Rows must sum to 1. ``keep``: the diagonal of the estimated matrix.
    ``invariant``: make the expected frequencies equal the observed ones (``alpha`` in
    [0, 1] mixes the invariant matrix with the identity: smaller = fewer changes).
    ``strata``: build and apply the matrix within each stratum. ``household``: draw one
    random number per household, so members sharing a value keep sharing it (for
    household-level variables).

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> ds = Dataset(pl.DataFrame({"sex": [1, 2, 1, 2]}))
    >>> pram(ds, variables="sex", keep=1.0, seed=1).dataset.frame["sex"].to_list()
    [1, 2, 1, 2]
    """
    variables = base.column_names(variables, "variables", "pram")
    strata = base.column_names(strata, "strata", "pram") if strata is not None else []
    if not variables:
        raise SafemicroError("pram needs at least one variable", step="pram")
    for name in [*variables, *strata, *([household] if household else [])]:
        if name not in ds.columns:
            raise SafemicroError("no such column", column=name, step="pram")
    for name in variables:
        if name in strata or name == household:
            raise SafemicroError(
                "a variable cannot be prammed within strata (or households) defined by itself",
                column=name,
                step="pram",
            )
    keep = _probability(keep, "keep")
    alpha = _probability(alpha, "alpha")
    specs = _matrix_specs(matrix, variables)

    rng, used_seed = base.rng_for(seed)
    stratum, n_strata, strata_rows = base.stratum_ids(ds.frame, strata)
    hh_codes = encode_column(ds.analysis_column(household))[0] if household else None

    columns, info, matrices, notes = [], {}, {}, []
    for var in variables:
        u = rng.random(ds.n)
        if hh_codes is not None:
            per_household = rng.random(int(hh_codes.max(initial=0)) + 1)
            u = np.where(hh_codes > 0, per_household[hh_codes], u)
        column, var_info, var_matrices, extra = _pram_column(
            ds, var, specs.get(var), keep, invariant, alpha, stratum, n_strata, u
        )
        columns.append(column)
        info[var] = var_info
        matrices[var] = [{"stratum": _stratum_values(ds.frame, strata, strata_rows[s]), **m} for s, m in var_matrices]
        if len(var_matrices) < var_info["strata"]:
            notes.append(
                f"{var}: transition matrices kept for {len(var_matrices)} of {var_info['strata']}"
                " strata only (too large to store; the seed reproduces them)"
            )
        if extra and ds.codebook.meta(var).value_labels:
            unlabelled = [v for v in extra if v not in ds.codebook.meta(var).value_labels]
            if unlabelled:
                notes.append(f"{var}: the matrix can produce unlabelled codes {unlabelled}")

    frame = ds.frame.with_columns(columns)
    change = Change.measured(
        ds.frame,
        frame,
        variables,
        method="pram",
        params={
            "variables": variables,
            "matrix": sorted(specs) or None,  # which variables had a given matrix
            "keep": keep,
            "invariant": bool(invariant),
            "alpha": alpha,
            "strata": strata or None,
            "household": household,
        },
        seed=used_seed,
        details={"variables": info, "transition_matrix": matrices},
        notes=notes,
    )
    for var in variables:
        info[var]["changed"] = change.changed[var]
    return MethodResult(ds.with_frame(frame), change)


# -- one variable ----------------------------------------------------------------------


def _pram_column(
    ds: Dataset,
    var: str,
    spec: Any,
    keep: float,
    invariant: bool,
    alpha: float,
    stratum: np.ndarray,
    n_strata: int,
    u: np.ndarray,
) -> tuple[pl.Series, dict, list, list]:
    """The prammed column, its summary, per-stratum matrices and categories the matrix adds."""
    original = ds.frame[var]
    values = ds.analysis_column(var)
    codes, card = encode_column(values)
    if card > MAX_CATEGORIES:
        raise SafemicroError(
            f"{card} distinct values: PRAM is for categorical variables (recode it first)",
            column=var,
            step="pram",
        )
    observed = np.flatnonzero(codes)
    rep = np.zeros(card, dtype=np.int64)
    rep[codes[observed] - 1] = observed
    categories = values.gather(rep)
    given, extra = None, []
    if spec is not None:
        categories, given, extra = _parse_matrix(spec, categories, var)
        meta = ds.codebook.meta(var)
        for v in extra:
            if v is None or v in meta.missing_values or any(lo <= v <= hi for lo, hi in meta.missing_ranges):
                raise SafemicroError(
                    f"the matrix moves values to the missing code {v!r}; PRAM only moves"
                    " between observed categories (use suppression to blank values)",
                    column=var,
                    step="pram",
                )
    k = len(categories)

    code = codes[observed] - 1
    pairs, pair_of = np.unique(stratum[observed] * k + code, return_inverse=True)
    pair_of = pair_of.ravel()
    count = np.bincount(pair_of, minlength=len(pairs)).astype(np.float64)
    pair_stratum, pair_cat = np.divmod(pairs, k)
    bounds = np.searchsorted(pair_stratum, np.arange(n_strata + 1))

    rows, cols, cums, keep_prob, matrices = [], [], [], np.ones(len(pairs)), []
    names, stored = categories.to_list(), 0
    for s in range(n_strata):
        lo, hi = bounds[s], bounds[s + 1]
        if lo == hi:
            continue
        present, freq = pair_cat[lo:hi], count[lo:hi]
        if given is None:
            space, own = present, np.arange(hi - lo)
            p = _estimated(freq, keep)
        else:
            space, own = np.arange(k), present
            p = given
        if invariant:
            pi = np.zeros(len(space))
            pi[own] = freq / freq.sum()
            p = _invariant(p, pi, alpha)
        p = p[own]  # the rows of categories present in the stratum
        keep_prob[lo:hi] = p[np.arange(hi - lo), own]
        r, c = np.nonzero(p > 0)
        cum = np.cumsum(p, axis=1)[r, c]
        last = np.r_[r[1:] != r[:-1], True]
        cum[last] = 1.0  # each row ends exactly at 1
        rows.append(lo + r)
        cols.append(space[c])
        cums.append(np.minimum(cum, 1.0))
        stored += p.size
        if stored <= MAX_STORED_CELLS:
            labels = [names[i] for i in present], [names[i] for i in space]
            matrices.append((s, {"from": labels[0], "to": labels[1], "matrix": p.round(12).tolist()}))

    new_code = code
    if len(pairs):
        entries = [np.concatenate(x) for x in (rows, cols, cums)]
        new_code = _draw(*entries, pair_of, u[observed])
    moved = np.zeros(ds.n, dtype=bool)
    moved[observed] = new_code != code
    target = np.zeros(ds.n, dtype=np.int64)
    target[observed] = new_code
    column = original
    if moved.any():
        column = (
            pl.select(pl.when(pl.Series(moved)).then(categories.gather(target)).otherwise(original))
            .to_series()
            .cast(original.dtype)
            .alias(var)
        )
    summary = {
        "records": len(observed),
        "strata": int((np.diff(bounds) > 0).sum()),
        "categories": card,
        "expected_keep_rate": float(keep_prob[pair_of].mean()) if len(observed) else None,
    }
    return column, summary, matrices, extra


def _estimated(freq: np.ndarray, keep: float) -> np.ndarray:
    """Keep with probability ``keep``; else move to another category ∝ its frequency."""
    m = len(freq)
    if m == 1:
        return np.ones((1, 1))
    p = (1.0 - keep) * freq[None, :] / (freq.sum() - freq)[:, None]
    np.fill_diagonal(p, keep)
    return p


def _invariant(p: np.ndarray, pi: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha·(P·P̃) + (1 − alpha)·I``: a matrix R with ``π'R = π'``."""
    lam = pi @ p
    back = np.eye(len(pi))
    ok = lam > 0
    back[ok] = p.T[ok] * pi[None, :] / lam[ok, None]
    return alpha * (p @ back) + (1.0 - alpha) * np.eye(len(pi))


def _draw(row: np.ndarray, col: np.ndarray, cum: np.ndarray, rec_row: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample one destination per record from its matrix row, all rows at once.

    The sparse rows are laid end to end as integer keys ``row·2^b + ⌊cum·2^b⌋`` (sorted,
    each row ending exactly at the next row's start); a record's key
    ``row·2^b + ⌊u·2^b⌋`` then falls inside its own row, and ``searchsorted`` finds the
    first cumulative probability above ``u``.
    """
    bits = min(40, 62 - int(rec_row.max(initial=0) + 1).bit_length())
    scale = 1 << bits
    entry = (row.astype(np.int64) << bits) + np.minimum(np.round(cum * scale), scale).astype(np.int64)
    record = (rec_row.astype(np.int64) << bits) + np.floor(u * scale).astype(np.int64)
    return col[np.searchsorted(entry, record, side="right")]


# -- shared small helpers ----------------------------------------------------------------


def _probability(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SafemicroError(f"{what} must be a number between 0 and 1", step="pram")
    if not 0.0 <= float(value) <= 1.0:
        raise SafemicroError(f"{what} must lie between 0 and 1, got {value}", step="pram")
    return float(value)


def _stratum_values(frame: pl.DataFrame, strata: list[str], row: int) -> dict[str, Any]:
    return {name: frame[name][int(row)] for name in strata}


# -- plan step ------------------------------------------------------------------------------


class PramParams(StepParams):
    """Post-randomise categorical variables: keep each value with probability keep, else draw another category."""

    variables: list[str] = Field(default_factory=list)
    matrix: Any = None
    keep: float = Field(0.8, ge=0.0, le=1.0)
    invariant: bool = False
    alpha: float = Field(0.5, ge=0.0, le=1.0)
    strata: list[str] | str | None = None
    household: str | None = None  # default: roles.household when every variable is household-level
    seed: int | None = None

    def _strata(self) -> list[str]:
        return [self.strata] if isinstance(self.strata, str) else list(self.strata or [])

    def _household(self, ctx: StepContext) -> str | None:
        return base.household_for(self.variables, self.household, ctx)

    def resolve(self, ctx: StepContext) -> dict[str, Any]:
        return {"strata": self._strata() or None, "household": self._household(ctx)}

    def reads(self, ctx: StepContext) -> list[str]:
        hh = self._household(ctx)
        return [*self.variables, *self._strata(), *([hh] if hh else [])]

    def check(self, ctx: StepContext) -> None:
        if not self.variables:
            raise ValueError("pram needs variables: the categorical variables to post-randomise")
        self._household(ctx)  # raises when household- and person-level variables mix
        if ctx.roles.household and ctx.roles.household in self.variables:
            raise ValueError("pram cannot post-randomise the household id")


def _describe(params: PramParams, change: Change) -> str:
    info = change.details.get("variables", {})
    rates = [v["expected_keep_rate"] for v in info.values() if v.get("expected_keep_rate") is not None]
    kept = f"about {round(100 * float(np.mean(rates)))} %" if rates else "most"
    where = f" within each {', '.join(params._strata())}" if params._strata() else ""
    if change.params.get("household"):
        where += " (one draw per household, so members still share their value)"
    text = (
        f"Post-randomisation (PRAM) was applied to {', '.join(params.variables)}: {kept} of the "
        f"values were kept and the others replaced at random by another category{where}, so any "
        "single value may be false."
    )
    if params.invariant:
        return text + (
            " The randomisation was invariant: category frequencies stay unbiased, but"
            " associations with other variables are weakened."
        )
    return text + (
        " Frequencies are pulled towards the other categories and associations with other"
        " variables are weakened; treat these variables with care in analysis."
    )


register("pram", PramParams, _describe, random=True, perturbative=True)(base.calls(pram))
