"""The node's cell key mode (``policy.protection: cell_key``): counts, sums and means
perturbed by the cell key method of :mod:`safemicro.service.cell_key` instead of threshold +
secondary suppression.

Record keys are drawn once when the dataset is loaded, from ``policy.cell_key.seed`` (kept
in the provider's config, left out of the published policy hash) and never released: one
for counts, one per measure for magnitudes. Every cell, margins included, gets the
perturbation of its own records' keys, so a repeated query, an overlapping one, or two
queries whose difference isolates a few records give the same perturbed values for the
same cells: asking again gains nothing, and a difference carries two perturbations. Units
contribute, not records, as in the other modes: a household counts once in a cell (and in
a margin), its members' values summed into one contribution, and it carries one key. A sum
or mean is released where the cell's perturbed count reaches the threshold; a mean is the
perturbed sum over the perturbed count. The differencing ledger is not consulted for these
datasets (the perturbation is the protection), so fresh queries cost one group-by.
Quantiles are not offered.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.service import value_grid
from safemicro.service.cell_key import (
    count_perturbation,
    generate_ptable,
    magnitude_keys,
    magnitude_perturbation,
    ptable_lookup,
    record_keys,
)
from safemicro.service.config import DatasetConfig
from safemicro.service.queries import Query
from safemicro.service.refusal import Refusal
from safemicro.service.tokens import Principal
from safemicro.service.value_grid import Codes

RKEY = "_rkey"
MKEY = "_mkey_"  # + measure name: the record keys of its magnitudes


def load_ptable(ds: DatasetConfig) -> pl.DataFrame:
    """The declared ptable (CSV with pcv, ckey, pvalue) or one generated with D and V."""
    ck = ds.policy.cell_key
    if ck.ptable is not None:
        return _checked_ptable(ck.ptable)
    return generate_ptable(ck.max_perturbation, ck.variance, key_range=ck.key_range).select("pcv", "ckey", "pvalue")


def _checked_ptable(path) -> pl.DataFrame:
    """A provider's ptable CSV, or one clear error naming the file, column and row."""
    try:
        table = pl.read_csv(path)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise SafemicroError(f"cannot read the ptable: {e}", file=str(path)) from None
    missing = [c for c in ("pcv", "ckey", "pvalue") if c not in table.columns]
    if missing:
        raise SafemicroError(f"the ptable has no column(s) {', '.join(missing)}", file=str(path))
    for column, bad in (
        ("pcv", ~pl.col("pcv").is_between(1, 100_000)),
        ("ckey", ~pl.col("ckey").is_between(0, 1 << 20)),
        ("pvalue", pl.col("pcv") + pl.col("pvalue") < 0),
    ):
        if not table.schema[column].is_integer():
            raise SafemicroError("ptable values must be whole numbers", file=str(path), column=column)
        rows = table.with_row_index().filter(bad.fill_null(True))["index"]
        if rows.len():
            why = "would make a negative count" if column == "pvalue" else "is missing or out of range"
            raise SafemicroError(f"ptable value {why}", file=str(path), column=column, row=int(rows[0]) + 1)
    return table.select("pcv", "ckey", "pvalue")


def public_mode(ds: DatasetConfig) -> dict:
    """How a dataset's answers are protected, for the catalogue: ``mode`` (dp, cell_key or
    sdc) and, for the cell key method, its public parameters (never the seed)."""
    if not ds.answered_by_cell_key:
        return {"mode": "dp" if ds.dp.enabled else "sdc"}
    ck = ds.policy.cell_key
    counts = (
        {"ptable": "the provider's own"}
        if ck.ptable
        else {"max_perturbation": ck.max_perturbation, "variance": ck.variance}
    )
    rule = {"filters": ck.filters, "counts": counts, "magnitudes": ck.magnitudes.model_dump()}
    return {"mode": "cell_key", "cell_key": rule}


def with_record_keys(frame: pl.DataFrame, ds: DatasetConfig) -> pl.DataFrame:
    """The answering frame with its keys, from the provider's seed: one per unit (every
    record of a household carries its household's), drawn in the order units first appear
    (one per row when units are records)."""
    ck = ds.policy.cell_key
    units = frame.get_column("_unit")
    first = units.unique(maintain_order=True)
    at = units.replace_strict(first, pl.int_range(first.len(), eager=True), return_dtype=pl.Int64).to_numpy()
    return frame.with_columns(
        pl.Series(RKEY, record_keys(first.len(), ck.seed, ck.key_range)[at]),
        *[pl.Series(MKEY + m, magnitude_keys(first.len(), ck.seed, m)[at]) for m in ds.measures],
    )


class _CellKeyTables:
    """Mixed into the Node: answers of datasets protected by the cell key method."""

    codes: dict[str, Codes]

    def _keyed(self, name: str, frame: pl.DataFrame, ds: DatasetConfig) -> pl.DataFrame:
        """At start-up: the dataset's records with their keys, and its ptable read (a bad
        ptable stops the start, not the first query)."""
        if not hasattr(self, "_luts"):
            self._luts: dict[str, np.ndarray] = {}
        self._luts[name] = ptable_lookup(load_ptable(ds))
        return with_record_keys(frame, ds)

    def _answer_cell_key(
        self, principal: Principal, q: Query, ds: DatasetConfig, records: pl.DataFrame, where: dict, qid: str
    ) -> str:
        """The answer's bytes. Not stored: the same records and keys always give the same
        cells, so an identical query is simply computed again (about as cheap as a read)."""
        if q.kind not in ("count", "crosstab", "sum", "mean"):
            raise Refusal(422, f"{q.kind!r} is not offered for a dataset protected by the cell key method", "kind")
        if ds.policy.cell_key.filters == "single":
            for d, vals in where.items():
                picks_cells = d in q.by and not q.margins  # then every cell still has one value of d
                if 1 < len(vals) < len(self.values[q.dataset][d]) and not picks_cells:
                    raise Refusal(
                        422,
                        f"a filter or time window on {q.dataset!r} names one value of {d!r} or all of them: with "
                        "several, tables that differ by the same people are many, and averaging their differences "
                        "would undo the perturbation",
                        "filters",
                    )
        rows = self._cell_key_rows(q, ds, records, where)
        self._log_released(principal, qid, len(rows), perturbed=len(rows))
        return self._encoded(q, qid, rows, mode="cell_key")  # ints, floats rounded to cents, strings, None

    def _cell_key_rows(self, q: Query, ds: DatasetConfig, records: pl.DataFrame, where: dict) -> list[dict]:
        """Every cell of the grid and, with margins, every margin, each perturbed by its own
        keys; empty cells are 0 before the threshold, as in the ONS package. When units are
        records: the finest level from the records' codes (:mod:`.value_grid`), and every
        margin sums its cells' counts, key sums and totals and takes the largest of their
        largest contributions (numpy, no group-by); else one group-by of the units per level
        (``records`` are the dataset's, unfiltered)."""
        by, k, lut = list(q.by), len(ds.policy.cell_key.magnitudes.weights), self._luts[q.dataset]
        values = [where.get(d, self.values[q.dataset][d]) for d in by]
        levels = [[by[i] for i in kept] for kept in value_grid.levels(by, q.margins)]
        if self.unit_is_record[q.dataset]:
            grid = _finest_from_codes(self.codes[q.dataset], self.values[q.dataset], by, where, q.measure, k)
            return [row for dims in levels for row in _level(q, ds, grid, by, values, [by.index(d) for d in dims], lut)]
        # a unit of several records counts once in a cell and once in a margin, its records'
        # values summed: each level is a group-by of its own over the units
        records = value_grid.filtered(records, where)
        rows = []
        for dims in levels:
            units = _per_unit(records, dims, q.measure)
            sub = [values[by.index(d)] for d in dims]
            rows += _level(q, ds, _finest_cells(units, dims, sub, q.measure, k), dims, sub, list(range(len(dims))), lut)
        return rows


def _finest_from_codes(codes: Codes, values: dict, by: list[str], where: dict, measure: str | None, k: int) -> dict:
    """:func:`_finest_cells` of records that are units, from their codes: counts and key
    sums by bincount, and the ``k`` largest absolute contributions in the measure's order."""
    rows, positions, shape = value_grid.cells_of(codes, values, by, where)
    grid = {
        "n": value_grid.counts(positions, shape),
        "ck": value_grid.sums(codes, rows, positions, shape, RKEY),
    }
    if measure is not None:
        grid["mk"] = value_grid.sums(codes, rows, positions, shape, MKEY + measure)
        grid["total"] = value_grid.sums(codes, rows, positions, shape, measure)
        grid["top"] = value_grid.largest(codes, rows, positions, shape, measure, k)
    return grid


def _per_unit(records: pl.DataFrame, dims: list[str], measure: str | None) -> pl.DataFrame:
    """One row per unit and cell of ``dims``: its keys and, with a measure, its records' total."""
    aggs = [pl.col(RKEY).first()]
    if measure is not None:
        aggs += [pl.col(MKEY + measure).first(), pl.col(measure).sum()]
    return records.group_by([*dims, "_unit"]).agg(aggs)


def _finest_cells(records: pl.DataFrame, by: list[str], values: list[list[str]], measure: str | None, k: int) -> dict:
    """The rows' counts, key sums (and the measure's totals and ``k`` largest absolute
    contributions) on the full grid of ``values``, as arrays of the grid's shape (C order);
    a row is a unit's share of a cell (:func:`_per_unit`)."""
    keys = by or ["_all"]
    source = records if by else records.with_columns(pl.lit("").alias("_all"))
    aggs = [pl.len().alias("n"), pl.col(RKEY).cast(pl.Int64).sum().alias("ck")]
    if measure is not None:
        largest = pl.col(measure).abs().top_k(k).sort(descending=True)
        aggs += [
            pl.col(MKEY + measure).cast(pl.Int64).sum().alias("mk"),
            pl.col(measure).sum().alias("total"),
            *[largest.get(j, null_on_oob=True).fill_null(0.0).alias(f"top{j}") for j in range(k)],
        ]
    cells = source.group_by(keys).agg(aggs)
    shape = tuple(len(v) for v in values) or (1,)
    codes = [np.zeros(cells.height, dtype=np.int64)]
    if by:
        positions = [{v: i for i, v in enumerate(vals)} for vals in values]
        codes = [np.array([pos[v] for v in cells[d].to_list()], dtype=np.int64) for d, pos in zip(by, positions)]
    at = np.ravel_multi_index(codes, shape)
    grid = {}
    for name in ("n", "ck", "mk", "total", *[f"top{j}" for j in range(k)]):
        if name in cells.columns:
            col = cells[name].to_numpy()
            grid[name] = np.zeros(shape, dtype=col.dtype)
            grid[name].flat[at] = col
    if measure is not None:
        grid["top"] = np.stack([grid.pop(f"top{j}") for j in range(k)], axis=-1)
    return grid


def _level(
    q: Query, ds: DatasetConfig, grid: dict, dims: list[str], values: list, axes: list[int], lut: np.ndarray
) -> list[dict]:
    """The perturbed cells of one aggregation level: the grid over ``dims`` (declared
    ``values``) summed over all but ``axes``; each row holds the query's dimensions (None
    for those summed over), ``value`` (None below the threshold), ``status`` and ``rule``."""
    n = value_grid.summed(grid["n"], axes).astype(np.int64)
    count = n + count_perturbation(n, value_grid.summed(grid["ck"], axes), lut)
    if q.kind in ("count", "crosstab"):
        value = count.tolist()
    else:
        mp = ds.policy.cell_key.magnitudes
        # each level cell's contributions: every member cell's k largest, largest k kept
        top = np.moveaxis(grid["top"], axes, range(len(axes))).reshape(n.size, -1)
        top = -np.sort(-top, axis=1)[:, : len(mp.weights)]
        mk = value_grid.summed(grid["mk"], axes)
        total = value_grid.summed(grid["total"], axes)
        total = total + magnitude_perturbation(mk, top, mp.percent, mp.weights, mp.separation)
        value = np.round(total if q.kind == "sum" else total / np.maximum(count, 1), 2).tolist()
    rows = value_grid.cell_labels(q.by, [dims[i] for i in axes], [values[i] for i in axes])
    for row, v, shown in zip(rows, value, (count >= ds.policy.threshold).tolist()):
        if shown:
            row.update(value=v, status="released", rule="cell_key")
        else:
            row.update(value=None, status="suppressed", rule="threshold")
    return rows
