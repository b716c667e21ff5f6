"""Which equivalence classes fail the attribute-disclosure and k-map targets.

Shared by :mod:`safemicro.methods.search_targets` (the lattice search) and
:mod:`safemicro.methods.suppression_targets` (local suppression). A class is the set of
records with identical key values, a missing value equal to a missing value — the groups of
:func:`safemicro.risk.attribute.attribute_disclosure` and :func:`safemicro.risk.ldiversity.ldiversity`,
whose definitions these tests reuse (:func:`safemicro.risk.attribute._measures`), so a class
passes here exactly when the independent measure says so. A class fails when, for some
sensitive variable, its t-closeness distance exceeds ``t_closeness``, its δ-disclosure
exceeds ``delta_disclosure``, its basic β-likeness exceeds ``beta_likeness``, its largest
share of one value exceeds ``max_sensitive_share`` (α of (α,k)-anonymity), or it has fewer
than ``l_diversity`` distinct values (a missing sensitive value counts as a value of its
own, as sdcMicro's and :func:`ldiversity`'s distinct l-diversity); or it has fewer than
``k`` records; or (k-map, with a population) its key matches fewer than ``k_map`` people.

:func:`merged_excess` scores, for many candidate classes at once, how far the union of one
class with each candidate is from meeting the targets (on dense blocks of value counts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import encode_column
from safemicro.methods.base import StepContext, StepParams
from safemicro.risk.attribute import DISTANCES, _measures, _tree, _tree_emd

__all__ = ["ClassTargets", "SensitiveClasses", "TargetFields", "attribute_settings"]

_EPS = 1e-12


@dataclass(frozen=True)
class ClassTargets:
    """The targets every equivalence class must meet (None: not aimed at)."""

    t_closeness: float | None = None
    l_diversity: int | None = None
    delta_disclosure: float | None = None
    beta_likeness: float | None = None
    max_sensitive_share: float | None = None
    k: int | None = None  # records per class (exact classes; the k of (α,k)-anonymity)
    k_map: int | None = None  # population people per released key

    @property
    def attribute(self) -> bool:
        """Some target needs the sensitive variables."""
        return any(
            v is not None
            for v in (
                self.t_closeness,
                self.l_diversity,
                self.delta_disclosure,
                self.beta_likeness,
                self.max_sensitive_share,
            )
        )

    @property
    def monotone(self) -> bool:
        """Whether merging two passing classes always passes (see search_targets): every
        target but δ-disclosure, whose lower side ``ln(q/p) < −δ`` a merge can break."""
        return self.delta_disclosure is None

    def given(self) -> dict[str, Any]:
        return {name: v for name, v in asdict(self).items() if v is not None}


def attribute_settings(dataset: Dataset, sensitive: list[str], attribute: Any) -> dict[str, dict[str, Any]]:
    """The EMD of each sensitive variable (the plan's, else ordered for ordinal and scale
    variables and unlabelled numbers, equal for nominal ones) and its parsed hierarchy."""
    from safemicro.methods.recode_hierarchy import read_hierarchy

    given = attribute.distance if attribute else {}
    distance, hierarchies = {}, {}
    for name in sensitive:
        meta = dataset.codebook.meta(name)
        ordered = meta.measure in ("ordinal", "scale") or (
            meta.measure == "unknown" and dataset.frame.schema[name].is_numeric() and not meta.value_labels
        )
        distance[name] = given.get(name) or ("ordered" if ordered else "equal")
        if distance[name] == "hierarchical":
            if not attribute or name not in attribute.hierarchy:
                raise SafemicroError(
                    "attribute_disclosure.distance is hierarchical but no hierarchy is given", column=name
                )
            hierarchies[name] = read_hierarchy(attribute.hierarchy[name], variable=name)
    return {"distance": distance, "hierarchies": hierarchies}


class SensitiveClasses:
    """The sensitive variables with their distances, tested class by class."""

    def __init__(
        self,
        frame: pl.DataFrame,
        targets: ClassTargets,
        distance: dict[str, str] | None = None,
        hierarchies: dict[str, Any] | None = None,
    ):
        self.targets = targets
        self.columns: dict[str, tuple[pl.Series, str, Any]] = {}
        self.dense: dict[str, tuple[np.ndarray, int, np.ndarray, Any]] = {}
        distance, hierarchies = dict(distance or {}), dict(hierarchies or {})
        for name in frame.columns:
            s = frame.get_column(name)
            kind = distance.get(name) or ("ordered" if s.dtype.is_numeric() else "equal")
            if kind not in DISTANCES:
                raise SafemicroError(f"distance must be one of {', '.join(DISTANCES)}, got {kind!r}", column=name)
            if kind == "hierarchical" and name not in hierarchies:
                raise SafemicroError("the hierarchical distance needs a hierarchy", column=name)
            self.columns[name] = (s, kind, hierarchies.get(name))

    def failing(self, g: np.ndarray, n_groups: int) -> np.ndarray:
        """Per class (``g`` the class of every record): does it fail a target?"""
        t = self.targets
        fail = np.zeros(n_groups, dtype=bool)
        if t.k is not None:
            fail |= np.bincount(g, minlength=n_groups) < t.k
        for name, (s, kind, hierarchy) in self.columns.items():
            try:
                per, _, _ = _measures(g, n_groups, s, kind, hierarchy, name, None)
            except ValueError as exc:
                raise SafemicroError(str(exc), column=name) from None
            with np.errstate(invalid="ignore"):
                for target, measure in (
                    (t.t_closeness, "t"),
                    (t.delta_disclosure, "delta"),
                    (t.beta_likeness, "beta"),
                    (t.max_sensitive_share, "alpha"),
                ):
                    if target is not None:
                        fail |= per[measure] > target + _EPS  # NaN (no sensitive value) passes
            if t.l_diversity is not None:
                fail |= self._distinct(g, n_groups, s) < t.l_diversity
        return fail

    @staticmethod
    def _distinct(g: np.ndarray, n_groups: int, s: pl.Series) -> np.ndarray:
        codes, m = encode_column(s)
        ok = codes > 0
        pairs = np.unique(g[ok].astype(np.int64) * (m + 1) + codes[ok])
        return np.bincount(pairs // (m + 1), minlength=n_groups) + np.bincount(g[~ok], minlength=n_groups)

    # -- merging one class with candidates -------------------------------------------------

    def width(self) -> int:
        """Cells per class of :meth:`class_counts` (all variables)."""
        return sum(encode_column(s)[1] + 1 for s, _, _ in self.columns.values())

    def class_counts(self, g: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
        """Per variable, a (classes x (values + 1)) matrix of counts; column 0 = missing.
        Records with ``g < 0`` are left out."""
        out = {}
        keep = g >= 0
        for name, (s, _, _) in self.columns.items():
            codes, m = encode_column(s)
            cells = g[keep] * (m + 1) + codes[keep]
            out[name] = np.bincount(cells, minlength=n_groups * (m + 1)).reshape(n_groups, m + 1)
        return out

    def merged_excess(self, base: dict[str, np.ndarray], cand: dict[str, np.ndarray], sizes: np.ndarray) -> np.ndarray:
        """For each candidate class, how far ``base`` ∪ candidate is from every target:
        the largest relative excess over the targets (≤ 0: it meets them all).

        ``base``: per variable the (values + 1) counts of one class; ``cand``: the candidates'
        count matrices; ``sizes``: records of base + candidate (for k)."""
        t = self.targets
        excess = np.full(len(sizes), -np.inf)
        if t.k is not None:
            excess = np.maximum(excess, (t.k - sizes) / t.k)
        for name, (s, kind, hierarchy) in self.columns.items():
            counts = cand[name] + base[name][None, :]
            n_ok = counts[:, 1:].sum(axis=1, keepdims=True).astype(np.float64)
            q = counts[:, 1:] / np.maximum(n_ok, 1)
            codes, m = encode_column(s)
            ok = codes > 0
            p = np.bincount(codes[ok] - 1, minlength=m) / max(int(ok.sum()), 1)
            seen = n_ok[:, 0] > 0
            present = q > 0

            scored: list[tuple[np.ndarray, float]] = []
            if t.t_closeness is not None:
                diff = q - p
                if kind == "equal":
                    dist = 0.5 * np.abs(diff).sum(axis=1)
                elif kind == "ordered":
                    dist = np.abs(np.cumsum(diff, axis=1)).sum(axis=1) / max(m - 1, 1)
                else:
                    rows = np.flatnonzero(ok)
                    rep = np.zeros(m, dtype=np.int64)
                    rep[codes[rows] - 1] = rows
                    dist = _tree_emd(diff, _tree(s.gather(rep), hierarchy or {}, name))
                scored.append((dist, t.t_closeness))
            with np.errstate(divide="ignore"):
                if t.delta_disclosure is not None:
                    ratio = np.abs(np.log(np.where(present, q, 1.0) / p))
                    scored.append((np.where(present, ratio, 0.0).max(axis=1), t.delta_disclosure))
                if t.beta_likeness is not None:
                    scored.append((np.where(present, (q - p) / p, -1.0).max(axis=1), t.beta_likeness))
            if t.max_sensitive_share is not None:
                scored.append((q.max(axis=1), t.max_sensitive_share))
            for value, target in scored:
                excess = np.maximum(excess, np.where(seen, (value - target) / max(target, 1e-9), -np.inf))
            if t.l_diversity is not None:
                distinct = present.sum(axis=1) + counts[:, 0]
                excess = np.maximum(excess, (t.l_diversity - distinct) / t.l_diversity)
        return excess


class TargetFields(StepParams):
    """The attribute-disclosure and k-map targets of a step (default: the plan's targets)."""

    sensitive: list[str] | None = Field(None, description="sensitive variables (default: roles.sensitive)")
    t_closeness: float | None = Field(None, ge=0.0, le=1.0, description="default: targets.t_closeness")
    l_diversity: int | None = Field(None, ge=1, description="distinct sensitive values per class")
    delta_disclosure: float | None = Field(None, ge=0.0, description="default: targets.delta_disclosure")
    beta_likeness: float | None = Field(None, ge=0.0, description="basic; default: targets.beta_likeness")
    max_sensitive_share: float | None = Field(
        None, ge=0.0, le=1.0, description="(α,k)'s α; default: targets.max_sensitive_share"
    )
    k_map: int | None = Field(None, ge=1, description="population people per released key (the plan's population:)")

    def sensitive_list(self, ctx: StepContext) -> list[str]:
        return list(self.sensitive) if self.sensitive is not None else list(ctx.roles.sensitive)

    def class_targets(self, ctx: StepContext, k: int | None = None) -> ClassTargets:
        # the plan's attribute targets apply when there are sensitive variables to aim with
        plan = ctx.targets if self.sensitive_list(ctx) else None
        own = lambda name: getattr(self, name) if getattr(self, name) is not None else getattr(plan, name, None)  # noqa: E731
        return ClassTargets(
            t_closeness=own("t_closeness"),
            l_diversity=self.l_diversity,
            delta_disclosure=own("delta_disclosure"),
            beta_likeness=own("beta_likeness"),
            max_sensitive_share=own("max_sensitive_share"),
            k=k,
            k_map=self.k_map,
        )

    def target_reads(self, ctx: StepContext) -> list[str]:
        """The sensitive variables, when a target needs them."""
        return self.sensitive_list(ctx) if self.class_targets(ctx).attribute else []

    def check_targets(self, ctx: StepContext) -> None:
        targets = self.class_targets(ctx)
        if targets.attribute and not self.sensitive_list(ctx):
            raise ValueError(
                "attribute-disclosure targets need sensitive variables: give sensitive or set roles.sensitive"
            )
        if self.k_map is not None and ctx.population is None:
            raise ValueError("a k_map target needs the plan's population: file")

    def settings(self, ds: Dataset, ctx: StepContext) -> dict[str, Any]:
        """Keyword arguments for the sensitive variables, distances and population."""
        sensitive = self.sensitive_list(ctx)
        targets = self.class_targets(ctx)
        out: dict[str, Any] = {"sensitive": sensitive if targets.attribute else []}
        if targets.attribute:
            out.update(attribute_settings(ds, sensitive, ctx.attribute))
        out["population"] = ctx.population() if self.k_map is not None and ctx.population else None
        return out
