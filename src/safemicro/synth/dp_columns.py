"""Columns of the DP synthesizer: how one column maps to the fine cells that are measured
(categories, special codes, a numeric grid) and back."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.synth.dp_privacy import _entry
from safemicro.synth.schema import ColumnSpec, state_name

GRID = 256  # fine cells of a numeric column measured on an asinh grid
INTEGER_GRID = 1024  # integer columns with at most this many values get one cell per value


@dataclass
class _Column:
    """How one column maps to fine cells (what is measured) and back.

    Values are encoded and restored by the schema (``spec``: exact types, special codes,
    missing values). Fine cells are the ``n_labels`` categories (a numeric column's special
    codes and missing value count as categories) followed by the numeric grid cells between
    ``edges``. ``to_code`` groups fine cells into the model's codes (bins, rare values
    merged); ``weight`` (noisy counts) picks a fine cell within a code when sampling.
    """

    spec: ColumnSpec
    kind: str  # "discrete" | "numeric" | "constant" | "id"
    n_labels: int = 0
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))
    integer: bool = False
    public: bool = True  # categories declared public (domains=) or not categorical
    public_cells: np.ndarray | None = None  # per category: listed in the codebook
    released: int | None = None  # categories found in the data that cleared the threshold
    had_missing: bool = True  # the data has missing values in this column (schema: public)
    destination: np.ndarray | None = None  # per fine cell, where its records go (hidden ones)
    to_code: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    weight: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def n_fine(self) -> int:
        return self.n_labels + max(len(self.edges) - 1, 0)

    @property
    def n_codes(self) -> int:
        return int(self.to_code.max()) + 1 if len(self.to_code) else 1

    def regular(self, enc: pl.DataFrame) -> np.ndarray:
        """The regular numbers of an encoded numeric column (NaN for codes and missing)."""
        return enc[self.name].cast(pl.Float64).fill_null(float("nan")).to_numpy()

    def fine_codes(self, enc: pl.DataFrame) -> np.ndarray:
        """Fine cell of every encoded value (numbers outside the bounds go to the end cells)."""
        if self.kind == "discrete":
            return enc[self.name].to_numpy().astype(np.int64)
        state = enc[state_name(self.name)].to_numpy() if self.n_labels else np.zeros(enc.height, dtype=np.int64)
        cell = np.searchsorted(self.edges, self.regular(enc), side="right") - 1
        return np.where(state > 0, state - 1, self.n_labels + np.clip(cell, 0, len(self.edges) - 2)).astype(np.int64)

    def encoded(self, fine: np.ndarray, rng: np.random.Generator) -> list[pl.Series]:
        """Model columns (as the schema encodes them) for fine cells; numbers drawn uniformly
        inside their grid cell (the middle of a one-integer cell)."""
        if self.kind == "discrete":
            return [pl.Series(self.name, fine, dtype=pl.Int32)]
        regular = fine >= self.n_labels
        cell = np.clip(fine - self.n_labels, 0, len(self.edges) - 2)
        lo, hi = self.edges[cell], self.edges[cell + 1]
        u = np.where(self.integer & (hi - lo <= 1), 0.5, rng.random(len(fine)))
        x = np.clip(lo + u * (hi - lo), self.edges[0], self.edges[-1])
        out = [pl.Series(self.name, np.where(regular, x, np.nan)).fill_nan(None)]
        if self.n_labels:
            out.append(pl.Series(state_name(self.name), np.where(regular, 0, fine + 1), dtype=pl.Int32))
        return out


def _numeric_spec(spec: ColumnSpec) -> ColumnSpec:
    """A column the schema found categorical, as a number (the user gave it bounds).

    Categories that are not numbers become special codes; strings keep their number format.
    """
    if spec.kind == "numeric":
        return spec
    if spec.kind not in ("categorical", "text"):
        raise SafemicroError(f"bounds were given, but the column is {spec.kind}", column=spec.name)
    cats = pl.Series(spec.categories or [], dtype=spec.dtype, strict=False)
    nums = cats.cast(pl.Float64, strict=False) if spec.dtype.is_numeric() or spec.dtype == pl.String else None
    if nums is None or nums.is_null().all():
        raise SafemicroError("bounds were given, but the column holds no numbers", column=spec.name)
    tokens = cats.filter(nums.is_null()).to_list()
    whole = nums.drop_nulls()
    integral = bool((whole == whole.floor()).all())
    fmt = None
    if spec.dtype == pl.String:
        fmt = "int" if cats.filter(nums.is_not_null()).str.contains(r"^-?\d+$").all() else "float"
    specials = [v for v in spec.special_values if v not in tokens] + tokens
    return replace(spec, kind="numeric", special_values=specials, categories=None, integral=integral, number_format=fmt)


def _grid(lo: float, hi: float, integer: bool) -> np.ndarray:
    """Fine cell edges on [lo, hi]: one cell per integer for short integer ranges, else
    asinh-spaced, with zero in a cell of its own for integers (no income, no children: a
    common value that would otherwise be spread over the cell around it)."""
    if integer:
        lo, hi = math.floor(lo), math.ceil(hi)
        if hi - lo + 1 <= INTEGER_GRID:
            return np.arange(lo, hi + 2, dtype=float) - 0.5
    scale = max(abs(lo), abs(hi)) / 1000 or 1.0
    t = np.linspace(np.arcsinh(lo / scale), np.arcsinh(hi / scale), GRID + 1)
    edges = np.sinh(t) * scale
    edges[0], edges[-1] = lo, hi
    if integer and lo <= 0 <= hi:
        edges = np.unique(np.concatenate([edges[(edges < -0.5) | (edges > 0.5)], [-0.5, 0.5]]))
    return edges


def find_range(c: _Column, x: np.ndarray, rho: float, noise: Any, ledger: list, notes: list) -> None:
    """Bounds without looking: noisy counts of x in buckets of signed quarter powers of
    two (|x| in [2^(e/4), 2^((e+1)/4)), from 2^-32 to 2^64, and zero); the range runs
    from the lowest to the highest bucket whose count clearly exceeds the noise (5σ)."""
    x = x[~np.isnan(x)]
    steps = np.arange(-128, 257) / 4  # bucket edges in log2 scale
    k = len(steps) - 1
    mag = np.clip(np.searchsorted(steps, np.log2(np.abs(x[x != 0])), side="right"), 1, k)
    bucket = np.full(len(x), k, dtype=np.int64)  # zero
    bucket[x != 0] = k + np.sign(x[x != 0]).astype(np.int64) * mag
    sigma = math.sqrt(1 / (2 * rho))
    noisy = noise.gaussian(np.bincount(bucket, minlength=2 * k + 1).astype(float), sigma)
    ledger.append(_entry(f"range of {c.name}", "gaussian", sigma, 2 * k + 1))
    clear = np.flatnonzero(noisy > 5 * sigma)  # ~770 buckets: a false alarm is rare
    if not len(clear):
        notes.append(
            f"{c.name}: too few numbers to find their range privately; "
            "clamped to [0, 1] (pass bounds= to give a public range)"
        )
        lo, hi = 0.0, 1.0
    else:

        def edge(b: int, upper: bool) -> float:
            return 0.0 if b == k else float(np.sign(b - k) * 2.0 ** steps[abs(b - k) - (upper != (b > k))])

        lo, hi = edge(int(clear[0]), False), edge(int(clear[-1]), True)
    c.edges = _grid(lo, hi if hi > lo else lo + 1.0, c.integer)
