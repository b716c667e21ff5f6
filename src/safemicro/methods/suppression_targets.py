"""Local suppression until every equivalence class meets attribute-disclosure and k-map targets.

k-anonymity alone leaves a class in which everyone is a "survivor of violence" disclosing it.
:func:`target_suppression` sets key values to missing (sdcMicro semantics: the value is gone,
the record keeps its other keys) until every class — records with identical keys, a missing
value equal to a missing value, the groups of the attribute measures — meets t-closeness,
l-diversity, δ-disclosure, β-likeness and (α,k)-anonymity for every sensitive variable, and
until every released key matches at least ``k_map`` people of the population (a missing
value matching every population value, as :mod:`safemicro.risk.population` counts).

The algorithm is a greedy, class-level form of ARX's record suppression with a limit:

1. Keys are ordered by importance (least important suppressed first; ties: the key with
   more distinct values first, it splits classes most).
2. Every record of a failing class gets its next key suppressed; the records whose keys now
   agree form new, coarser classes, which are tested again. A record that reaches the end of
   the order has every key suppressed (ARX's suppressed record, ``*`` in every key). A
   household-level key suppressed for one member is suppressed for the whole household
   (else the other members would give it back), and the classes are tested again.
3. The records with every key missing form one class. When that class fails (the union of
   the failing classes is as skewed as its parts), passing classes are added to it one at a
   time, each time the one whose union with it comes closest to the targets (smallest
   relative excess, then fewest records), until it passes.
4. More records touched than ``max_suppression`` of the file (ARX's suppression limit), or a
   target that even the whole file cannot meet, is refused with an error saying what it
   would take; nothing is returned half done.

The result is then checked by the measures themselves (:func:`attribute_disclosure`,
:func:`ldiversity`, :func:`population_risk`) on the suppressed file, independently of the
class tests used while suppressing. With ``k_anonymity`` the records' sdcMicro fk (wildcards)
is kept at k too: sdcMicro does not count a record whose keys are all missing for complete
keys, so suppressing one can lower another record's fk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import combine_codes, dense_ids, encode_column
from safemicro.methods.base import Change, MethodResult, StepContext, register
from safemicro.methods.suppression import _apply
from safemicro.methods.suppression_input import (
    Importance,
    _importance_names,
    _masked,
    _plain,
    _prepare,
    _record_fk,
    _spread,
)
from safemicro.methods.suppression_optimal import _importance_costs
from safemicro.methods.target_classes import ClassTargets, SensitiveClasses, TargetFields
from safemicro.risk.population import population_frequencies

__all__ = ["target_suppression", "verify_targets"]

DENSE_CELLS = 20_000_000  # class x value cells scored at once when merging into the suppressed class


def _groups(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense class id per record (identical codes, 0 = missing as a value) and a representative row."""
    cards = [int(codes[:, j].max(initial=0)) for j in range(codes.shape[1])]
    gid, _ = dense_ids(*combine_codes([codes[:, j] for j in range(codes.shape[1])], cards))
    rep = np.zeros(int(gid.max(initial=-1)) + 1, dtype=np.int64)
    rep[gid] = np.arange(len(gid))
    return gid, rep


class _Checker:
    """Failing classes of the current codes: attribute targets and k-map."""

    def __init__(self, ds, keys, sensitive, targets, distance, hierarchies, population):
        self.keys, self.targets = keys, targets
        self.sens = SensitiveClasses(ds.analysis_frame(sensitive), targets, distance, hierarchies)
        self.key_frame = ds.analysis_frame(keys)
        self.population = population

    def kmap(self, rep: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Population frequency of each class (its representative's key, masked keys wildcards)."""
        frame = self.key_frame[rep]
        hits = [pl.Series(((masks[rep] >> j) & 1) == 1) for j in range(len(self.keys))]
        frame = frame.with_columns(
            [pl.when(hit).then(None).otherwise(pl.col(k)).alias(k) for k, hit in zip(self.keys, hits)]
        )
        return population_frequencies(frame, self.population, self.keys)

    def failing(self, g: np.ndarray, rep: np.ndarray, masks: np.ndarray) -> np.ndarray:
        fail = self.sens.failing(g, len(rep))
        if self.targets.k_map is not None:
            fail |= self.kmap(rep, masks) < self.targets.k_map
        return fail


def _order(keys: list[str], codes: np.ndarray, importance: Importance) -> list[int]:
    """Keys in suppression order: cheapest (least important) first, more distinct values first."""
    costs = _importance_costs(importance, keys)
    distinct = [-len(np.unique(codes[:, j])) for j in range(len(keys))]
    return sorted(range(len(keys)), key=lambda j: (costs[j], distinct[j], j))


def target_suppression(
    ds: Dataset,
    *,
    keys: Sequence[str],
    sensitive: Sequence[str] = (),
    t_closeness: float | None = None,
    l_diversity: int | None = None,
    delta_disclosure: float | None = None,
    beta_likeness: float | None = None,
    max_sensitive_share: float | None = None,
    k: int | None = None,
    k_map: int | None = None,
    population: Dataset | None = None,
    distance: dict[str, str] | None = None,
    hierarchies: dict[str, Any] | None = None,
    importance: Importance = None,
    household: str | None = None,
    household_level: Sequence[str] = (),
    k_anonymity: int | None = None,
    alpha: float = 1.0,
    max_suppression: float = 0.05,
) -> MethodResult:
    """Suppress key values until every class meets the targets; see the module docstring.

    ``distance``/``hierarchies``: the t-closeness EMD per sensitive variable (as
    :func:`~safemicro.risk.attribute.attribute_disclosure`); ``k``: records per class (the k
    of (α,k)-anonymity); ``k_map`` needs ``population`` (in the data's coding). With
    ``household`` and ``household_level``, a household-level key suppressed for one member is
    suppressed for the whole household (the classes are then tested again). ``k_anonymity``:
    also keep every record's sdcMicro fk (missing values as wildcards, ``alpha``) at least
    this (a record whose keys are all missing no longer counts for complete keys, so
    suppressing can lower another record's fk: such records lose their next key too).

    >>> import polars as pl
    >>> from safemicro.io import Dataset
    >>> df = pl.DataFrame({"camp": [1, 1, 1, 2, 2, 2, 3, 4], "status": ["a", "b", "c", "a", "b", "c", "a", "b"]})
    >>> res = target_suppression(Dataset(df), keys=["camp"], sensitive=["status"], l_diversity=2, max_suppression=0.5)
    >>> res.dataset.frame["camp"].to_list()
    [1, 1, 1, 2, 2, 2, None, None]
    """
    keys, sensitive = list(keys), list(sensitive)
    targets = ClassTargets(t_closeness, l_diversity, delta_disclosure, beta_likeness, max_sensitive_share, k, k_map)
    _check(ds, keys, sensitive, targets, population, max_suppression)
    inp = _prepare(ds, keys, None, household, household_level)
    importance = _importance_names(importance, keys, ds)
    n, m = ds.n, len(keys)
    codes = inp.codes
    order = _order(keys, codes, importance)
    bits = np.int64(1) << np.arange(m, dtype=np.int64)
    observed = (codes != 0) @ bits
    pop = population.analysis_frame(keys) if population is not None else None
    checker = _Checker(ds, keys, sensitive, targets, distance, hierarchies, pop)
    if checker.sens.failing(np.zeros(n, dtype=np.int64), 1)[0]:
        raise SafemicroError(
            f"{_targets_text(targets)} cannot be met: the whole file, as one class, fails it "
            "(a target below what the file's own distribution of the sensitive values allows)",
            file=ds.source,
        )
    if targets.k_map is not None and pop is not None and pop.height < targets.k_map:
        raise SafemicroError(f"k-map {targets.k_map} cannot be met: the population has fewer people", file=ds.source)
    masks = np.zeros(n, dtype=np.int64)  # suppressed observed cells per record
    failing_before, stages, merged = None, [], 0
    while True:
        g, rep = _groups(_masked(codes, masks))
        fail = checker.failing(g, rep, masks)
        if failing_before is None:
            failing_before = int(fail[g].sum())
        full = masks == observed
        bad = fail[g] & ~full
        if k_anonymity is not None:
            bad |= (_record_fk(_masked(codes, masks), inp.weights, alpha)[0] < k_anonymity - 1e-9) & ~full
        if bad.any():  # each record of a failing class loses its next key in the order
            stages.append(int(bad.sum()))
            for j in order:
                hit = bad & (((masks | ~observed) >> j) & 1 == 0)
                masks[hit] |= bits[j]
                bad &= ~hit
        elif (fail[g] & full).any():  # the class of fully suppressed records fails
            merged += _fix_suppressed_class(checker, codes, masks, observed, g, rep)
        else:
            break
        masks = _spread(masks, inp) & observed
    touched = int((masks != 0).sum())
    limit = int(math.floor(max_suppression * n + 1e-9))
    if touched > limit:
        raise SafemicroError(
            f"meeting {_targets_text(targets)} needs key values suppressed in {touched} records "
            f"({touched / n:.1%}), more than max_suppression {max_suppression:g} allows ({limit}); "
            "generalise the keys first (recode_search with these targets) or raise max_suppression",
            file=ds.source,
        )
    out = _apply(ds, keys, masks)
    verification = verify_targets(out, keys, sensitive, targets, distance, hierarchies, population)
    if k_anonymity is not None:
        fk = _record_fk(_masked(codes, masks), inp.weights, alpha)[0]
        if fk.min() < k_anonymity - 1e-9:
            raise SafemicroError(f"the suppressed file is not {k_anonymity}-anonymous", file=ds.source)
        verification["fk_min"] = float(fk.min())
    change = Change.measured(
        ds.frame,
        out.frame,
        keys,
        method="target_suppression",
        params={
            "keys": keys,
            "sensitive": sensitive,
            **targets.given(),
            "distance": dict(distance or {}),
            "importance": _plain(importance),
            "max_suppression": max_suppression,
            "population": population.source if population is not None else None,
            "household": household,
            "household_level": [v for v in household_level if v in keys],
            "k_anonymity": k_anonymity,
            "alpha": alpha,
        },
        notes=["household-level keys are suppressed for every member of a household"] if inp.household_bits else [],
    )
    change.details = {
        "cells_suppressed": int(sum(change.suppressed.values())),
        "records_with_suppression": touched,
        "records_fully_suppressed": int(((masks == observed) & (masks != 0)).sum()),
        "records_in_failing_classes_before": failing_before,
        "suppression_order": [keys[j] for j in order],
        "failing_records_per_stage": stages,
        "classes_merged_into_suppressed": merged,
        "suppression_limit": limit,
        "verified": verification,
    }
    return MethodResult(out, change)


def _fix_suppressed_class(checker, codes, masks, observed, g, rep) -> int:
    """Add passing classes to the class of fully suppressed records until it passes (greedy);
    changes ``masks`` in place and returns how many classes were added."""
    targets = checker.targets
    full = masks == observed
    base_id = int(g[np.flatnonzero(full)[0]])
    sizes = np.bincount(g, minlength=len(rep)).astype(np.float64)
    others = np.flatnonzero(sizes > 0)
    others = others[others != base_id]
    width = max(checker.sens.width(), 1)
    if len(others) * width > DENSE_CELLS:  # keep the largest classes as candidates
        others = others[np.argsort(-sizes[others], kind="stable")[: DENSE_CELLS // width]]
    index = np.full(len(rep), -1, dtype=np.int64)
    index[others] = np.arange(len(others))
    cand = checker.sens.class_counts(index[g], len(others))
    base = {name: c.sum(axis=0) * 0 for name, c in cand.items()}
    for name, (s, _, _) in checker.sens.columns.items():
        c, mm = encode_column(s)
        base[name] = np.bincount(c[full], minlength=mm + 1)
    base_size = float(full.sum())
    alive = np.ones(len(others), dtype=bool)
    added = 0
    while True:
        excess = checker.sens.merged_excess(base, cand, base_size + sizes[others])
        none = {name: np.zeros((1, v.shape[1]), dtype=v.dtype) for name, v in cand.items()}
        here = checker.sens.merged_excess(base, none, np.array([base_size]))
        if here[0] <= 1e-12:
            return added
        excess = np.where(alive, excess, np.inf)
        if not np.isfinite(excess).any():
            raise SafemicroError(
                f"{_targets_text(targets)} cannot be met: even every class suppressed together fails it"
            )
        passing = alive & (excess <= 1e-12)
        if passing.any():  # the smallest class that makes it pass
            best = int(np.flatnonzero(passing)[np.argmin(sizes[others][passing])])
        else:  # else the largest step towards the targets per record added
            best = int(np.argmax(np.where(alive, (here[0] - excess) / sizes[others], -np.inf)))
        alive[best] = False
        added += 1
        hit = g == others[best]
        masks[hit] = observed[hit]
        for name in base:
            base[name] = base[name] + cand[name][best]
        base_size += sizes[others[best]]


def _targets_text(t: ClassTargets) -> str:
    names = {
        "t_closeness": "t-closeness ≤ {}",
        "l_diversity": "l-diversity ≥ {}",
        "delta_disclosure": "δ-disclosure ≤ {}",
        "beta_likeness": "β-likeness ≤ {}",
        "max_sensitive_share": "(α,k)-anonymity α ≤ {}",
        "k": "{} records per class",
        "k_map": "k-map ≥ {}",
    }
    return ", ".join(names[name].format(v) for name, v in t.given().items())


def _check(ds, keys, sensitive, targets, population, max_suppression) -> None:
    if not keys:
        raise SafemicroError("target_suppression needs at least one key variable", file=ds.source)
    for name in [*keys, *sensitive]:
        if name not in ds.columns:
            raise SafemicroError(f"there is no column {name!r}", file=ds.source, column=name)
    if set(keys) & set(sensitive):
        raise SafemicroError(
            "a sensitive variable is also a key", file=ds.source, column=sorted(set(keys) & set(sensitive))[0]
        )
    if targets.attribute and not sensitive:
        raise SafemicroError("attribute-disclosure targets need sensitive variables", file=ds.source)
    if not targets.given():
        raise SafemicroError("target_suppression needs at least one target", file=ds.source)
    if targets.k_map is not None and population is None:
        raise SafemicroError("a k-map target needs the population (the plan's population: file)", file=ds.source)
    if population is not None:
        absent = [name for name in keys if name not in population.columns]
        if absent:
            raise SafemicroError(
                f"the population lacks the key variables {absent}", file=population.source, column=absent[0]
            )
    if not 0.0 <= max_suppression <= 1.0:
        raise SafemicroError(f"max_suppression must lie in [0, 1], got {max_suppression}", file=ds.source)


def verify_targets(
    ds: Dataset,
    keys: list[str],
    sensitive: list[str],
    targets: ClassTargets,
    distance: dict[str, str] | None,
    hierarchies: dict[str, Any] | None,
    population: Dataset | None,
) -> dict[str, Any]:
    """Each target measured on ``ds`` by the risk measures themselves; raises if one fails."""
    from safemicro.risk.attribute import attribute_disclosure
    from safemicro.risk.ldiversity import ldiversity
    from safemicro.risk.population import population_risk

    out: dict[str, Any] = {}
    frame = ds.analysis_frame([*keys, *sensitive])
    failed = []
    if targets.attribute or targets.k is not None:
        if sensitive:
            attr = attribute_disclosure(
                frame, keys, sensitive, distance=distance, hierarchies=hierarchies, targets=targets.given()
            )
            for name, v in attr.variables.items():
                out[name] = {key: v[key] for key in ("t_closeness", "delta_disclosure", "beta_likeness", "alpha", "k")}
                for target, above in (
                    ("t_closeness", "n_records_above_t"),
                    ("delta_disclosure", "n_records_above_delta"),
                    ("beta_likeness", "n_records_above_beta"),
                    ("max_sensitive_share", "n_records_above_alpha"),
                ):
                    if v.get(above):
                        failed.append(f"{target} of {name}: {v[above]} records above")
        if targets.l_diversity is not None:
            per = ldiversity(frame, keys, sensitive).per_record
            for name in sensitive:
                low = int(per.get_column(f"ldiv_{name}_distinct").min())
                out.setdefault(name, {})["l_diversity"] = low
                if low < targets.l_diversity:
                    failed.append(f"l-diversity of {name}: {low}")
        if targets.k is not None:
            smallest = int(frame.select(pl.len().over(keys)).to_series().min())
            out["smallest_class"] = smallest
            if smallest < targets.k:
                failed.append(f"smallest class {smallest}")
    if targets.k_map is not None and population is not None:
        summary, _ = population_risk(frame.select(keys), population.analysis_frame(keys), keys, k=targets.k_map)
        out["k_map"] = summary["k_map"]
        if summary["n_records_below_k"] or summary["n_records_not_in_population"]:
            failed.append(f"k-map: {summary['n_records_below_k']} records below {targets.k_map}")
    if failed:
        raise SafemicroError("the suppressed file still fails its targets: " + "; ".join(failed), file=ds.source)
    return out


# -- plan step ---------------------------------------------------------------------------


class TargetSuppressionParams(TargetFields):
    """Suppress key values until every class meets the attribute-disclosure targets (t-closeness, l-diversity, δ-disclosure, β-likeness, (α,k)) and k-map; targets default to the plan's."""

    keys: list[str] | None = Field(None, description="key variables (default: roles.keys)")
    k: int | None = Field(None, ge=1, description="records per class (exact classes), the k of (α,k)-anonymity")
    importance: list[str] | dict[str, float] | None = Field(
        None, description="keys most important (suppressed last) first, or {key: cost weight}"
    )
    max_suppression: float = Field(0.05, ge=0.0, le=1.0, description="most records that may lose key values")
    household_mode: bool = Field(True, description="suppress roles.household_level keys per household")
    k_anonymity: int | None = Field(None, ge=1, description="keep sdcMicro's fk at least this (default: targets.k)")

    def key_list(self, ctx: StepContext) -> list[str]:
        return list(self.keys) if self.keys is not None else list(ctx.roles.keys)

    def household(self, ctx: StepContext) -> tuple[str | None, list[str]]:
        if not self.household_mode or ctx.roles.household is None:
            return None, []
        return ctx.roles.household, [v for v in ctx.roles.household_level if v in self.key_list(ctx)]

    def reads(self, ctx: StepContext) -> list[str]:
        extra = [self.household(ctx)[0]] if self.household(ctx)[0] else []
        return list(dict.fromkeys(self.key_list(ctx) + self.target_reads(ctx) + extra))

    def check(self, ctx: StepContext) -> None:
        if not self.key_list(ctx):
            raise ValueError("no key variables: give keys or set roles.keys")
        self.check_targets(ctx)
        if not self.class_targets(ctx, self.k).given():
            raise ValueError("no target: set one in the step or the plan's targets (t_closeness, ...)")
        for name in self.importance or []:
            if name not in self.key_list(ctx):
                raise ValueError(f"importance names {name!r}, which is not one of the keys")


def _describe(params: TargetSuppressionParams, change: Change) -> str:
    targets = ClassTargets(**{k: v for k, v in change.params.items() if k in ClassTargets.__dataclass_fields__})
    cells = change.details["cells_suppressed"]
    if not cells:
        return f"No key values needed suppressing: every key group already met {_targets_text(targets)}."
    return (
        f"Values of the key variables were suppressed (set to missing) in {cells} cells of "
        f"{change.details['records_with_suppression']} records ({change.details['records_fully_suppressed']} "
        f"with every key suppressed) so that every key group meets {_targets_text(targets)}."
    )


@register("target_suppression", TargetSuppressionParams, _describe)
def _step(ds: Dataset, params: TargetSuppressionParams, ctx: StepContext) -> MethodResult:
    targets = params.class_targets(ctx, params.k)
    household, level = params.household(ctx)
    return target_suppression(
        ds,
        keys=params.key_list(ctx),
        **targets.given(),
        **params.settings(ds, ctx),
        importance=params.importance,
        household=household,
        household_level=level,
        k_anonymity=params.k_anonymity if params.k_anonymity is not None else ctx.targets.k,
        alpha=ctx.alpha,
        max_suppression=params.max_suppression,
    )
