"""Run a release plan's ``steps:`` in order, after checking the whole plan against the data.

:func:`prepare_steps` validates every step before anything runs: the method exists, its
parameters are valid, and every column it needs is present *at that point of the plan*
(so PRAM on a variable an earlier step removed is rejected). :func:`run_steps` then applies
them; each random step gets its own seed derived from the plan seed and its position, so
the same plan + data + seed gives the same output, and the resolved parameters and seeds
form the lock plan that reproduces the run.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from pydantic import ValidationError

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods import STEPS
from safemicro.methods.base import Change, StepContext, StepParams, StepSpec, cells_differ, rng_for
from safemicro.plan import Plan, Roles, did_you_mean

__all__ = ["PreparedStep", "prepare_steps", "run_steps", "step_seed", "roles_after", "in_released_coding"]

RECODINGS = ("recode", "topcode", "bottomcode")  # steps that change a variable's coding
NEW_CODING = ("recode",)  # ... and give it new categories (value labels): counted by what values say


@dataclass(frozen=True)
class PreparedStep:
    """A validated step: its spec, parsed parameters and the context it will run in."""

    spec: StepSpec
    params: StepParams
    ctx: StepContext

    @property
    def label(self) -> str:
        return f"{self.ctx.index} ({self.spec.name})"

    def resolved_params(self) -> dict[str, Any]:
        """Parameters with defaults filled in, JSON/YAML-friendly (for the lock plan)."""
        return self.params.model_dump(mode="json")


def step_seed(plan_seed: int, index: int) -> int:
    """The seed of step ``index``: independent streams per step from one plan seed."""
    return int(np.random.SeedSequence([plan_seed, index]).generate_state(1, dtype=np.uint32)[0])


def roles_after(roles: Roles, columns: list[str] | tuple[str, ...]) -> Roles:
    """The roles restricted to the columns that still exist (removed variables dropped)."""
    have = set(columns)
    data = roles.model_dump()
    for field in ("direct_ids", "keys", "numeric_keys", "sensitive", "household_level"):
        data[field] = [v for v in data[field] if v in have]
    for field in ("weight", "household", "strata", "cluster"):
        if data[field] is not None and data[field] not in have:
            data[field] = None
    data["ghost"] = {g: k for g, k in data["ghost"].items() if g in have and k in have}
    if data["household"] is None:
        data["household_level"] = []
    return Roles.model_validate(data)


def _step_error(
    message: str, index: int, name: str, column: str | None = None, file: str | None = None
) -> SafemicroError:
    return SafemicroError(message, step=f"{index} ({name})", column=column, file=file)


def _params_error(exc: ValidationError, index: int, name: str, fields: list[str], file: str | None) -> SafemicroError:
    parts = []
    column = None
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(parameters)"
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            hint = did_you_mean(loc.split(".")[-1], fields)
            msg = f"unknown parameter{hint or ' (check the spelling)'}"
        parts.append(f"{loc}: {msg}")
        column = column or getattr(err.get("ctx", {}).get("error"), "column", None)
    return _step_error("invalid parameters: " + "; ".join(parts), index, name, column, file)


def prepare_steps(plan: Plan, columns: list[str], *, seed: int) -> list[PreparedStep]:
    """Validate every step of ``plan`` against ``columns``; raise on the first problem.

    ``seed`` is the plan seed (drawn by the caller when the plan has none).
    """
    present = list(columns)
    prepared: list[PreparedStep] = []
    for index, step in enumerate(plan.steps, start=1):
        ((name, raw),) = step.items()
        spec = STEPS.get(name)
        if spec is None:
            raise _step_error(
                f"unknown method{did_you_mean(name, list(STEPS))}; known: {', '.join(sorted(STEPS))}",
                index,
                name,
                file=plan.source,
            )
        raw = dict(raw)
        own_seed = raw.get("seed") if spec.random else None
        ctx = StepContext(
            roles=roles_after(plan.roles, present),
            targets=plan.targets,
            alpha=plan.alpha,
            seed=int(own_seed) if isinstance(own_seed, int) else step_seed(seed, index),
            index=index,
            columns=tuple(present),
            attribute=plan.attribute_disclosure,
            population=_population_loader(plan, prepared, index) if plan.population else None,
        )
        try:
            params = spec.params.model_validate(raw)
            params.check(ctx)
            reads = params.reads(ctx)
            removes = params.removes(ctx)
        except ValidationError as exc:
            raise _params_error(exc, index, name, list(spec.params.model_fields), plan.source) from None
        except ValueError as exc:
            raise _step_error(str(exc), index, name, file=plan.source) from None
        for col in list(reads) + list(removes):
            if col not in present:
                removed_earlier = col in columns
                why = "was removed by an earlier step" if removed_earlier else "is not a column of the data"
                close = difflib.get_close_matches(col, present, n=1) if not removed_earlier else []
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise _step_error(f"column {col!r} {why}{hint}", index, name, column=col, file=plan.source)
        present = [c for c in present if c not in set(removes)]
        prepared.append(PreparedStep(spec, params, ctx))
    return prepared


def _population_loader(plan: Plan, prepared: list[PreparedStep], index: int) -> Callable[[], Dataset | None]:
    """The plan's population file, read when a step asks, with the recodes (recode, top and
    bottom coding) of the steps before ``index`` applied, so it is in the coding that step
    sees; an earlier ``recode_search``'s levels are not known here (it aims at k-map itself)."""
    cache: list[Dataset | None] = []

    def load() -> Dataset | None:
        if not cache:
            from safemicro.assess_inputs import load_population

            population = load_population(None, plan)
            if population is not None:
                population = in_released_coding(population, prepared[: index - 1])[0]
            cache.append(population)
        return cache[0]

    return load


def run_steps(
    dataset: Dataset,
    steps: list[PreparedStep],
    *,
    on_step: Callable[[PreparedStep], None] | None = None,
) -> tuple[Dataset, list[Change]]:
    """Apply prepared steps in order; returns the final dataset and one Change per step.

    A :class:`SafemicroError` raised inside a step is re-raised naming the step.
    """
    changes: list[Change] = []
    current = dataset
    for prepared in steps:
        if on_step is not None:
            on_step(prepared)
        try:
            result = prepared.spec.run(current, prepared.params, prepared.ctx)
        except SafemicroError as exc:
            if exc.step in (None, prepared.spec.name):  # name the step by its place in the plan
                exc.step = prepared.label
            raise
        change = result.change
        current = _suppress_ghosts(current, result.dataset, prepared, change)
        if prepared.spec.random and change.seed is None:
            change.seed = prepared.ctx.seed
        changes.append(change)
    return current, changes


def _suppress_ghosts(before: Dataset, after: Dataset, prepared: PreparedStep, change: Change) -> Dataset:
    """Suppress each ghost variable where the step suppressed its linked key (sdcMicro
    ``ghostVars``): a region name must not give away the suppressed region code. The ghost
    cells join the step's change record."""
    ghosts = {g: k for g, k in prepared.ctx.roles.ghost.items() if g in after.columns and k in after.columns}
    if not ghosts or prepared.spec.reorders or before.n != after.n or not change.suppressed:
        return after
    frame = after.frame
    for ghost, key in ghosts.items():
        if not change.suppressed.get(key):
            continue
        _, suppressed = cells_differ(before.frame[key], after.frame[key])
        hit = suppressed & ~after.frame[ghost].is_null().to_numpy()
        if not hit.any():
            continue
        frame = frame.with_columns(pl.when(pl.Series(hit)).then(None).otherwise(pl.col(ghost)).alias(ghost))
        n = int(hit.sum())
        change.changed[ghost] = change.changed.get(ghost, 0) + n
        change.suppressed[ghost] = change.suppressed.get(ghost, 0) + n
        change.notes.append(f"{n} cells of ghost variable {ghost} suppressed with its key {key}")
    return after.with_frame(frame) if frame is not after.frame else after


def draw_seed() -> int:
    """A fresh plan seed for a plan that has none (recorded in the lock plan)."""
    return rng_for(None)[1]


def recoding_prefix(steps: list[PreparedStep]) -> int:
    """How many leading steps are the plan's recodes, when no recode comes after them (else 0):
    the data after those steps is then :func:`in_released_coding`'s, with nothing run twice."""
    flags = [p.spec.name in RECODINGS and getattr(p.params, "variable", None) is not None for p in steps]
    k = flags.index(False) if False in flags else len(flags)
    return k if not any(flags[k:]) else 0


def in_released_coding(
    dataset: Dataset, steps: list[PreparedStep], *, recoded: Dataset | None = None
) -> tuple[Dataset, list[str], list[str]]:
    """The original with the plan's recodes (recode, top/bottom coding) applied and nothing
    else, the variables they recode, and those given new categories (``recode``): what the
    original looks like in the release's coding, so before/after distributions compare
    like with like. ``recoded``: that dataset, already made by running the
    :func:`recoding_prefix` steps on ``dataset``."""
    current, names, new_coding = dataset, [], []
    for prepared in steps:
        variable = getattr(prepared.params, "variable", None)
        if prepared.spec.name in RECODINGS and variable in current.columns:
            if recoded is None:
                current = prepared.spec.run(current, prepared.params, prepared.ctx).dataset
            names.append(variable)
            if prepared.spec.name in NEW_CODING:
                new_coding.append(variable)
    return recoded if recoded is not None else current, list(dict.fromkeys(names)), list(dict.fromkeys(new_coding))
