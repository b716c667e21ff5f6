"""Search for the least-loss generalisation levels of the keys that meet a k-anonymity target.

Each key gets a hierarchy: a list of levels, level 0 being the original values and each
further level a global recode of the original values (cut points, a number of bands, a
category map, or an ARX-style hierarchy table). The product of the levels is a lattice;
a node (one level per key) is *anonymous* when, after recoding, the records in keys with
fewer than ``k`` records (or individual risk above ``max_risk``) make up at most
``max_suppression`` of the file - ARX's suppression limit: those records are left to
local suppression.

Anonymity is monotone in the lattice (coarser levels merge classes, so frequencies only
grow): if a node is anonymous so are all its generalisations, and if it is not, none of
its specialisations is. The search follows Flash (Kohlmayer et al., 2012): it walks
paths upwards from the lowest untagged nodes and binary-searches each path, tagging
whole cones of the lattice with every evaluation. A node is evaluated on the key table,
not on the records: each key's original codes are mapped to class codes by a lookup array
and the distinct keys are recounted with ``bincount``.

Information loss (lower is better) measures the recoding only, so it never decreases with
generalisation and the optimum is always a *minimal* anonymous node:

* ``entropy`` - non-uniform entropy: Σ over records and keys of log2(class size / value
  count), the bits of information lost by generalising;
* ``precision`` - mean over keys with hierarchies of level / height (Sweeney's Prec);
* ``discernibility`` - Σ over generalised key classes of |class|².

Ties are broken by fewer records to suppress, then lower levels.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import build_key_table, combine_codes, dense_ids, wildcard_frequencies
from safemicro.methods.base import Change, MethodResult, StepContext, register
from safemicro.methods.recode import global_recode
from safemicro.methods.search_space import SearchResult, _Key, _Lattice, _prepare_key, hierarchy_levels
from safemicro.methods.search_targets import describe_targets, step_targets
from safemicro.methods.target_classes import TargetFields
from safemicro.risk.individual import individual_risk

__all__ = ["recode_search", "search_levels", "SearchResult"]

Loss = Literal["entropy", "precision", "discernibility"]
MAX_NODES = 1_000_000


# -- the search ------------------------------------------------------------------------------


def search_levels(
    ds: Dataset,
    *,
    keys: list[str],
    hierarchies: dict[str, Any],
    k: int = 3,
    max_risk: float | None = None,
    max_suppression: float = 0.05,
    weight: str | None = None,
    alpha: float = 1.0,
    loss: Loss = "entropy",
    exhaustive: bool = False,
    targets: Any = None,
) -> SearchResult:
    """Find the least-loss levels meeting the target; see the module docstring.

    ``exhaustive=True`` evaluates every node (no pruning), for checking the search;
    ``targets`` (:class:`~safemicro.methods.search_targets.SearchTargets`) not monotone under a
    suppression limit visit every node, skipping only those their tags decide.
    """
    t0 = time.perf_counter()
    plan = _Search(ds, keys, hierarchies, k, max_risk, max_suppression, weight, alpha, loss)
    plan.targets = targets
    result = plan.run(exhaustive=exhaustive, sweep=targets is not None and not targets.prunable(plan.limit))
    result.seconds = time.perf_counter() - t0
    return result


class _Search:
    def __init__(self, ds, keys, hierarchies, k, max_risk, max_suppression, weight, alpha, loss):
        keys = list(keys)
        if not isinstance(hierarchies, dict):
            raise SafemicroError("hierarchies must map each key to its list of levels")
        if not keys:
            raise SafemicroError("recode_search needs at least one key variable")
        if len(set(keys)) != len(keys):
            raise SafemicroError("a key is listed twice")
        for name in [*keys, *hierarchies, *([weight] if weight else [])]:
            if name not in ds.columns:
                raise SafemicroError(f"there is no column {name!r}", column=name)
        for name in hierarchies:
            if name not in keys:
                raise SafemicroError(f"{name!r} has a hierarchy but is not a key", column=name)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise SafemicroError(f"k must be a whole number of at least 1, got {k!r}")
        if not 0.0 <= max_suppression < 1.0:
            raise SafemicroError(f"max_suppression must lie in [0, 1), got {max_suppression}")
        if max_risk is not None and not 0.0 < max_risk <= 1.0:
            raise SafemicroError(f"max_risk must lie in (0, 1], got {max_risk}")
        if not 0.0 <= alpha <= 1.0:
            raise SafemicroError(f"alpha must lie in [0, 1], got {alpha}")
        if loss not in ("entropy", "precision", "discernibility"):
            raise SafemicroError(f"loss must be entropy, precision or discernibility, got {loss!r}")
        w = None
        if weight:
            wcol = ds.frame.get_column(weight)
            if not wcol.dtype.is_numeric():
                raise SafemicroError(f"the weight {weight!r} must be numeric", column=weight)
            w = wcol.cast(pl.Float64).to_numpy()
            bad = np.flatnonzero(~np.isfinite(w) | (w <= 0))
            if len(bad):
                raise SafemicroError("weights must be positive numbers", column=weight, row=int(bad[0]) + 1)
        self.ds, self.keys, self.k, self.max_risk = ds, keys, int(k), max_risk
        self.alpha, self.loss, self.weighted = alpha, loss, w is not None
        self.kt = build_key_table(ds.analysis_frame(keys), keys, w, alpha=alpha)
        self.n = self.kt.n_records
        self.columns = [np.ascontiguousarray(self.kt.codes[:, j]) for j in range(len(keys))]
        self.limit = int(math.floor(max_suppression * self.n + 1e-9))
        self.all_keys: list[_Key] = []
        for j, name in enumerate(keys):
            levels = hierarchy_levels(hierarchies[name], name) if name in hierarchies else []
            card = len(self.kt.labels[j])
            value_count = np.bincount(self.kt.codes[:, j], weights=self.kt.count, minlength=card + 1)
            self.all_keys.append(_prepare_key(ds, name, levels, value_count))
        self.dims = [j for j, key in enumerate(self.all_keys) if key.height > 0]
        self.lattice = _Lattice([self.all_keys[j].height for j in self.dims], MAX_NODES)
        self.evaluations: dict[int, tuple[bool, int, float]] = {}
        self.targets: Any = None  # attribute-disclosure / k-map targets (search_targets)

    # node -> levels of every key
    def _full_levels(self, node: int) -> list[int]:
        lv = [0] * len(self.keys)
        for d, j in enumerate(self.dims):
            lv[j] = int(self.lattice.levels[node, d])
        return lv

    def evaluate(self, node: int) -> tuple[bool, int, float]:
        """(anonymous, records to suppress, discernibility) of a node, from the key table."""
        if node in self.evaluations:
            return self.evaluations[node]
        kt = self.kt
        lv = self._full_levels(node)
        cols = [key.luts[l][codes] for codes, key, l in zip(self.columns, self.all_keys, lv)]
        cards = [key.cards[l] for key, l in zip(self.all_keys, lv)]
        combined, space = combine_codes(cols, cards)
        if space <= 8 * len(combined) + 1024:
            gid, _ = dense_ids(combined, space)
        else:  # few distinct keys in a large code space: sorting beats a dense array
            gid = np.unique(combined, return_inverse=True)[1].ravel()
        g = int(gid.max()) + 1 if len(gid) else 0
        count = np.bincount(gid, weights=kt.count, minlength=g)
        wsum = np.bincount(gid, weights=kt.weight_sum, minlength=g)
        fk, Fk = count, wsum
        if kt.has_missing:  # missing values are wildcards: recount on the generalised keys
            rep = np.zeros(g, dtype=np.int64)
            rep[gid] = np.arange(len(gid))
            fk, Fk = wildcard_frequencies(np.column_stack([c[rep] for c in cols]), count, wsum, self.alpha)
        bad = fk < self.k
        if self.max_risk is not None:
            bad |= individual_risk(fk, Fk, weighted=self.weighted) > self.max_risk
        if self.targets is not None:
            bad = self.targets.failing(self, node, gid, g, bad, count)
        suppress = int(round(count[bad].sum()))
        result = (suppress <= self.limit, suppress, float(np.sum(count**2)))
        self.evaluations[node] = result
        return result

    def loss_of(self, node: int) -> float:
        lv = self._full_levels(node)
        if self.loss == "entropy":
            return float(sum(key.entropy[l] for key, l in zip(self.all_keys, lv)))
        if self.loss == "precision":
            hs = [(l, key.height) for key, l in zip(self.all_keys, lv) if key.height]
            return float(sum(l / h for l, h in hs) / len(hs)) if hs else 0.0
        return self.evaluate(node)[2]

    def _heuristic(self) -> np.ndarray:
        """Order of candidate nodes (cheap, monotone): the loss, or precision for discernibility."""
        lat = self.lattice
        if self.loss == "entropy":
            out = np.zeros(lat.size)
            for d, j in enumerate(self.dims):
                out += np.asarray(self.all_keys[j].entropy)[lat.levels[:, d]]
            return out
        return (lat.levels / lat.heights).sum(axis=1) if self.dims else np.zeros(lat.size)

    def _check(self, node: int) -> bool:
        lat = self.lattice
        if lat.status[node] >= 0:
            return bool(lat.status[node])
        anonymous = self.evaluate(node)[0]
        lat.tag(node, anonymous)
        return anonymous

    def run(self, *, exhaustive: bool = False, sweep: bool = False) -> SearchResult:
        lat = self.lattice
        heur = self._heuristic()
        height = lat.levels.sum(axis=1)
        order = np.lexsort((np.arange(lat.size), heur, height))
        if exhaustive:
            for node in order:
                lat.status[node] = int(self.evaluate(int(node))[0])
        elif sweep:  # targets not monotone with a suppression limit: every node, tagging what is sound
            for node in order:
                if lat.status[node] < 0:
                    self.targets.tag(self, int(node))
        else:
            for start in order:
                start = int(start)
                if lat.status[start] >= 0:
                    continue
                path, cur = [start], start
                while True:  # ascend through untagged successors, cheapest first
                    nxt = [s for s in lat.successors(cur) if lat.status[s] < 0]
                    if not nxt:
                        break
                    cur = min(nxt, key=lambda s: (heur[s], s))
                    path.append(cur)
                lo, hi = 0, len(path) - 1
                while lo <= hi:  # binary search for the lowest anonymous node on the path
                    mid = (lo + hi) // 2
                    if self._check(path[mid]):
                        hi = mid - 1
                    else:
                        lo = mid + 1
        assert (lat.status >= 0).all()
        anonymous = np.flatnonzero(lat.status == 1)
        is_minimal = np.ones(len(anonymous), dtype=bool)
        for d, stride in enumerate(lat.strides):
            has = lat.levels[anonymous, d] > 0
            is_minimal &= ~has | (lat.status[anonymous - stride * has] == 0)
        minimal = [int(x) for x in anonymous[is_minimal]]
        if minimal:
            best = min(
                minimal,
                key=lambda x: (self.loss_of(x), self.evaluate(x)[1], int(height[x]), tuple(lat.levels[x])),
            )
        else:
            best = lat.size - 1  # the most general node
        _, suppress, _ = self.evaluate(best)
        names = lambda node: dict(zip(self.keys, self._full_levels(node)))  # noqa: E731
        return SearchResult(
            levels=names(best),
            heights={key.name: key.height for key in self.all_keys},
            loss=self.loss_of(best),
            loss_kind=self.loss,
            records_to_suppress=suppress,
            suppression_limit=self.limit,
            meets_target=bool(minimal),
            nodes=lat.size,
            evaluated=len(self.evaluations),
            minimal_nodes=[names(x) for x in minimal],
        )


# -- the method --------------------------------------------------------------------------


def recode_search(
    ds: Dataset,
    *,
    keys: list[str],
    hierarchies: dict[str, Any],
    k: int = 3,
    max_risk: float | None = None,
    max_suppression: float = 0.05,
    weight: str | None = None,
    alpha: float = 1.0,
    loss: Loss = "entropy",
    household: str | None = None,
    household_level: list[str] | tuple[str, ...] = (),
    importance: Any = None,
    targets: Any = None,
) -> MethodResult:
    """Generalise the keys to the least-loss levels meeting k-anonymity, then suppress the rest.

    ``hierarchies`` gives, per key, its levels 1, 2, ... (level 0 is the original): each
    a list of breaks, a number of equal-width bands, a mapping {old: new}, a dict of
    :func:`~safemicro.methods.recode.global_recode` arguments, or the whole key an ARX
    hierarchy (a CSV path or ``{"hierarchy": table}``). Levels must be nested and cover
    every observed value. The records left in keys violating the target (at most
    ``max_suppression`` of the file when the target can be met) go to
    :func:`~safemicro.methods.suppression.local_suppression` (with ``household`` and
    ``household_level`` so household-level keys are suppressed consistently, and
    ``importance`` saying which keys to keep).
    ``max_risk`` (individual risk) also counts as a violation during the search, but local
    suppression only enforces k: records over ``max_risk`` with k or more are reported.
    ``targets`` (:class:`~safemicro.methods.search_targets.SearchTargets`): attribute-disclosure
    and k-map targets the node must also meet; the classes still failing them then go to
    :func:`~safemicro.methods.suppression_targets.target_suppression`.
    """
    result = search_levels(
        ds,
        keys=keys,
        hierarchies=hierarchies,
        k=k,
        max_risk=max_risk,
        max_suppression=max_suppression,
        weight=weight,
        alpha=alpha,
        loss=loss,
        targets=targets,
    )
    levels_spec = {name: hierarchy_levels(hierarchies[name], name) for name in keys if name in hierarchies}
    current = ds
    recodes: dict[str, Any] = {}
    notes: list[str] = []
    for name in keys:
        level = result.levels[name]
        if level == 0:
            continue
        rec = global_recode(current, variable=name, **levels_spec[name][level - 1])
        current = rec.dataset
        recodes[name] = {"level": level, **rec.change.details}
        notes += rec.change.notes
    if not result.meets_target:
        notes.append(
            f"no combination of levels meets {k}-anonymity"
            + (" and the other targets" if targets else "")
            + (f" and individual risk <= {max_risk}" if max_risk is not None else "")
            + f" with at most {result.suppression_limit} records to suppress; the most general "
            f"levels were applied and local suppression removes the remaining {result.records_to_suppress}"
        )
    suppression = None
    if result.records_to_suppress:
        from safemicro.methods.suppression import local_suppression

        sup = local_suppression(
            current,
            keys=list(keys),
            k=k,
            alpha=alpha,
            weight=weight,
            household=household,
            household_level=tuple(household_level),
            importance=importance,
        )
        current = sup.dataset
        suppression = sup.change.to_dict(with_seed=False)
        notes += sup.change.notes
    aimed: dict[str, Any] = {}
    if targets is not None:  # no limit here: the search's limit held, or the note above says why not
        hh = {"household": household, "household_level": tuple(household_level), "importance": importance}
        hh.update(k_anonymity=k, alpha=alpha)
        sup = targets.suppress(current, list(keys), result.levels, levels_spec, max_suppression=1.0, **hh)
        current, aimed = sup.dataset, {"targets": targets.describe(), "target_suppression": sup.change.to_dict()}
    if max_risk is not None:
        kt = build_key_table(
            current.analysis_frame(list(keys)),
            list(keys),
            None if weight is None else current.frame.get_column(weight).cast(pl.Float64).to_numpy(),
            alpha=alpha,
        )
        risk = individual_risk(kt.fk, kt.Fk, weighted=weight is not None)[kt.record_key]
        over = int((risk > max_risk).sum())
        if over:
            notes.append(
                f"{over} records still have individual risk above {max_risk} (local suppression enforces k only)"
            )
    change = Change.measured(
        ds.frame,
        current.frame,
        list(keys),
        method="recode_search",
        params={
            "keys": list(keys),
            "hierarchies": {name: len(v) for name, v in levels_spec.items()},
            "k": int(k),
            "max_risk": max_risk,
            "max_suppression": max_suppression,
            "weight": weight,
            "alpha": alpha,
            "loss": loss,
        },
        details={"search": result.to_dict(), "recodes": recodes, "suppression": suppression, **aimed},
        notes=notes,
    )
    return MethodResult(current, change)


# -- plan step -----------------------------------------------------------------------------


class RecodeSearchParams(TargetFields):
    """``recode_search``: levels per key; k and keys default to the plan's targets and roles."""

    hierarchies: dict[str, Any] = Field(min_length=1)
    keys: list[str] | None = None
    k: int | None = Field(None, ge=1)
    max_risk: float | None = Field(None, gt=0.0, le=1.0)
    max_suppression: float = Field(0.05, ge=0.0, lt=1.0)
    loss: Loss = "entropy"
    importance: list[str] | dict[str, float] | None = None

    @model_validator(mode="after")
    def _levels(self) -> RecodeSearchParams:
        for name, spec in self.hierarchies.items():
            if not (isinstance(spec, (list, str)) and spec) and not (isinstance(spec, dict) and "hierarchy" in spec):
                raise ValueError(f"hierarchies.{name} must be a list of levels or an ARX hierarchy")
        return self

    def _keys(self, ctx: StepContext) -> list[str]:
        return list(self.keys) if self.keys is not None else list(ctx.roles.keys)

    def reads(self, ctx: StepContext) -> list[str]:
        extra = [c for c in (ctx.roles.weight, ctx.roles.household) if c]
        return list(dict.fromkeys([*self._keys(ctx), *self.hierarchies, *extra, *self.target_reads(ctx)]))

    def check(self, ctx: StepContext) -> None:
        keys = self._keys(ctx)
        if not keys:
            raise ValueError("no keys: give keys or set roles.keys")
        self.check_targets(ctx)
        for name in self.hierarchies:
            if name not in keys:
                raise ValueError(f"hierarchies names {name!r}, which is not a key")


def _describe(params: RecodeSearchParams, change: Change) -> str:
    search = change.details["search"]
    k = change.params["k"]
    recodes = change.details["recodes"]
    parts = []
    for name, rec in recodes.items():
        if rec.get("kind") == "bands":
            parts.append(f"{name} in {len(rec['bands'])} bands")
        elif rec.get("kind") == "hierarchy":
            parts.append(f"{name} at level {rec['level']} of its hierarchy")
        else:
            parts.append(f"{name} with merged categories")
    text = (
        "Key variables were generalised as little as possible for "
        f"{k}-anonymity: " + (", ".join(parts) if parts else "no recoding was needed") + "."
    )
    sup = change.details.get("suppression")
    if sup:
        cells = sum(sup["suppressed"].values())
        text += f" {cells} key values in {sup['records_touched']} records were then set to missing."
    if not search["meets_target"]:
        text += " No generalisation met the target within the suppression limit."
    return text + describe_targets(change)


@register("recode_search", RecodeSearchParams, _describe)
def _step(ds: Dataset, params: RecodeSearchParams, ctx: StepContext) -> MethodResult:
    keys = params._keys(ctx)
    return recode_search(
        ds,
        keys=keys,
        hierarchies=params.hierarchies,
        k=params.k if params.k is not None else ctx.targets.k,
        max_risk=params.max_risk,
        max_suppression=params.max_suppression,
        weight=ctx.roles.weight,
        alpha=ctx.alpha,
        loss=params.loss,
        household=ctx.roles.household,
        household_level=[v for v in ctx.roles.household_level if v in keys],
        importance=params.importance,
        targets=step_targets(params, ds, ctx),
    )
