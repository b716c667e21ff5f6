"""What every anonymization method shares: its result, its change record, the step registry.

A method is a pure function on a :class:`~safemicro.io.Dataset`: it never mutates its
input and returns a :class:`MethodResult` = the new dataset + a :class:`Change` saying what
it did (cells changed and suppressed per variable, records touched, resolved parameters,
the seed it used). Methods keep every column they do not work on, in place and in order,
and keep the row order unless reordering is their purpose (they then go through
:func:`take_rows`, which carries the codebook's row-indexed metadata along).

Plan steps (``steps:`` in a release plan) are methods registered with :func:`register`:
a pydantic parameter model (``extra="forbid"``) that also says which columns the step
reads and removes, so :mod:`safemicro.pipeline` can reject a bad plan before anything
runs, and a ``describe`` function giving the sentence for the external report (never the
seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import combine_codes, dense_ids, encode_column
from safemicro.plan import Roles, Targets

__all__ = [
    "Change",
    "MethodResult",
    "StepContext",
    "StepParams",
    "StepSpec",
    "STEPS",
    "register",
    "count_changes",
    "cells_differ",
    "same_values",
    "take_rows",
    "rng_for",
    "step_seed",
    "per_household",
    "household_for",
    "household_index",
    "column_names",
    "numeric_matrix",
    "stratum_ids",
    "ROW_ID",
]

# Hidden column the pipeline adds so utility measures can align released rows with the
# original after reordering or subsampling. Methods keep it like any other column.
ROW_ID = "__safemicro_row"


@dataclass
class Change:
    """What one method did. ``changed``/``suppressed`` map variable -> number of cells."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  # cells whose value differs (incl. suppressed)
    suppressed: dict[str, int] = field(default_factory=dict)  # cells set to missing
    records_touched: int = 0
    removed: list[str] = field(default_factory=list)  # columns the step dropped (every record loses them)
    seed: int | None = None
    details: dict[str, Any] = field(default_factory=dict)  # method-specific, JSON-friendly
    notes: list[str] = field(default_factory=list)
    # never serialised: outputs that must stay outside the bundle (a pseudonym mapping table)
    private: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self, *, with_seed: bool = True) -> dict[str, Any]:
        out = {
            "name": self.method,
            "params": self.params,
            "changed": self.changed,
            "suppressed": self.suppressed,
            "records_touched": self.records_touched,
            "removed": self.removed,
            "details": self.details,
            "notes": self.notes,
        }
        if with_seed:
            out["seed"] = self.seed
        return out

    @classmethod
    def measured(
        cls,
        before: pl.DataFrame,
        after: pl.DataFrame,
        columns: list[str],
        labels: dict[str, tuple[dict, dict]] | None = None,
        **fields: Any,
    ) -> Change:
        """A change whose ``changed``, ``suppressed`` and ``records_touched`` are counted
        between ``before`` and ``after`` by :func:`count_changes`; ``fields`` give the rest."""
        changed, suppressed, touched = count_changes(before, after, columns, labels)
        return cls(changed=changed, suppressed=suppressed, records_touched=touched, **fields)


@dataclass
class MethodResult:
    """A method's output: the new dataset and the record of what changed."""

    dataset: Dataset
    change: Change

    def __iter__(self):  # allows ``ds, change = method(...)``
        return iter((self.dataset, self.change))


def _comparable(a: pl.Series, b: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Both series in one dtype: numbers as Float64 (so 2 and 2.0 are equal), else text."""
    if a.dtype.is_numeric() and b.dtype.is_numeric():
        return a.cast(pl.Float64), b.cast(pl.Float64)
    if a.dtype == b.dtype:
        return a, b
    return a.cast(pl.String), b.cast(pl.String)


def _missing(s: pl.Series) -> np.ndarray:
    miss = s.is_null().to_numpy()
    if s.dtype.is_float():
        miss = miss | s.is_nan().fill_null(False).to_numpy()
    return miss


def _shown(s: pl.Series, labels: dict[Any, str]) -> pl.Series:
    """Each value as a reader sees it: its value label, else the value (2.0 written 2)."""
    if s.dtype.is_numeric():
        x = s.cast(pl.Float64)
        whole = (x == x.round(0)).fill_null(False) & x.is_finite().fill_null(False)
        text = pl.select(
            pl.when(whole).then(x.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(x.cast(pl.String))
        ).to_series()
    else:
        text = s.cast(pl.String)
    keys = {(str(int(k)) if isinstance(k, float) and k.is_integer() else str(k)): str(v) for k, v in labels.items()}
    return text.replace(keys) if keys else text


def cells_differ(
    before: pl.Series, after: pl.Series, labels: tuple[dict, dict] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: does the value differ, and was it set to missing? (the one change count)

    A value *differs* when it is missing on one side only, or present on both sides and
    not equal (numbers compared as numbers, so a code written 2.0 equals 2; other values
    as text when the types differ). Missing on both sides is no change. A recoded variable
    passes its value ``labels`` before and after: a value then also differs when what it
    says does (age 1 recoded into band 1 "0-4" is changed). The step table and the
    per-variable table of the report both count cells with this rule: a step against its
    input, the release against the original.
    """
    if (labels is None or labels[0] == labels[1]) and same_values(before, after):
        nothing = np.zeros(before.len(), dtype=bool)  # an untouched column: one pass, not eight
        return nothing, nothing.copy()
    a, b = _comparable(before, after)
    an, bn = _missing(a), _missing(b)
    differ = (a != b).fill_null(False).to_numpy() & ~an & ~bn
    if labels is not None and labels[0] != labels[1]:
        differ |= _said_differs(before, after, labels) & ~an & ~bn
    return differ | (an != bn), ~an & bn


def same_values(before: pl.Series, after: pl.Series) -> bool:
    """The same values in the same rows and type (missing where missing)."""
    return before.dtype == after.dtype and before.len() == after.len() and before.equals(after, null_equal=True)


def _said_differs(before: pl.Series, after: pl.Series, labels: tuple[dict, dict]) -> np.ndarray:
    """Per row: does what the value says (:func:`_shown`) differ? Computed on the distinct
    values of each side (text made once per value, not once per record), then compared
    per row as integer ids of the texts."""
    ids: dict[str, int] = {}

    def shown_ids(s: pl.Series, side_labels: dict) -> pl.Series:
        if s.dtype.is_float():
            s = s.fill_nan(None)  # NaN rows are missing: never compared
        values = s.unique().drop_nulls()
        texts = _shown(values, side_labels).to_list()
        new = [ids.setdefault(t, len(ids)) if t is not None else None for t in texts]
        return s.replace_strict(values, pl.Series(new, dtype=pl.Int64), default=None, return_dtype=pl.Int64)

    said = shown_ids(before, labels[0]) != shown_ids(after, labels[1])
    return said.fill_null(False).to_numpy()


def count_changes(
    before: pl.DataFrame,
    after: pl.DataFrame,
    columns: list[str],
    labels: dict[str, tuple[dict, dict]] | None = None,
) -> tuple[dict[str, int], dict[str, int], int]:
    """Cells changed and suppressed per column (:func:`cells_differ`; ``labels``: value labels
    before and after of recoded columns), and records with any change.

    Both frames must have the same rows in the same order.
    """
    changed: dict[str, int] = {}
    suppressed: dict[str, int] = {}
    touched = np.zeros(before.height, dtype=bool)
    for name in columns:
        diff, sup = cells_differ(before[name], after[name], (labels or {}).get(name))
        changed[name] = int(diff.sum())
        suppressed[name] = int(sup.sum())
        touched |= diff
    return changed, suppressed, int(touched.sum())


def take_rows(ds: Dataset, rows: np.ndarray) -> Dataset:
    """The dataset restricted/reordered to ``rows`` (indices into the current rows).

    Row-indexed codebook metadata (Stata extended missing codes) follows its rows.
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = ds.with_frame(ds.frame[rows])
    if ds.codebook.extended_missing:
        new_pos = np.full(ds.n, -1, dtype=np.int64)
        new_pos[rows] = np.arange(len(rows))
        out.codebook.extended_missing = {
            col: {int(new_pos[r]): code for r, code in m.items() if r < ds.n and new_pos[r] >= 0}
            for col, m in ds.codebook.extended_missing.items()
        }
    return out


def rng_for(seed: int | None) -> tuple[np.random.Generator, int]:
    """A NumPy generator and the seed it was built from (drawn at random when None)."""
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint32)[0])
    return np.random.default_rng(seed), int(seed)


# -- argument helpers shared by the methods ---------------------------------------------------


def column_names(value: Any, what: str, step: str) -> list[str]:
    """A column name or a list of them, as a list; no duplicates."""
    names = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in names):
        raise SafemicroError(f"{what} must be column names", step=step)
    if len(set(names)) != len(names):
        raise SafemicroError(f"{what} lists a column twice", step=step)
    return names


def numeric_matrix(ds: Dataset, names: list[str], step: str) -> np.ndarray:
    """(n, p) float64 of numeric columns, NaN for every kind of missing value.

    Errors name the column: absent, not numeric, or holding an infinite value (and its row).
    """
    cols = []
    for name in names:
        if name not in ds.columns:
            raise SafemicroError("no such column", column=name, step=step)
        dtype = ds.frame.schema[name]
        if not (dtype.is_integer() or dtype.is_float()):
            raise SafemicroError(f"needs a numeric column, this one is {dtype}", column=name, step=step)
        col = ds.numeric_column(name).fill_null(np.nan).to_numpy()  # codes, missing -> NaN
        bad = np.flatnonzero(np.isinf(col))
        if len(bad):
            raise SafemicroError("infinite value", column=name, row=int(bad[0]) + 1, step=step)
        cols.append(col)
    if not cols:
        return np.zeros((ds.n, 0))
    return np.ascontiguousarray(np.column_stack(cols), dtype=np.float64)


def stratum_ids(frame: pl.DataFrame, strata: list[str]) -> tuple[np.ndarray, int, np.ndarray]:
    """Stratum id 0..S-1 per record (raw values; missing is a stratum of its own), the
    number of strata, and the first row of each stratum."""
    if not strata:
        return np.zeros(frame.height, dtype=np.int64), 1, np.zeros(1, dtype=np.int64)
    encoded = [encode_column(frame[name]) for name in strata]
    combined, space = combine_codes([c for c, _ in encoded], [card for _, card in encoded])
    ids, distinct = dense_ids(combined, space)
    first = np.zeros(len(distinct), dtype=np.int64)
    first[ids[::-1]] = np.arange(frame.height)[::-1]
    return ids.astype(np.int64), max(len(distinct), 1), first


# -- household-level variables ------------------------------------------------------------


def household_index(ds: Dataset, household: str, variables: list[str], step: str) -> tuple[np.ndarray, np.ndarray]:
    """The first row of every household (in order of first appearance; a record without
    household id is a household of its own) and each record's household number, after
    checking that ``variables`` take one value per household (the error names the row)."""
    if household not in ds.columns:
        raise SafemicroError("no such column (household id)", column=household, step=step)
    if household in variables:
        raise SafemicroError("the household id cannot be perturbed", column=household, step=step)
    codes, _ = encode_column(ds.analysis_column(household))
    key = np.where(codes > 0, codes, -1 - np.arange(ds.n))  # no id: a household of its own
    _, first, index = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    first, index = first[order], rank[index.ravel()]
    for name in variables:
        if name not in ds.columns:
            raise SafemicroError("no such column", column=name, step=step)
        col = ds.frame[name]
        differs = np.flatnonzero(col.gather(first[index]).ne_missing(col).to_numpy())
        if len(differs):
            row = int(differs[0])
            raise SafemicroError(
                f"household-level variable differs within household {ds.frame[household][row]!r} "
                f"({col[row]!r} here, {col[int(first[index[row]])]!r} in row {int(first[index[row]]) + 1}); "
                "perturb it per person (no household) or make it one value per household first",
                column=name,
                row=row + 1,
                step=step,
            )
    return first, index


def per_household(
    ds: Dataset,
    variables: list[str],
    household: str,
    run: Callable[[Dataset], MethodResult],
    step: str,
) -> MethodResult:
    """Apply ``run`` to household-level ``variables`` once per household.

    ``run`` gets the first record of every household (households in order of first
    appearance; a record without household id is a household of its own) and each member
    receives its household's new values. The variables must already take one value per
    household. Counts in the change record are cells and records of the full file;
    details gain ``households``.
    """
    first, index = household_index(ds, household, variables, step)
    inner = run(take_rows(ds, first))
    frame = ds.frame.with_columns([inner.dataset.frame[name].gather(index) for name in variables])
    out = ds.with_frame(frame)
    for name in variables:
        out.codebook.variables[name] = replace(inner.dataset.codebook.meta(name))
    changed, suppressed, touched = count_changes(ds.frame, frame, variables)
    change = replace(
        inner.change,
        params={**inner.change.params, "household": household},
        changed=changed,
        suppressed=suppressed,
        records_touched=touched,
        details={**inner.change.details, "households": int(len(first))},
    )
    return MethodResult(out, change)


def household_for(variables: list[str], household: str | None, ctx: StepContext) -> str | None:
    """A step's household: the given one, else roles.household when every variable is
    household-level. Raises ValueError when household-level and person-level variables mix."""
    if household is not None:
        return household
    level = [v for v in variables if v in ctx.roles.household_level]
    if not ctx.roles.household or not level:
        return None
    if len(level) != len(variables):
        raise ValueError(f"mixes household-level variables {level} with person-level ones; use one step for each kind")
    return ctx.roles.household


# -- plan steps ------------------------------------------------------------------------


@dataclass(frozen=True)
class StepContext:
    """What a step knows besides its parameters, as of its place in the plan."""

    roles: Roles  # roles with removed columns dropped
    targets: Targets
    alpha: float
    seed: int  # this step's own seed (derived from the plan seed and step number)
    index: int  # 1-based step number
    columns: tuple[str, ...]  # columns present before the step
    attribute: Any = None  # the plan's attribute_disclosure (t-closeness distances, hierarchies)
    population: Callable[[], Any] | None = None  # the plan's population in this step's coding (None: no file)


def step_seed(params: Any, ctx: StepContext) -> int:
    """A random step's seed: its own ``seed`` parameter when given, else the plan's seed for the step."""
    return params.seed if params.seed is not None else ctx.seed


class StepParams(BaseModel):
    """Base of every step's parameter model; unknown parameters are errors."""

    model_config = ConfigDict(extra="forbid")
    # fields that only feed :meth:`resolve` and are no argument of the step's function
    _consumed: ClassVar[tuple[str, ...]] = ()

    def resolve(self, ctx: StepContext) -> dict[str, Any]:
        """The step function's arguments that the context decides (roles, defaults), by name."""
        return {}

    def arguments(self, ctx: StepContext) -> dict[str, Any]:
        """Keyword arguments of the step's function: each field as given, except those
        :meth:`resolve` decides and the ``_consumed`` ones; a ``seed`` field becomes the
        step's seed (:func:`step_seed`)."""
        resolved = self.resolve(ctx)
        if "seed" in type(self).model_fields:
            resolved["seed"] = step_seed(self, ctx)
        fields = [k for k in type(self).model_fields if k not in resolved and k not in self._consumed]
        return {**{k: getattr(self, k) for k in fields}, **resolved}

    def reads(self, ctx: StepContext) -> list[str]:
        """Columns that must exist when the step runs."""
        return []

    def removes(self, ctx: StepContext) -> list[str]:
        """Columns the step drops."""
        return []

    def check(self, ctx: StepContext) -> None:
        """Extra checks against the context; raise ValueError with a clear message."""


@dataclass(frozen=True)
class StepSpec:
    name: str
    params: type[StepParams]
    run: Callable[[Dataset, Any, StepContext], MethodResult]
    describe: Callable[[Any, Change], str]
    random: bool = False  # draws random numbers (the seed matters)
    perturbative: bool = False  # frequency-based risk no longer tells the whole story after it
    reorders: bool = False  # changes the row order or the set of rows on purpose


STEPS: dict[str, StepSpec] = {}


def calls(function: Callable[..., MethodResult]) -> Callable[[Dataset, Any, StepContext], MethodResult]:
    """The run of a step that is ``function(dataset, **params.arguments(ctx))``."""

    def run(ds: Dataset, params: StepParams, ctx: StepContext) -> MethodResult:
        return function(ds, **params.arguments(ctx))

    return run


def register(
    name: str,
    params: type[StepParams],
    describe: Callable[[Any, Change], str],
    *,
    random: bool = False,
    perturbative: bool = False,
    reorders: bool = False,
) -> Callable:
    """Decorator registering ``run(dataset, params, ctx) -> MethodResult`` as plan step ``name``."""

    def deco(run: Callable[[Dataset, Any, StepContext], MethodResult]) -> Callable:
        if name in STEPS:
            raise RuntimeError(f"step {name!r} registered twice")
        STEPS[name] = StepSpec(name, params, run, describe, random, perturbative, reorders)
        return run

    return deco
