"""One pass over a Parquet file's row groups with every key packed into one integer.

When the keys are integer (or boolean) columns whose range the file's statistics give,
each record's key combination is one integer ``Σ code_j · radix_j`` (code = value - min
+ 1, 0 = missing), computed by Polars per row group. Key counts and summed weights then
accumulate in dense arrays over the packed code space, and, when a household id is asked
for, the packed code and the household id of every record are kept (4 + 8 bytes per
record) so that household risk needs no second scan. Memory: the code space (at most
:data:`SPACE_LIMIT` entries) plus 12 bytes per record, never the records' other columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet  # noqa: F401  (the engine reads Parquet metadata: imported with it)

from safemicro.engine.row_groups import read_row_groups
from safemicro.engine.table import KeyCounts
from safemicro.errors import SafemicroError
from safemicro.progress import progress

SPACE_LIMIT = 1 << 24


@dataclass
class Packing:
    keys: list[str]
    los: list[int]
    spans: list[int]
    dtypes: list[pl.DataType]
    space: int

    def expr(self) -> pl.Expr:
        acc = pl.lit(0, dtype=pl.Int64)
        for name, lo, span in zip(self.keys, self.los, self.spans):
            acc = acc * (span + 1) + (pl.col(name).cast(pl.Int64) - (lo - 1)).fill_null(0)
        return acc

    def decode(self, codes: np.ndarray) -> pl.DataFrame:
        cols = {}
        rest = codes.astype(np.int64)
        for j in range(len(self.keys) - 1, -1, -1):
            rest, raw = np.divmod(rest, self.spans[j] + 1)
            name = self.keys[j]
            values = pl.Series(name, raw + (self.los[j] - 1), dtype=pl.Int64)
            cols[name] = pl.select(pl.when(pl.Series(raw == 0)).then(None).otherwise(values)).to_series()
        return pl.DataFrame({k: cols[k].cast(t).alias(k) for k, t in zip(self.keys, self.dtypes)})


@dataclass
class Pass:
    """What a pass keeps for household risk: per record its packed code and household."""

    packing: Packing
    household: str | None
    codes: list[np.ndarray] = field(default_factory=list)
    households: list[np.ndarray] = field(default_factory=list)
    offset: tuple[int, int] | None = None  # (min, span) when households are kept as id - min


def packing_for(pf, path: str | Path, keys: list[str]) -> Packing | None:
    """The packing of ``keys`` from the Parquet statistics, or None (non-integer keys,
    missing statistics, a code space above :data:`SPACE_LIMIT`)."""
    schema = pl.scan_parquet(str(path)).collect_schema()
    meta = pf.metadata
    names = pf.schema_arrow.names
    los, spans, dtypes = [], [], []
    space = 1
    for name in keys:
        dtype = schema[name]
        if not (dtype.is_integer() or dtype == pl.Boolean):
            return None
        found = stats_range(meta, names.index(name))
        if found is None:
            return None
        lo, span = found
        space *= span + 1
        if space > SPACE_LIMIT:
            return None
        los.append(lo)
        spans.append(span)
        dtypes.append(dtype)
    return Packing(list(keys), los, spans, dtypes, space)


def stats_range(meta, j: int) -> tuple[int, int] | None:
    """(min, max - min + 1) of integer column ``j`` from the row groups' statistics
    (None when a row group has none; (0, 1) when every value is missing)."""
    lo = hi = None
    for g in range(meta.num_row_groups):
        col = meta.row_group(g).column(j)
        st = col.statistics
        if st is None or not st.has_min_max:
            if st is not None and st.null_count == col.num_values:
                continue  # all missing in this row group
            return None
        lo = int(st.min) if lo is None else min(lo, int(st.min))
        hi = int(st.max) if hi is None else max(hi, int(st.max))
    return (0, 1) if lo is None else (lo, hi - lo + 1)


def _household_offset(pf, path, household: str) -> tuple[int, int] | None:
    """(min, span) of an integer household id whose range fits an int32 and is at most
    4 ids per record, so that ``id - min`` indexes dense arrays; else None."""
    dtype = pl.scan_parquet(str(path)).collect_schema()[household]
    if not dtype.is_integer():
        return None
    found = stats_range(pf.metadata, pf.schema_arrow.names.index(household))
    if found is None or found[1] >= min(2**31, 4 * max(pf.metadata.num_rows, 1)):
        return None
    return found


def packed_pass(
    pf, path: str | Path, packing: Packing, weight: str | None, household: str | None
) -> tuple[KeyCounts, Pass]:
    """Key counts of the whole file in one pass over its row groups (progress bar): each
    row group is read by Polars (only the key, weight and household columns, the packed
    code computed as it is decoded) and folded into the dense accumulators."""
    count = np.zeros(packing.space, dtype=np.int64)
    wsum = np.zeros(packing.space, dtype=np.float64)
    state = Pass(packing, household)
    code_type = pl.Int32 if packing.space < 2**31 else pl.Int64
    exprs = [packing.expr().cast(code_type).alias("__c")]
    if weight:
        exprs.append(pl.col(weight).cast(pl.Float64).alias("__w"))
    if household:
        state.offset = _household_offset(pf, path, household)
        h = pl.col(household)
        exprs.append((h - state.offset[0]).cast(pl.Int32).alias("__h") if state.offset else h.alias("__h"))
    total = pf.metadata.num_row_groups
    with progress(total, f"reading {Path(str(path)).name}") as advance:
        for g, batch in enumerate(read_row_groups(path, pf.metadata, exprs)):
            code = batch.get_column("__c").to_numpy()
            count += np.bincount(code, minlength=packing.space)
            if weight:
                w = batch.get_column("__w")
                if w.null_count():
                    row = int(w.is_null().arg_max()) + 1
                    raise SafemicroError(
                        f"row group {g}, row {row} of the group: the weight is missing", file=str(path), column=weight
                    )
                wsum += np.bincount(code, weights=w.to_numpy(), minlength=packing.space)
            if household:
                state.codes.append(code)
                state.households.append(batch.get_column("__h").to_numpy())
            advance(f"row group {g + 1}/{total}")
    present = np.flatnonzero(count)
    w = wsum[present] if weight else count[present].astype(np.float64)
    return KeyCounts(packing.decode(present), count[present].astype(np.float64), w), state


def household_sums(state: Pass, key_values: pl.DataFrame, log_keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Household sizes and Σ log(1 - r) from the codes kept by the pass."""
    lk = np.zeros(state.packing.space, dtype=np.float64)
    lk[key_values.select(state.packing.expr()).to_series().to_numpy()] = log_keep
    hh = np.concatenate(state.households) if state.households else np.zeros(0, np.int64)
    per_record = np.concatenate([lk[c] for c in state.codes]) if state.codes else np.zeros(0)
    if state.offset is not None:
        ids = hh  # already id - min, int32
    elif hh.dtype.kind in "iu" and len(hh):
        _, ids = np.unique(hh, return_inverse=True)
    else:
        ids = pl.Series(hh).rank("dense").to_numpy().astype(np.int64) - 1
    sizes = np.bincount(ids)
    s = np.bincount(ids, weights=per_record)
    keep = sizes > 0
    return sizes[keep], s[keep]
