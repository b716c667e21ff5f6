"""Sequential CART synthesis (the method of synthpop, written for safemicro).

Columns are synthesized one after another in a visit order (by default the data's own,
as synthpop does; the first column comes from its marginal). For each column a decision
tree is grown on the real data, predicting it from the columns before it (and the
``fixed`` columns); a synthetic record is dropped down that tree using its synthetic
values so far and takes the value of a real *donor* in the leaf it reaches. For a
categorical column this draws from the leaf's class distribution. The records reaching a
leaf share its donors evenly (each donor serves the floor or ceiling of records/donors,
in random order), which reproduces the leaf's distribution with less noise than
independent draws and never leans on one donor.

A numeric column is two steps: its *state* (regular value, each special code such as -8,
missing) is drawn first like a categorical, then the number, only for records in the
regular state, from a tree grown on the real records with a regular value. So "not
applicable" and skip patterns survive together with the numbers.

Copying safeguards, on by default:

- leaves hold at least ``min_leaf`` (20) real records, so no synthetic record follows one
  real record's path;
- a numeric donor value held by fewer than ``min_count`` (5) real records is never
  copied: it is smoothed with a Gaussian kernel whose bandwidth is Silverman's rule on the
  leaf's values (1.06·sd·n^-1/5), reflected into the leaf's range;
- numbers are bounded by the ``tail_k``-th (2nd) smallest and largest real values, so a
  synthetic extreme never points at a single real record.

Trees are scikit-learn's CART; everything else is vectorised NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods.base import rng_for
from safemicro.synth.schema import MAX_CATEGORIES, ColumnSpec, Schema, infer_schema, state_name

__all__ = ["CartSynthesizer"]

_ONE_HOT_MAX = 30  # nominal predictors with 3..this many codes also enter as indicators


@dataclass
class _Target:
    """What one step draws, and how its values become predictors for the steps after it."""

    column: str  # the input column
    name: str  # the encoded column it draws (a code, a numeric state, or a number)
    numeric: bool
    n_codes: int = 0
    ordered: bool = True
    state_of: str | None = None  # numbers: the state column whose 0 ("regular") gates them

    @property
    def width(self) -> int:
        """Number of predictor columns: the code or number, plus indicators of nominal codes."""
        one_hot = not (self.numeric or self.ordered or self.n_codes <= 2 or self.n_codes > _ONE_HOT_MAX)
        return 1 + self.n_codes * one_hot

    def write_features(self, X: np.ndarray, at: int, values: np.ndarray) -> None:
        X[:, at] = values
        if self.width > 1:
            X[:, at + 1 : at + self.width] = values[:, None] == np.arange(self.n_codes)


@dataclass
class _Step:
    """One fitted tree and the real donors in each of its leaves."""

    target: _Target
    n_features: int  # the tree uses the first n_features predictor columns
    tree: Any  # None: a single leaf (the marginal)
    leaf_ids: np.ndarray  # the tree's leaf node ids, sorted
    starts: np.ndarray  # per leaf: first donor
    counts: np.ndarray  # per leaf: number of donors
    donors: np.ndarray  # real values, grouped by leaf
    # numbers
    smooth: np.ndarray | None = None  # per donor: a rare value, smoothed rather than copied
    bandwidth: np.ndarray | None = None  # per leaf
    low: np.ndarray | None = None  # per leaf: range of its values
    high: np.ndarray | None = None
    # tail limits: (tail_k-th smallest, next larger), (tail_k-th largest, next smaller)
    bounds: tuple[tuple[float, float], tuple[float, float]] = ((-np.inf, -np.inf), (np.inf, np.inf))
    integral: bool = False
    # high-cardinality categoricals
    kept: np.ndarray | None = None  # per code: modelled as itself rather than pooled
    pool: np.ndarray | None = None  # what the pooled code becomes: real codes (or missing), drawn at random

    @property
    def pooled_code(self) -> int:
        return self.target.n_codes  # a code no category has

    def model_codes(self, codes: np.ndarray) -> np.ndarray:
        """Codes as the trees see them (pooled codes merged into one)."""
        if self.kept is None:
            return codes
        return np.where(self.kept[codes.astype(np.int64)], codes, self.pooled_code)


class CartSynthesizer:
    """Sequential CART synthesizer with copying safeguards.

    Parameters
    ----------
    min_leaf: smallest number of real records in a leaf (synthpop's default is 5, which
        copies records; 20 does not, at no cost in utility on SD2011).
    smoothing: smooth numeric donor values held by fewer than ``min_count`` real records.
    visit_order: columns to synthesize first, in this order; the rest follow in data order
        (synthpop's default: questionnaires usually put geography and demographics first).
    max_categories: a categorical with more codes keeps its ``max_categories - 1`` most
        frequent codes; the others are pooled and drawn from their marginal.
    min_count: numeric values held by fewer real records are smoothed, never copied; so are
        values of high-cardinality categoricals (they are left missing).
    tail_k: numbers are bounded by the ``tail_k``-th smallest and largest real values (with
        2, a synthetic extreme never isolates a single real record; 1 keeps the real range).

    After :meth:`fit`, ``notes`` lists what was modelled specially (high-cardinality
    columns, entirely missing columns, dates); samples carry them in their codebook notes.
    """

    def __init__(
        self,
        *,
        min_leaf: int = 20,
        smoothing: bool = True,
        visit_order: Sequence[str] | None = None,
        max_categories: int = MAX_CATEGORIES,
        min_count: int = 5,
        tail_k: int = 2,
    ) -> None:
        for name, value, least in (
            ("min_leaf", min_leaf, 1),
            ("min_count", min_count, 1),
            ("tail_k", tail_k, 1),
            ("max_categories", max_categories, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise SafemicroError(f"{name} must be a whole number of at least {least}, not {value!r}")
        self.min_leaf = min_leaf
        self.smoothing = bool(smoothing)
        self.visit_order = None if visit_order is None else list(visit_order)
        self.max_categories = max_categories
        self.min_count = min_count
        self.tail_k = tail_k
        self.notes: list[str] = []
        self._steps: list[_Step] = []

    # -- fit ------------------------------------------------------------------------------

    def fit(
        self,
        ds: Dataset,
        *,
        schema: Schema | None = None,
        fixed: Sequence[str] = (),
        seed: int | None = None,
    ) -> CartSynthesizer:
        """Learn the trees from ``ds``. ``fixed`` columns are predictors only, never drawn."""
        rng, self.seed = rng_for(seed)
        self._draws = 0
        if ds.n == 0:
            raise SafemicroError("no records to learn from", file=ds.source)
        fixed = [fixed] if isinstance(fixed, str) else list(fixed)
        for name in fixed:
            if name not in ds.columns:
                raise SafemicroError("fixed column is not in the data", column=name, file=ds.source)
        if len(set(fixed)) != len(fixed):
            raise SafemicroError("fixed lists a column twice")
        schema = schema if schema is not None else infer_schema(ds, max_categories=self.max_categories)
        if schema.names != ds.columns:
            odd = [c for c in ds.columns if c not in schema.columns] or [c for c in schema.names if c not in ds.columns]
            raise SafemicroError("the schema does not describe the columns of the data", column=(odd or [None])[0])
        self.schema, self.fixed = schema, fixed
        self._empty = ds.with_frame(ds.frame.head(0))  # keeps the codebook for the samples
        self.notes = list(schema.notes)
        enc = schema.encode(ds.frame)
        self._train_fixed = enc.select([c for f in fixed for c in schema.encoded_names(f)])
        self._n_train = ds.n

        self._fixed_targets = [t for name in fixed for t in _targets(schema[name])]
        targets = [t for name in self._order(schema, fixed) for t in _targets(schema[name])]
        X = _allocate(ds.n, self._fixed_targets + targets)
        at = 0
        for t in self._fixed_targets:
            t.write_features(X, at, enc.get_column(t.name).to_numpy())
            at += t.width
        self._steps = []
        for t in targets:
            y = enc.get_column(t.name).to_numpy()
            rows = enc.get_column(t.state_of).to_numpy() == 0 if t.state_of else None
            step = self._fit_step(t, X[:, :at], y, rows, schema[t.column], rng)
            self._steps.append(step)
            values = np.where(rows, y, np.nan) if rows is not None else step.model_codes(y) if not t.numeric else y
            t.write_features(X, at, values)
            at += t.width
        return self

    def _order(self, schema: Schema, fixed: list[str]) -> list[str]:
        """The visit order: the user's columns first, then the rest in data order (synthpop's default)."""
        modelled = [
            c for c, s in schema.columns.items() if c not in fixed and s.kind in ("categorical", "text", "numeric")
        ]
        first = self.visit_order or []
        for name in first:
            if name not in schema.columns:
                raise SafemicroError("visit_order names a column that is not in the data", column=name)
            if name in fixed:
                raise SafemicroError("visit_order names a fixed column; fixed columns are not drawn", column=name)
        if len(set(first)) != len(first):
            raise SafemicroError("visit_order lists a column twice")
        return [c for c in first if c in modelled] + [c for c in modelled if c not in first]

    def _fit_step(
        self,
        t: _Target,
        X: np.ndarray,
        y: np.ndarray,
        rows: np.ndarray | None,
        spec: ColumnSpec,
        rng: np.random.Generator,
    ) -> _Step:
        if rows is not None:
            X, y = X[rows], y[rows]
        kept = pool = None
        if not t.numeric:
            y = y.astype(np.int64)
            if t.n_codes > self.max_categories:
                kept, pool = self._pool(t, y, len(spec.categories or []))
                y = np.where(kept[y], y, t.n_codes)
        tree = None
        if X.shape[1] and len(y) >= 2 * self.min_leaf:
            kind = DecisionTreeRegressor if t.numeric else DecisionTreeClassifier
            tree = kind(min_samples_leaf=self.min_leaf, random_state=int(rng.integers(2**31 - 1))).fit(X, y)
        leaves = tree.apply(X) if tree is not None else np.zeros(len(y), dtype=np.int64)
        order = np.argsort(leaves, kind="stable")
        leaf_ids, starts, counts = np.unique(leaves[order], return_index=True, return_counts=True)
        step = _Step(t, X.shape[1], tree, leaf_ids, starts, counts, y[order], kept=kept, pool=pool)
        if t.numeric and len(y):
            self._fit_smoothing(step, spec)
        return step

    def _pool(self, t: _Target, y: np.ndarray, missing_code: int) -> tuple[np.ndarray, np.ndarray]:
        """High cardinality: which codes are modelled, and what the pooled code draws from.

        The ``max_categories - 1`` most frequent codes held by at least ``min_count`` records
        are modelled; the pooled code draws the other codes held by at least ``min_count``
        records from their marginal, and stands for a missing value where the real code was
        rarer: rare values (names, free text, fine codes) are never copied.
        """
        freq = np.bincount(y, minlength=t.n_codes)
        common = freq >= self.min_count
        top = np.argsort(-freq, kind="stable")[: self.max_categories - 1]
        kept = np.zeros(t.n_codes, dtype=bool)
        kept[top[common[top]]] = True
        pooled = ~kept[y]
        pool = np.where(common[y[pooled]], y[pooled], missing_code)
        rare = ~common[y[pooled]]
        self.notes.append(
            f"{t.column}: {t.n_codes} categories; {int(kept.sum())} frequent ones are modelled, "
            f"{int((common & ~kept).sum())} others held by at least {self.min_count} records are drawn from "
            f"their marginal, and the {int((~common & (freq > 0)).sum())} held by fewer ({rare.sum() / len(y):.1%} "
            "of records) are left missing, never copied"
        )
        return kept, pool

    def _fit_smoothing(self, step: _Step, spec: ColumnSpec) -> None:
        """Per-leaf bandwidth and range, which donors are rare, and the tail limits."""
        donors = step.donors
        _, inverse, freq = np.unique(donors, return_inverse=True, return_counts=True)
        step.smooth = freq[inverse.ravel()] < self.min_count if self.smoothing else np.zeros(len(donors), bool)
        n = step.counts.astype(np.float64)
        mean = np.add.reduceat(donors, step.starts) / n
        var = np.maximum(np.add.reduceat(donors**2, step.starts) / n - mean**2, 0.0)
        step.bandwidth = 1.06 * np.sqrt(var) * n ** (-0.2)  # Silverman's rule of thumb
        step.low = np.minimum.reduceat(donors, step.starts)
        step.high = np.maximum.reduceat(donors, step.starts)
        ranked = np.sort(donors)
        k = min(self.tail_k, len(ranked)) - 1
        k1 = min(k + 1, len(ranked) - 1)
        step.bounds = ((ranked[k], ranked[k1]), (ranked[-1 - k], ranked[-1 - k1]))
        step.integral = spec.integral

    # -- sample ---------------------------------------------------------------------------

    def sample(
        self, n: int | None = None, *, conditions: pl.DataFrame | None = None, seed: int | None = None
    ) -> Dataset:
        """Draw ``n`` synthetic records (default: as many as the real data).

        With ``conditions`` (a frame of the fixed columns), one record per row of it, with
        the fixed columns copied from it. Without, the fixed columns are resampled from the
        real records as they are. Without a seed, successive samples differ but follow from
        the fit seed.
        """
        if not hasattr(self, "schema"):
            raise SafemicroError("call fit before sample")
        if seed is None:
            self._draws += 1
            seed = int(np.random.default_rng([self.seed, self._draws]).integers(2**63 - 1))
        rng, _ = rng_for(seed)
        fixed_enc = self._fixed_rows(n, conditions, rng)
        n = fixed_enc.height if self.fixed else (self._n_train if n is None else _count(n))
        X = _allocate(n, self._fixed_targets + [s.target for s in self._steps])
        at = 0
        for t in self._fixed_targets:
            t.write_features(X, at, fixed_enc.get_column(t.name).to_numpy())
            at += t.width
        drawn: dict[str, np.ndarray] = {}
        for step in self._steps:
            t = step.target
            rows = drawn[t.state_of] == 0 if t.state_of else None
            values = self._draw(step, X, rows, rng)
            t.write_features(X, at, values)
            at += t.width
            if step.pool is not None:  # pooled codes become real ones (or missing), from their marginal
                hit = values == step.pooled_code
                values[hit] = step.pool[rng.integers(len(step.pool), size=int(hit.sum()))]
            drawn[t.name] = values
        return self._assemble(n, drawn, fixed_enc)

    def _fixed_rows(self, n: int | None, conditions: pl.DataFrame | None, rng: np.random.Generator) -> pl.DataFrame:
        """The encoded fixed columns of the records to draw."""
        if conditions is None:
            if not self.fixed:
                return pl.DataFrame()
            m = self._n_train if n is None else _count(n)
            note = "fixed columns resampled from the real records (no conditions given)"
            if note not in self.notes:
                self.notes.append(note)
            return self._train_fixed[rng.integers(self._n_train, size=m)]
        if not isinstance(conditions, pl.DataFrame):
            raise SafemicroError("conditions must be a polars DataFrame of the fixed columns")
        for name in conditions.columns:
            if name not in self.fixed:
                raise SafemicroError("conditions hold a column that is not fixed", column=name)
        for name in self.fixed:
            if name not in conditions.columns:
                raise SafemicroError("conditions lack a fixed column", column=name)
        if n is not None and _count(n) != conditions.height:
            raise SafemicroError(f"n={n} but conditions have {conditions.height} rows")
        cast = []
        for name in self.fixed:
            dtype = self.schema[name].dtype
            try:
                cast.append(conditions.get_column(name).cast(dtype))
            except Exception as e:  # polars raises several error types for a failed cast
                raise SafemicroError(f"conditions: cannot read the values as {dtype}", column=name) from e
        return self.schema.encode(pl.DataFrame(cast))

    def _draw(self, step: _Step, X: np.ndarray, rows: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """Values of one step for every record (NaN outside ``rows``)."""
        m = X.shape[0]
        idx = np.arange(m) if rows is None else np.flatnonzero(rows)
        out = np.full(m, np.nan) if step.target.numeric else np.zeros(m, dtype=np.int64)
        if len(idx) == 0 or len(step.donors) == 0:
            return out
        if step.tree is not None:
            leaf = np.searchsorted(step.leaf_ids, step.tree.apply(X[idx, : step.n_features]))
        else:
            leaf = np.zeros(len(idx), dtype=np.int64)
        pick = _balanced_donors(leaf, step.starts, step.counts, rng)
        value = step.donors[pick]
        if step.target.numeric:
            value = _smooth(step, value.astype(np.float64), pick, leaf, rng)
        out[idx] = value
        return out

    def _assemble(self, n: int, drawn: dict[str, np.ndarray], fixed_enc: pl.DataFrame) -> Dataset:
        cols = [fixed_enc.get_column(c) for c in fixed_enc.columns]
        for name, values in drawn.items():
            if values.dtype.kind == "f":
                cols.append(pl.Series(name, values).fill_nan(None))
            else:
                cols.append(pl.Series(name, values.astype(np.int32)))
        for name, spec in self.schema.columns.items():
            if name in self.fixed:
                continue
            if spec.kind == "constant":
                cols.append(pl.repeat(spec.value, n, dtype=spec.dtype, eager=True).alias(name))
            elif spec.kind == "id":
                cols.append(_new_ids(spec, n))
        frame = self.schema.decode(pl.DataFrame(cols))
        out = self._empty.with_frame(frame.select(self.schema.names))
        out.codebook = replace(out.codebook, notes=list(out.codebook.notes) + self.notes)
        return out


# -- helpers ------------------------------------------------------------------------------


def _count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise SafemicroError(f"n must be a whole number of records, not {n!r}")
    return int(n)


def _balanced_donors(leaf: np.ndarray, starts: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A donor for each record, spreading the records of a leaf evenly over its donors.

    The records of a leaf take its donors in a random cyclic order from a random start, so
    each donor serves either floor or ceil of (records / donors): the leaf's distribution
    is reproduced with less noise than independent draws, and no donor is used more often
    than its share.
    """
    m = len(leaf)
    order = np.lexsort((rng.random(m), leaf))
    grouped = leaf[order]
    rank = np.arange(m) - np.searchsorted(grouped, grouped, side="left")
    offset = (rng.random(len(counts)) * counts).astype(np.int64)
    position = (rank + offset[grouped]) % counts[grouped]
    donor_leaf = np.repeat(np.arange(len(counts)), counts)
    shuffled = np.lexsort((rng.random(len(donor_leaf)), donor_leaf))  # donors shuffled within each leaf
    pick = np.empty(m, dtype=np.int64)
    pick[order] = shuffled[starts[grouped] + position]
    return pick


def _targets(spec: ColumnSpec) -> list[_Target]:
    """The steps of one column: its code; or a number's state (if any) and then the number."""
    name = spec.name
    if spec.kind in ("categorical", "text"):
        return [_Target(name, name, False, spec.n_codes, spec.ordered)]
    if spec.kind != "numeric":
        return []  # ids get new values, constants their value
    if spec.n_states == 1:
        return [_Target(name, name, True)]
    state = state_name(name)
    return [_Target(name, state, False, spec.n_states, False), _Target(name, name, True, state_of=state)]


def _allocate(n: int, targets: list[_Target]) -> np.ndarray:
    """The predictor matrix, filled column block by column block as the steps go."""
    return np.zeros((n, sum(t.width for t in targets)), dtype=np.float32, order="F")


def _smooth(step: _Step, value: np.ndarray, pick: np.ndarray, leaf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Kernel-smooth rare donor values within their leaf's range; apply the tail limits."""
    s = step.smooth[pick]
    if s.any():
        lo, hi = step.low[leaf[s]], step.high[leaf[s]]
        x = value[s] + step.bandwidth[leaf[s]] * rng.standard_normal(int(s.sum()))
        x = np.where(x > hi, 2 * hi - x, x)
        x = np.where(x < lo, 2 * lo - x, x)
        # still outside after one reflection: anywhere in the leaf's range (never its ends exactly)
        outside = (x < lo) | (x > hi)
        value[s] = np.where(outside, lo + (hi - lo) * rng.random(len(x)), x)
    # beyond the tail limits: between the tail_k-th and the next extreme real value
    (lo, lo_next), (hi, hi_next) = step.bounds
    below, above = value < lo, value > hi
    value[below] = lo + (lo_next - lo) * rng.random(int(below.sum()))
    value[above] = hi - (hi - hi_next) * rng.random(int(above.sum()))
    return np.round(value) if step.integral else value


def _new_ids(spec: ColumnSpec, n: int) -> pl.Series:
    """Fresh identifiers 1..n (strings: S0001...), never the real ones."""
    if spec.dtype == pl.String:
        ids = pl.int_range(1, n + 1, eager=True).cast(pl.String).str.zfill(len(str(n)))
        return ("S" + ids).alias(spec.name)
    return pl.Series(spec.name, np.arange(1, n + 1)).cast(spec.dtype, strict=False)
