"""Domains of the DP synthesizer's columns: which cells become model codes, which categories
are released, and where the records of the others go.

A released column keeps its domain. Categories taken from the data (not declared public)
are released only when their noisy count clears a threshold (a stability histogram); the
records of a hidden category go to a released category of the same column, chosen from
public information and the released noisy counts only (so the choice is post-processing):

* with a public hierarchy (``hierarchies=``, e.g. industry code -> industry category), the
  released category of the same parent with the largest noisy count;
* else, for categories that are numbers (codes, counts), the nearest released number;
* else the released category with the largest noisy count.

A hidden category becomes missing only when nothing was released in its column and the
column had missing values (or nothing at all can be released). Rare codes (noisy count
below ``compress``·σ, MST) are merged, within their parent when a hierarchy is given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.synth.dp_columns import _Column
from safemicro.synth.dp_sampling import _draw, _project_rows

__all__ = ["follow_parents", "load_hierarchy", "parent_ids", "set_codes"]


def parent_ids(categories: list[Any], mapping: Mapping[str, str], n_fine: int) -> np.ndarray:
    """Per fine cell, an id of its parent in a public hierarchy (-1: none, e.g. missing)."""
    ids: dict[str, int] = {}
    out = np.full(n_fine, -1, dtype=np.int64)
    for i, v in enumerate(categories):
        p = mapping.get(str(v))
        if p is not None:
            out[i] = ids.setdefault(p, len(ids))
    return out


def _numbers(categories: list[Any], n_fine: int) -> np.ndarray:
    """The number each category stands for (NaN for tokens such as "N" and the missing cell)."""
    nums = pl.Series([str(v) for v in categories], dtype=pl.String).cast(pl.Float64, strict=False)
    out = np.full(n_fine, np.nan)
    out[: len(categories)] = nums.fill_null(float("nan")).to_numpy()
    return out


def _destinations(
    hidden: np.ndarray, usable: np.ndarray, weight: np.ndarray, numbers: np.ndarray, parent: np.ndarray
) -> np.ndarray:
    """Fine cell each cell's records go to (itself unless hidden); see the module docstring."""
    dest = np.arange(len(hidden))
    released = np.flatnonzero(usable & ~hidden)
    if not hidden.any() or not len(released):
        return dest
    h = np.flatnonzero(hidden)
    dest[h] = released[np.argmax(weight[released])]  # most frequent released value
    ok = ~np.isnan(numbers[released])
    if ok.any():  # nearest released number
        rel = released[ok]
        rel = rel[np.argsort(numbers[rel], kind="stable")]
        hn = h[~np.isnan(numbers[h])]
        pos = np.searchsorted(numbers[rel], numbers[hn])
        lo, hi = rel[np.clip(pos - 1, 0, len(rel) - 1)], rel[np.clip(pos, 0, len(rel) - 1)]
        d_lo, d_hi = np.abs(numbers[hn] - numbers[lo]), np.abs(numbers[hi] - numbers[hn])
        dest[hn] = np.where((d_lo < d_hi) | ((d_lo == d_hi) & (weight[lo] >= weight[hi])), lo, hi)
    rel = released[parent[released] >= 0]
    if len(rel):  # the heaviest released value of the same parent
        order = rel[np.lexsort((weight[rel], parent[rel]))]
        best = np.full(parent.max() + 1, -1)
        best[parent[order]] = order  # the last (heaviest) of each parent wins
        hp = h[parent[h] >= 0]
        found = best[parent[hp]] >= 0
        dest[hp[found]] = best[parent[hp[found]]]
    return dest


def set_codes(
    c: _Column,
    noisy: np.ndarray,
    sigma: float,
    threshold: float | None,
    *,
    bins: int,
    compress: float,
    parent: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Group fine cells into bins and codes, hide unreleased categories, and set the weights
    that pick a fine cell within a code. Returns the hidden cells and the empty ones (the
    noisy counts of both are dropped; only hidden ones make a code's 1-way count unknown).

    Weights are the noisy counts projected to be non-negative (noise on empty cells is mostly
    removed; what remains can place a few values in empty parts of the range, which is why
    bounds should be tight). Bins hold equal shares of the weight. With a ``threshold``
    (categories taken from the data), hidden categories' counts are dropped and their records
    join the code of their destination (they are never drawn: weight 0). A column without
    missing values has an empty missing cell: its count is known to be 0.
    """
    k = c.n_labels
    parent = np.full(c.n_fine, -1, dtype=np.int64) if parent is None else parent
    hidden = np.zeros(c.n_fine, dtype=bool)
    empty = np.zeros(c.n_fine, dtype=bool)
    if threshold is not None:
        hidden = (noisy < threshold) & ~c.public_cells
        empty[k - 1] = not c.had_missing
        noisy = np.where(hidden | empty, 0.0, noisy)
    weight = _project_rows(noisy[None, :], np.array([max(noisy.sum(), 1.0)]))[0]
    group = np.arange(c.n_fine)
    if len(c.edges) and c.n_fine - k > bins:
        grid = weight[k:]
        cum = np.cumsum(grid) - grid / 2
        b = np.minimum((cum / max(grid.sum(), 1e-12) * bins).astype(np.int64), bins - 1)
        group = np.concatenate([np.arange(k), k + np.unique(b, return_inverse=True)[1]])
    if threshold is not None:
        usable = ~empty
        usable[k - 1] = False  # the missing cell takes hidden records only as a last resort
        dest = _destinations(hidden, usable, weight, _numbers(c.spec.categories or [], c.n_fine), parent)
        if (dest[hidden] == np.flatnonzero(hidden)).any():  # nothing released: missing
            dest[hidden] = k - 1
            empty[k - 1] = False
        elif empty[k - 1]:  # the empty missing cell joins a released code, so it is never drawn
            dest[k - 1] = int(np.argmax(np.where(usable & ~hidden, weight, -1.0)))
        group = group[dest]
        weight = np.where(hidden | empty, 0.0, np.maximum(weight, 1e-9))
        c.released = int((~hidden[: k - 1]).sum())
        c.destination = dest
    n_groups = group.max() + 1
    total = np.bincount(group, weights=noisy, minlength=n_groups)
    cells = np.bincount(group, weights=(~hidden & ~empty).astype(float), minlength=n_groups)
    rare = total < compress * sigma * np.sqrt(np.maximum(cells, 1))
    first = np.full(n_groups, -1)
    first[group[::-1]] = np.arange(c.n_fine)[::-1]
    key = np.where(rare, n_groups + parent[first] + 1, np.arange(n_groups))  # rare: merged per parent
    c.to_code = np.unique(key, return_inverse=True)[1][group].astype(np.int64)
    c.weight = weight
    return hidden, empty


def load_hierarchy(path: str | os.PathLike[str]) -> tuple[str, str, dict[str, str]]:
    """A public hierarchy from a CSV file of two columns: child values, then their parents;
    the header names the two columns of the data (e.g. ``INDP,INDP_CAT``)."""
    try:
        table = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise SafemicroError(f"cannot read the hierarchy: {e}", file=str(path)) from None
    if table.width != 2:
        raise SafemicroError("a hierarchy file has two columns (child, parent), named as in the data", file=str(path))
    child, parent = table.columns
    table = table.drop_nulls().unique(maintain_order=True)
    dup = ~table[child].is_first_distinct()
    if dup.any():
        row = int(dup.arg_true()[0])
        raise SafemicroError("a child value has two parents", file=str(path), column=child, row=row)
    return child, parent, dict(zip(table[child].to_list(), table[parent].to_list()))


def follow_parents(
    frame: pl.DataFrame,
    hierarchies: Mapping[str, tuple[str, Mapping[str, str]]],
    columns: Mapping[str, _Column],
    rng: np.random.Generator,
) -> pl.DataFrame:
    """Make every public hierarchy hold in the synthetic records.

    The parent (coarser, so better measured) is kept: a child whose parent differs from the
    record's parent is redrawn among the released child values of that parent, in proportion
    to their noisy counts. Where the record's parent has no released child value, the parent
    is written from the child. Children the map does not know are left as they are.
    """
    for child, (parent, mapping) in hierarchies.items():
        c = columns.get(child)
        mapped = frame[child].cast(pl.String).replace_strict(mapping, default=None, return_dtype=pl.String)
        if c is not None and c.kind == "discrete" and c.spec.categories:
            cats = [str(v) for v in c.spec.categories]
            cand = pl.DataFrame(
                {"child": cats, "parent": [mapping.get(v) for v in cats], "weight": c.weight[: len(cats)]},
                schema_overrides={"parent": pl.String},
            )
            cand = cand.filter(pl.col("parent").is_not_null() & (pl.col("weight") > 0)).sort("parent")
            have = frame[parent].cast(pl.String)
            bad = (mapped != have) & have.is_in(cand["parent"].unique().implode())
            if bad.any():
                ids = cand["parent"].rank("dense").cast(pl.Int64).to_numpy() - 1
                lookup = dict(zip(cand["parent"].to_list(), ids.tolist()))
                rows = bad.arg_true()
                want = have.gather(rows).replace_strict(lookup, return_dtype=pl.Int64).to_numpy()
                pick = _draw(want, ids, cand["weight"].to_numpy(), rng)
                new = cand["child"].gather(pick).cast(frame.schema[child], strict=False)
                frame = frame.with_columns(frame[child].scatter(rows, new))
                mapped = mapped.scatter(rows, have.gather(rows))
        value = mapped.cast(frame.schema[parent], strict=False)
        frame = frame.with_columns(pl.when(mapped.is_not_null()).then(value).otherwise(pl.col(parent)).alias(parent))
    return frame
