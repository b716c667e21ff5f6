"""Attribute-disclosure and k-map targets for :func:`~safemicro.methods.search.recode_search`.

Beside k-anonymity, a lattice node (one generalisation level per key) can be required to
make every equivalence class meet t-closeness, l-diversity, δ-disclosure, β-likeness and
(α,k)-anonymity for the sensitive variables (:mod:`safemicro.methods.target_classes`), and
every released key to match at least ``k_map`` people of the population. A class failing
one of them counts its records as records to suppress, like a class below k; a node is
acceptable when at most ``max_suppression`` of the file is left to suppress.

Which targets are **monotone** under generalisation — merging classes never makes them fail:

* k, (α,k)'s α, t-closeness (equal, ordered and hierarchical EMD), basic and enhanced
  β-likeness: each is a convex function of the class distribution q (a max of linear
  functions, or an earth mover's distance, a transport cost convex in q), and a merged
  class's q is a weighted mean of its parts' — so the merge is never worse than its worse
  part, and passing classes only merge into passing ones (Li et al. 2007 prove it for
  t-closeness);
* distinct l-diversity: a merged class has at least the values of each part;
* k-map: the population is generalised with the same levels, so population frequencies
  only grow.

**δ-disclosure is not monotone**: merging two passing classes can make a value rare in the
union (``ln(q/p) < −δ``).

**With a suppression limit even the monotone attribute targets stop being monotone as a
node property**, as ARX notes for l-diversity and t-closeness: a passing class merged with
a failing one can fail, so a generalisation can leave *more* records to suppress. Flash's
cone tagging is therefore used only when it is sound — with k-like targets alone (k, k-map:
the records failing them only shrink) or with monotone attribute targets and no suppression
allowed. Otherwise every node is visited (least loss first) and only sound tags skip nodes:
an acceptable node where no class fails an attribute target makes all its generalisations
acceptable (monotone targets), and a node where the k-like targets alone exceed the limit
makes all its specialisations unacceptable. The chosen node is then the same as an
exhaustive search's (tested).

k-map counts the population on codes shared with the data: each key's values in the data
and in the population are recoded to every level together, so a population value the data
lacks still falls into its class; a missing key value in the data matches every population
value (as :mod:`safemicro.risk.population`), a missing value in the population is its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import combine_codes, encode_column
from safemicro.methods.base import MethodResult
from safemicro.methods.recode import global_recode
from safemicro.methods.target_classes import ClassTargets, SensitiveClasses

__all__ = ["SearchTargets", "recode_levels"]


class SearchTargets:
    """The targets a lattice node must meet beside k, tested on the search's key table."""

    def __init__(
        self,
        ds: Dataset,
        targets: ClassTargets,
        *,
        sensitive: list[str] | tuple[str, ...] = (),
        distance: dict[str, str] | None = None,
        hierarchies: dict[str, Any] | None = None,
        population: Dataset | None = None,
    ):
        if targets.attribute and not sensitive:
            raise SafemicroError("attribute-disclosure targets need sensitive variables", file=ds.source)
        if targets.k_map is not None and population is None:
            raise SafemicroError("a k-map target needs the population (the plan's population: file)", file=ds.source)
        self.targets, self.sensitive = targets, list(sensitive)
        self.distance, self.hierarchies, self.population = distance, hierarchies, population
        frame = ds.analysis_frame(self.sensitive) if self.sensitive else pl.DataFrame()
        # the exact class size k is tested on the key table (k-like), not with the sensitive values
        attribute_only = replace(targets, k=None)
        self.sens = SensitiveClasses(frame, attribute_only, distance, hierarchies) if targets.attribute else None
        self._pop: tuple | None = None
        self.counts: dict[int, tuple[int, int]] = {}  # node -> records failing k-like / attribute targets

    @property
    def monotone(self) -> bool:
        return self.targets.monotone

    def prunable(self, limit: int) -> bool:
        """Whether Flash's cone tagging is sound: acceptability (at most ``limit`` records in
        failing classes) monotone in the lattice — with only k-like targets (k, k-map), or
        with monotone attribute targets and no suppression allowed."""
        return not self.targets.attribute or (limit == 0 and self.monotone)

    def tag(self, search: Any, node: int) -> None:
        """Evaluate ``node`` and tag what follows soundly: its generalisations acceptable when
        no class fails an attribute target (monotone ones only); its specialisations not
        acceptable when the k-like targets alone leave more than the limit to suppress."""
        lat = search.lattice
        acceptable = search.evaluate(node)[0]
        lat.status[node] = int(acceptable)
        k_like, attribute = self.counts[node]
        if acceptable and attribute == 0 and self.monotone:
            lat.tag(node, True)
        elif k_like > search.limit:
            lat.tag(node, False)

    def describe(self) -> dict[str, Any]:
        return {**self.targets.given(), "sensitive": self.sensitive, "monotone": self.monotone}

    # -- one node --------------------------------------------------------------------------

    def failing(
        self, search: Any, node: int, gid: np.ndarray, n_groups: int, bad: np.ndarray, count: np.ndarray
    ) -> np.ndarray:
        """Per generalised class of the node (``gid`` per key-table row, ``bad`` failing k,
        ``count`` records): does it fail a target? Records failing the k-like targets and
        the attribute targets are kept per node for :meth:`tag`."""
        k_like, attribute = bad.copy(), np.zeros(n_groups, dtype=bool)
        if self.targets.k_map is not None:
            F = np.zeros(n_groups, dtype=np.int64)
            F[gid] = self._kmap(search, search._full_levels(node))
            k_like |= F < self.targets.k_map
        if self.targets.k is not None:
            k_like |= count < self.targets.k
        if self.sens is not None:
            attribute = self.sens.failing(gid[search.kt.record_key], n_groups)
        self.counts[node] = (int(round(count[k_like].sum())), int(round(count[attribute].sum())))
        return k_like | attribute

    def _prepare_population(self, search: Any) -> tuple:
        """Per key and level: key-table code -> shared class code, the population's distinct
        rows in shared codes, their counts, and the cards."""
        keys, kt, n = search.keys, search.kt, search.n
        pop = self.population
        missing = [k for k in keys if k not in pop.columns]
        if missing:
            raise SafemicroError(
                f"the population lacks the key variables {missing}", file=pop.source, column=missing[0]
            )
        columns = []
        for name in keys:
            dtype = search.ds.frame.schema[name]
            try:
                columns.append(pl.concat([search.ds.frame.get_column(name), pop.frame.get_column(name).cast(dtype)]))
            except (pl.exceptions.PolarsError, TypeError) as exc:
                raise SafemicroError(
                    f"the population's values do not fit the data's type: {exc}", column=name
                ) from None
        stacked = search.ds.with_frame(pl.DataFrame(columns))
        luts, pcodes, cards = [], [], []
        record_codes = kt.codes[kt.record_key]
        for j, name in enumerate(keys):
            key = search.all_keys[j]
            lut_j, p_j, c_j = [], [], []
            for level in range(key.height + 1):
                col = stacked if level == 0 else global_recode(stacked, variable=name, **key.levels[level - 1]).dataset
                u, card = encode_column(col.analysis_column(name))
                lut = np.zeros(len(kt.labels[j]) + 1, dtype=np.int64)
                lut[record_codes[:, j]] = u[:n]
                lut_j.append(lut)
                p_j.append(u[n:])
                c_j.append(card)
            luts.append(lut_j)
            pcodes.append(p_j)
            cards.append(c_j)
        return luts, pcodes, cards, pop.n

    def _kmap(self, search: Any, lv: list[int]) -> np.ndarray:
        """Population frequency of every key-table row's generalised key at levels ``lv``."""
        if self._pop is None:
            self._pop = self._prepare_population(search)
        luts, pcodes, cards, total = self._pop
        m = len(lv)
        s_cols = [luts[j][lv[j]][search.kt.codes[:, j]] for j in range(m)]
        p_cols = [pcodes[j][lv[j]] for j in range(m)]
        card = [cards[j][lv[j]] for j in range(m)]
        bits = np.int64(1) << np.arange(m, dtype=np.int64)
        pattern = (np.column_stack(s_cols) == 0) @ bits
        F = np.zeros(len(pattern), dtype=np.int64)
        n_pop = len(p_cols[0]) if m else 0
        for pat in np.unique(pattern):
            rows = np.flatnonzero(pattern == pat)
            on = [j for j in range(m) if not (int(pat) >> j) & 1]
            if not on:
                F[rows] = total
                continue
            both, _ = combine_codes([np.concatenate([p_cols[j], s_cols[j][rows]]) for j in on], [card[j] for j in on])
            distinct, counts = np.unique(both[:n_pop], return_counts=True)
            if not len(distinct):
                continue
            pos = np.minimum(np.searchsorted(distinct, both[n_pop:]), len(distinct) - 1)
            F[rows] = np.where(distinct[pos] == both[n_pop:], counts[pos], 0)
        return F

    # -- after the search --------------------------------------------------------------------

    def suppress(
        self, ds: Dataset, keys: list[str], levels: dict[str, int], levels_spec: dict, **kwargs: Any
    ) -> MethodResult:
        """Target suppression of the classes still failing at the chosen levels (the
        population recoded to the same levels)."""
        from safemicro.methods.suppression_targets import target_suppression

        population = self.population
        if population is not None:
            population = recode_levels(population, levels_spec, levels)
        return target_suppression(
            ds,
            keys=keys,
            sensitive=self.sensitive if self.targets.attribute else [],
            **self.targets.given(),
            population=population,
            distance=self.distance,
            hierarchies=self.hierarchies,
            **kwargs,
        )


def recode_levels(ds: Dataset, levels_spec: dict[str, list[dict[str, Any]]], levels: dict[str, int]) -> Dataset:
    """``ds`` with each key recoded to its chosen level (keys ``ds`` lacks are skipped): the
    population in the coding recode_search chose for the data."""
    for name, level in levels.items():
        if level and name in ds.columns:
            ds = global_recode(ds, variable=name, **levels_spec[name][level - 1]).dataset
    return ds


# -- the plan step's side (recode_search's parameters are TargetFields) ------------------------


def step_targets(params: Any, ds: Dataset, ctx: Any) -> SearchTargets | None:
    """The step's attribute-disclosure and k-map targets (the plan's by default), or None."""
    targets = params.class_targets(ctx)
    if not targets.given():
        return None
    return SearchTargets(ds, targets, **params.settings(ds, ctx))


def describe_targets(change: Any) -> str:
    """The release report's sentence on the targets beside k, if any."""
    aimed = change.details.get("targets")
    if not aimed:
        return ""
    sup = change.details["target_suppression"]
    names = ", ".join(f"{name} {v}" for name, v in aimed.items() if name not in ("sensitive", "monotone"))
    text = f" The levels were chosen to meet {names} too"
    cells = sup["details"]["cells_suppressed"]
    if cells:
        text += (
            f"; {cells} key values in {sup['details']['records_with_suppression']} records were set to missing for them"
        )
    return text + "."
