"""Differentially private synthetic data: MST (McKenna, Miklau & Sheldon 2021).

MST measures every 1-way marginal with Gaussian noise, picks a maximum spanning tree of
2-way marginals with the exponential mechanism (score: how far each pair's counts are
from what the noisy 1-way marginals predict), measures the chosen pairs with Gaussian
noise, makes the noisy tables non-negative and consistent, and samples along the tree.
Everything the sampler uses is a noisy measurement or public information, so the output
is (ε, δ)-DP for neighbouring datasets that differ by adding or removing one record.

Privacy is accounted in zero-concentrated DP (zCDP, Bun & Steinke 2016), where costs add
up: a Gaussian count vector with L2 sensitivity 1 and noise σ costs ρ = 1/(2σ²); the
exponential mechanism with sensitivity Δ run as Gumbel noise of scale β (report noisy
max) costs ρ = Δ²/(2β²), i.e. ε₀²/8 for ε₀ = 2Δ/β (Cesar & Rogers 2021). The total ρ is
the largest whose (ε, δ) conversion (:func:`rho_to_epsilon`) stays within the requested ε.

What is public: the schema (column kinds, special codes, number formats), ``domains=``
(category lists), ``bounds=`` (numeric ranges) and the codebook's value labels. Numeric
columns are measured on a fine public grid (one cell per integer for short integer
ranges, else cells equally spaced in asinh scale); their bins are equal-mass groups of
grid cells read off the *noisy* 1-way counts, so bins cost nothing extra, and values are
drawn within a bin by the noisy counts of its cells, never from records. Without bounds
a small share of the budget finds the range (noisy counts of quarter powers of two).
Categories seen only in the data are released only when their noisy count clears a
threshold that one record crosses with probability below δ/2 (a stability histogram);
the records of hidden categories go to a released category of the same column (see
:mod:`safemicro.synth.dp_domain`), so a column keeps its domain and gains no missing values.
``hierarchies`` declares public hierarchies (child value -> parent value, e.g. industry
code -> industry category); they hold in every synthetic record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods.base import rng_for
from safemicro.synth.dp_columns import find_range
from safemicro.synth.dp_domain import follow_parents, set_codes
from safemicro.synth.dp_privacy import (
    _entry,
    _Noise,
    _normal_isf,
    epsilon_to_rho,
    rho_to_epsilon,
)
from safemicro.synth.dp_public import _PublicColumns, _schema
from safemicro.synth.dp_sampling import _draw, _draw_table, _ipf, _project_rows
from safemicro.synth.schema import Schema

__all__ = ["DPSynthesizer", "rho_to_epsilon", "epsilon_to_rho"]


MAX_TABLE = 1_000_000  # a 2-way table with more cells is never selected (memory)


# -- the MST model ---------------------------------------------------------------------------
#
# Every table carries a leading stratum axis: with ``by`` it is the by-column's values and
# each clique of the model includes it (a tree within every stratum, sharing structure);
# without, it has one level and this is plain MST.


@dataclass
class _Edge:
    a: int
    b: int
    table: np.ndarray  # estimated counts (strata, codes of a, codes of b)


class DPSynthesizer(_PublicColumns):
    """(ε, δ)-differentially private synthesizer (MST) with the fit/sample API.

    ``bins`` is the most bins a numeric column gets; ``domains`` maps a column to its full
    public list of values (it is then modelled as categorical); ``bounds`` maps a numeric
    column to public (low, high) bounds (values outside are clamped). ``by`` names a
    categorical column (strata, geography) that every measured marginal includes, so
    relations hold within each of its values (costs noise: tables are that many times
    larger). ``hierarchies`` maps a child column to (parent column, {child value: parent
    value}), a public hierarchy: the parent is modelled, the child drawn within it by its
    noisy counts (hidden and rare child values stay within their parent). ``split`` weighs
    the budget between 1-way measurements, tree selection and 2-way measurements (MST
    spends a third on each; the default gives the selection 10 %, as AIM does, and the
    2-way tables, which hold the 1-way ones too, twice the 1-way share); ``range_share``
    is the share spent on finding ranges of numeric columns without bounds; values whose noisy count is below ``compress``·σ
    are merged into one (MST uses 3; within a parent in a hierarchy).
    """

    def __init__(
        self,
        epsilon: float,
        delta: float = 1e-6,
        *,
        method: str = "mst",
        bins: int = 16,
        domains: Mapping[str, Sequence[Any]] | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        by: str | None = None,
        hierarchies: Mapping[str, tuple[str, Mapping[Any, Any]]] | None = None,
        split: tuple[float, float, float] = (0.3, 0.1, 0.6),
        range_share: float = 0.05,
        compress: float = 3.0,
    ):
        if method != "mst":
            raise SafemicroError(f"unknown DP method {method!r}; available: 'mst'")
        if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
            raise SafemicroError(f"epsilon must be a positive number, not {epsilon!r}")
        if not (isinstance(delta, (int, float)) and 0 < delta < 1):
            raise SafemicroError(f"delta must be between 0 and 1 (exclusive), not {delta!r}")
        if not (isinstance(bins, int) and bins >= 2):
            raise SafemicroError(f"bins must be an integer of at least 2, not {bins!r}")
        if len(split) != 3 or min(split) < 0 or split[0] <= 0:
            raise SafemicroError("split must be three non-negative weights (1-way > 0)")
        if not 0 < range_share < 1:
            raise SafemicroError("range_share must be between 0 and 1")
        self.epsilon = float(epsilon)
        self.delta = float(delta)
        self.method = method
        self.bins = bins
        self.domains = {k: list(v) for k, v in (domains or {}).items()}
        self.bounds = {k: (float(v[0]), float(v[1])) for k, v in (bounds or {}).items()}
        self.by = by
        self.hierarchies = {
            child: (str(parent), {str(k): str(v) for k, v in dict(mapping).items()})
            for child, (parent, mapping) in (hierarchies or {}).items()
        }
        if any(child == parent for child, (parent, _) in self.hierarchies.items()):
            raise SafemicroError("a hierarchy relates two different columns (child, parent)")
        self.split = tuple(float(s) for s in split)
        self.range_share = float(range_share)
        self.compress = float(compress)
        self.privacy: dict[str, Any] = {}
        self.notes: list[str] = []
        self._fitted = False

    # -- fit ---------------------------------------------------------------------------

    def fit(self, ds: Dataset, *, schema: Any = None, seed: int | None = None) -> DPSynthesizer:
        """Measure the data with noise and build the model (no record is kept)."""
        if not isinstance(ds, Dataset):
            raise SafemicroError("DPSynthesizer.fit expects a safemicro Dataset")
        if ds.n == 0:
            raise SafemicroError("cannot synthesize from a dataset with no rows")
        named = [*self.domains, *self.bounds, *([self.by] if self.by else [])]
        named += [n for child, (parent, _) in self.hierarchies.items() for n in (child, parent)]
        for name in named:
            if name not in ds.columns:
                raise SafemicroError(
                    "the column named in domains, bounds, by or hierarchies is not in the data", column=name
                )
        for name, (lo, hi) in self.bounds.items():
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise SafemicroError(f"bounds must be finite with low < high, not {(lo, hi)}", column=name)

        noise = _Noise(seed)
        self._rng = rng_for(seed)[0] if seed is not None else np.random.default_rng()
        schema = _schema(ds, schema)
        ledger: list[dict[str, Any]] = []
        cols = [self._column(spec, ds.frame[name], ds.codebook.meta(name)) for name, spec in schema.columns.items()]
        notes = list(schema.notes) + self._notes(cols)
        # categories found in the data are released only above a noise threshold, which
        # fails with probability delta_categories (split over those columns); the rest of
        # delta goes to the zCDP conversion
        private = [c for c in cols if c.kind == "discrete" and not c.public and c.name != self.by]
        delta_cat = self.delta / 2 if private else 0.0
        rho = epsilon_to_rho(self.epsilon, self.delta - delta_cat) * (1 - 1e-9)  # rounding stays inside ε
        modelled_specs = {c.name: c.spec for c in cols if c.kind in ("discrete", "numeric")}
        enc = Schema(columns=modelled_specs).encode(ds.frame.select(list(modelled_specs)))
        strat = next((c for c in cols if c.name == self.by), None)
        if strat is not None and strat.kind != "discrete":
            raise SafemicroError("by must be a categorical column (or given a public domain)", column=self.by)
        modelled = [c for c in cols if c.kind in ("discrete", "numeric") and c is not strat]
        unbounded = [c for c in modelled if c.kind == "numeric" and not len(c.edges)]
        rho_range = rho * self.range_share if unbounded else 0.0
        w1, ws, w2 = self.split if len(modelled) > 1 else (1.0, 0.0, 0.0)
        rho1, rho_sel, rho2 = ((rho - rho_range) * w / (w1 + ws + w2) for w in (w1, ws, w2))

        for c in unbounded:
            find_range(c, c.regular(enc), rho_range / len(unbounded), noise, ledger, notes)

        # strata: the by column's categories (one stratum without by)
        if strat is not None:
            h = strat.fine_codes(enc)
        else:
            h = np.zeros(ds.n, dtype=np.int64)
        kh = strat.n_fine if strat is not None else 1
        prefix = f"{strat.name} x " if strat is not None else ""

        # 1-way marginals (per stratum) on fine cells; bins and rare-value merging from them
        data = np.empty((ds.n, len(modelled)), dtype=np.int64)
        ones: list[np.ndarray] = []  # (strata, codes) noisy counts
        var1: list[np.ndarray] = []  # (codes,) noise variance of a cell
        sigma1 = math.sqrt(max(len(modelled), 1) / (2 * rho1))
        thresholds: dict[str, float] = {}
        for j, c in enumerate(modelled):
            fine = c.fine_codes(enc)
            counts = np.bincount(h * c.n_fine + fine, minlength=kh * c.n_fine).reshape(kh, c.n_fine)
            noisy = noise.gaussian(counts.astype(float), sigma1)
            ledger.append(_entry(f"{prefix}{c.name}", "gaussian", sigma1, counts.size))
            threshold = None
            if c in private:  # stability histogram: a new category shows up with probability ≤ δ'
                threshold = thresholds[c.name] = 1 + sigma1 * math.sqrt(kh) * _normal_isf(delta_cat / len(private))
            hidden, empty = set_codes(
                c,
                noisy.sum(axis=0),
                sigma1 * math.sqrt(kh),
                threshold,
                bins=self.bins,
                compress=self.compress,
                parent=self._parents(c),
            )
            data[:, j] = c.to_code[fine]
            noisy[:, hidden | empty] = 0.0  # hidden categories' counts are discarded, never used
            agg = np.zeros((kh, c.n_codes))
            np.add.at(agg.T, c.to_code, noisy.T)
            ones.append(agg)
            var = np.bincount(c.to_code, minlength=c.n_codes) * sigma1**2
            var[np.unique(c.to_code[hidden])] = np.inf  # holds hidden records: no 1-way count of it
            var1.append(var)
        if private:
            hidden = [
                f"{c.name} ({len(c.spec.categories or []) - c.released} of {len(c.spec.categories or [])})"
                for c in private
                if c.released < len(c.spec.categories or [])
            ]
            notes.append(
                f"categories found in the data are released only when their noisy count clears a threshold "
                f"(about {min(thresholds.values()):.0f} records; privacy['category_thresholds']); records in the "
                "others get a released category of the same column (of the same parent in a hierarchy, else the "
                "nearest released number, else the most frequent)" + (f": {', '.join(hidden)} hidden" if hidden else "")
            )
            lost = [c.name for c in private if c.released == 0]
            if lost:
                notes.append(f"{', '.join(lost)}: no category cleared the threshold; the column is written as missing")
        if not modelled:  # only the by column (or nothing) to model
            counts = np.bincount(h, minlength=kh).astype(float)[:, None]
            ones.append(noise.gaussian(counts, sigma1))
            var1.append(np.array([sigma1**2]))
            ledger.append(_entry(f"{strat.name if strat else 'records'}", "gaussian", sigma1, kh))

        # the tree: exponential mechanism on how badly (conditional) independence fits each pair
        sizes = [c.n_codes for c in modelled]
        total, strata, nodes = self._nodes(ones, var1, [])
        # a hierarchy's child is drawn within its parent (public map, noisy 1-way counts)
        # (or, when the child is the by column, the parent is written from it)
        detached = {
            j
            for j, c in enumerate(modelled)
            if self._parents(c) is not None and any(p.name == self.hierarchies[c.name][0] for p in modelled)
        }
        detached |= {j for j, c in enumerate(modelled) if self.hierarchies.get(self.by, ("",))[0] == c.name}
        pairs = [
            (a, b)
            for a in range(len(modelled))
            for b in range(a + 1, len(modelled))
            if kh * sizes[a] * sizes[b] <= MAX_TABLE and not {a, b} & detached
        ]
        rounds = len(modelled) - 1 - len(detached)
        notes += [
            f"{modelled[j].name}: drawn within its parent {self.hierarchies[modelled[j].name][0]} (public "
            "hierarchy) by its noisy counts"
            if modelled[j].name in self.hierarchies
            else f"{modelled[j].name}: written from {self.by} (public hierarchy)"
            for j in sorted(detached)
        ]
        edges = self._select(h, kh, data, sizes, nodes, strata, pairs, rho_sel, noise, ledger, rounds)
        if len(modelled) > 1 and len(edges) < rounds:
            notes.append("some column pairs were too large to model together; the model is a forest")

        # 2-way marginals (per stratum) of the tree
        measured = []
        sigma2 = math.sqrt(len(edges) / (2 * rho2)) if edges else 0.0
        for a, b in edges:
            cells = kh * sizes[a] * sizes[b]
            counts = np.bincount((h * sizes[a] + data[:, a]) * sizes[b] + data[:, b], minlength=cells)
            noisy = noise.gaussian(counts.astype(float), sigma2).reshape(kh, sizes[a], sizes[b])
            ledger.append(_entry(f"{prefix}{modelled[a].name} x {modelled[b].name}", "gaussian", sigma2, cells))
            measured.append((a, b, noisy, sigma2**2))

        # consistent, non-negative estimates from every measurement
        self._total, self._strata, self._node = self._nodes(ones, var1, measured)
        self._edges = [
            _Edge(
                a,
                b,
                _ipf(_project_rows(t.reshape(kh, -1), self._strata).reshape(t.shape), self._node[a], self._node[b]),
            )
            for a, b, t, _ in measured
        ]
        self._cols, self._modelled, self._strat = cols, modelled, strat
        self._source = ds.with_frame(ds.frame.head(0))  # the codebook, no records
        self._source.source = None

        spent = sum(e["rho"] for e in ledger)
        if rho - spent > 1e-9 * rho:
            notes.append(f"rho {rho - spent:.3g} of the budget was not needed and is unspent")
        self.privacy = {
            "definition": "(epsilon, delta)-DP for adding or removing one record; accounted in zCDP",
            "method": "MST (McKenna, Miklau & Sheldon 2021)" + (f", every marginal within {self.by}" if strat else ""),
            "epsilon": self.epsilon,
            "delta": self.delta,
            "delta_categories": delta_cat,
            "rho": rho,
            "rho_spent": spent,
            "epsilon_spent": rho_to_epsilon(spent, self.delta - delta_cat),
            "split": {
                "range": rho_range,
                "one_way": rho1,
                "select": rho_sel if edges else 0.0,
                "two_way": rho2 if edges else 0.0,
            },
            "mechanisms": sorted({e["mechanism"] for e in ledger}),
            "noise": noise.name,
            "measurements": ledger,
            "category_thresholds": thresholds,
            "tree": [[modelled[a].name, modelled[b].name] for a, b in edges],
            "notes": notes,
        }
        self.notes = notes
        self._fitted = True
        return self

    def _nodes(self, ones, var1, measured) -> tuple[float, np.ndarray, list[np.ndarray]]:
        """Record count, stratum sizes and per-stratum 1-way counts: inverse-variance averages
        of every measurement that holds them, projected to be non-negative and to add up."""
        kh = ones[0].shape[0]
        est = [(y.sum(axis=1), v.sum()) for y, v in zip(ones, var1)]
        est += [(t.sum(axis=(1, 2)), var * t[0].size) for _, _, t, var in measured]
        weights = np.array([1 / v for _, v in est])  # 0 for a column holding hidden records
        raw = sum(w * s for w, (s, _) in zip(weights, est)) / weights.sum()
        total = max(float(raw.sum()), 1.0)
        strata = _project_rows(raw[None, :], np.array([total]))[0] if kh > 1 else np.array([total])
        nodes = []
        for j, (y, v) in enumerate(zip(ones, var1)):
            num, den = y / v, np.broadcast_to(1 / v, y.shape).copy()
            for a, b, t, var in measured:
                if j in (a, b):
                    other = t.shape[2] if j == a else t.shape[1]
                    num = num + t.sum(axis=2 if j == a else 1) / (var * other)
                    den = den + 1 / (var * other)
            est = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
            unknown = den == 0  # codes no measurement counts: what the others leave, shared in
            if unknown.any():  # proportion to the noisy counts of their released cells
                share = np.where(unknown, np.maximum(y, 0.0) + 1e-9, 0.0)
                rest = np.maximum(strata - est.sum(axis=1), 0.0) / share.sum(axis=1)
                est = np.where(unknown, rest[:, None] * share, est)
            nodes.append(_project_rows(est, strata))
        return total, strata, nodes

    def _select(self, h, kh, data, sizes, nodes, strata, pairs, rho, noise, ledger, rounds) -> list[tuple[int, int]]:
        """Kruskal's maximum spanning tree, each edge picked by the exponential mechanism.

        A pair's score is the L1 distance between its (per-stratum) counts and what the
        noisy 1-way marginals predict under independence: sensitivity 1.
        """
        d = len(sizes)
        if d < 2 or not pairs or rho <= 0 or rounds < 1:
            return []
        share = np.divide(1.0, strata, out=np.zeros_like(strata), where=strata > 0)[:, None, None]
        scores = np.empty(len(pairs))
        for i, (a, b) in enumerate(pairs):
            cells = kh * sizes[a] * sizes[b]
            counts = np.bincount((h * sizes[a] + data[:, a]) * sizes[b] + data[:, b], minlength=cells)
            expected = nodes[a][:, :, None] * nodes[b][:, None, :] * share
            scores[i] = np.abs(counts - expected.ravel()).sum()
        component = np.arange(d)
        scale = 1.0 / math.sqrt(2 * rho / rounds)
        chosen: list[tuple[int, int]] = []
        pa, pb = np.array(pairs).T
        for r in range(rounds):
            alive = np.flatnonzero(component[pa] != component[pb])
            if not len(alive):
                break
            pick = alive[noise.select(scores[alive], scale)]
            a, b = pairs[pick]
            component[component == component[b]] = component[a]
            chosen.append((a, b))
            ledger.append(
                {
                    "what": f"tree edge {r + 1} of {rounds}",
                    "mechanism": "exponential",
                    "scale": scale,
                    "cells": int(len(alive)),
                    "rho": 1 / (2 * scale**2),
                }
            )
        return chosen

    # -- sample ------------------------------------------------------------------------

    def sample(self, n: int | None = None, *, seed: int | None = None) -> Dataset:
        """n synthetic records (default: the noisy record count) with the input's columns and types."""
        if not self._fitted:
            raise SafemicroError("fit the DP synthesizer before sampling")
        if n is None:
            n = int(round(self._total))
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise SafemicroError(f"n must be a non-negative integer, not {n!r}")
        n = int(n)
        rng = rng_for(seed)[0] if seed is not None else self._rng
        h, codes = self._sample_codes(n, rng)
        model: list[pl.Series] = []
        for c in self._cols:
            if c is self._strat:
                model += c.encoded(h, rng)
            elif c in self._modelled:
                code = codes[:, self._modelled.index(c)]
                order = np.argsort(c.to_code, kind="stable")
                model += c.encoded(order[_draw(code, c.to_code[order], c.weight[order], rng)], rng)
        decoded = Schema(columns={c.name: c.spec for c in self._cols}).decode(pl.DataFrame(model, height=n))
        out = []
        for c in self._cols:
            if c.kind == "constant":
                out.append(pl.repeat(c.spec.value, n, dtype=c.spec.dtype, eager=True).alias(c.name))
            elif c.kind == "id":
                out.append(pl.Series(c.name, np.arange(1, n + 1)).cast(c.spec.dtype))
            else:
                out.append(decoded[c.name])
        kept = {c.name: c for c in self._cols if c is not self._strat}  # the by column is never redrawn
        frame = follow_parents(pl.DataFrame(out, height=n), self.hierarchies, kept, rng)
        result = self._source.with_frame(frame)
        result.codebook.extended_missing = {}
        return result

    def _sample_codes(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Strata from their sizes, then along each tree: a root given the stratum, each child
        given its parent and the stratum."""
        d = len(self._modelled)
        h = _draw_table(np.zeros(n, dtype=np.int64), self._strata[None, :], rng)
        codes = np.zeros((n, d), dtype=np.int64)
        nbrs: dict[int, list[tuple[int, np.ndarray]]] = {j: [] for j in range(d)}
        for e in self._edges:
            nbrs[e.a].append((e.b, e.table))
            nbrs[e.b].append((e.a, e.table.transpose(0, 2, 1)))
        done = np.zeros(d, dtype=bool)
        for r in range(d):
            if done[r]:
                continue
            codes[:, r] = _draw_table(h, self._node[r], rng)
            done[r] = True
            stack = [r]
            while stack:
                p = stack.pop()
                for child, t in nbrs[p]:
                    if not done[child]:
                        kh, kp, kc = t.shape
                        codes[:, child] = _draw_table(h * kp + codes[:, p], t.reshape(kh * kp, kc), rng)
                        done[child] = True
                        stack.append(child)
        return h, codes
