"""Write the released file from decisions taken per distinct key, row group by row group.

Every change the out-of-core release makes (a recode of a key, a suppressed key value) is
a function of the record's original key combination, so the decisions are one small
table: original key values -> released key values. The source Parquet is read one row
group at a time, joined to that table (missing matches missing, record order kept) and
written as one row group of the output; the whole frame is never in memory. The output
appears only when every row group is written (temp file + rename); on any error nothing
is left and the error names the file, the row group and, when known, the column.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from safemicro.atomic import atomic_path
from safemicro.engine.row_groups import read_row_groups
from safemicro.errors import SafemicroError


def open_parquet(path: str | Path):
    """A ``pyarrow.parquet.ParquetFile``, or a clear error for a missing/truncated file."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(str(path))
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise SafemicroError(f"cannot read the Parquet file: {exc}", file=str(path)) from None


def bad_row_group(path: str | Path) -> int | None:
    """The first row group of a Parquet file that cannot be read (None: all can, or the
    file has no readable footer). Called only after an error, to name the place."""
    try:
        pf = open_parquet(path)
    except SafemicroError:
        return None
    for g in range(pf.num_row_groups):
        try:
            pf.read_row_group(g)
        except (OSError, ValueError):
            return g
    return None


def write_released(
    source: str | Path,
    out: str | Path,
    keys: list[str],
    decisions: pl.DataFrame,
    *,
    on_row_group: Callable[[int, int], None] | None = None,
) -> int:
    """Rewrite ``source`` into ``out`` with each record's key columns replaced by the
    released values of its original key combination.

    ``decisions`` holds the original key values (columns ``keys``) and the released ones
    (columns ``__new_<key>``), one row per distinct original combination. Returns the
    number of records written. ``on_row_group(done, total)`` reports progress.
    """
    import pyarrow.parquet as pq

    pf = open_parquet(source)
    names = pf.schema_arrow.names
    for name in keys:
        if name not in names:
            raise SafemicroError("column not found in the Parquet file", file=str(source), column=name)
    release = _lookup(pf, source, keys, decisions)
    total = pf.num_row_groups
    written = 0
    with atomic_path(out, suffix=".parquet") as tmp:
        writer = None
        try:
            for g, batch in enumerate(read_row_groups(source, pf.metadata)):
                released = release(batch).select(names).to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(str(tmp), released.schema)
                try:
                    writer.write_table(released.cast(writer.schema))
                except (ValueError, TypeError) as exc:
                    col = _column_of(exc, names)
                    raise SafemicroError(
                        f"row group {g}: its values do not fit the column type of the first row groups ({exc})",
                        file=str(source),
                        column=col,
                    ) from None
                written += batch.height
                if on_row_group is not None:
                    on_row_group(g + 1, total)
        finally:
            if writer is not None:
                writer.close()
    return written


def _lookup(pf, source, keys: list[str], decisions: pl.DataFrame) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """How a batch of records gets its released key values: with integer keys packed into
    one code (:mod:`safemicro.engine.packed`), a gather from one dense array per key over
    the code space; otherwise a join on the key values (missing matches missing)."""
    from safemicro.engine.packed import packing_for

    packing = packing_for(pf, source, keys)
    if packing is None:
        new = {f"__new_{k}": k for k in keys}

        def join(batch: pl.DataFrame) -> pl.DataFrame:
            out = batch.join(decisions, on=keys, how="left", nulls_equal=True, maintain_order="left")
            return out.drop(keys).rename(new)

        return join
    at = decisions.select(packing.expr()).to_series()
    tables = {}
    for k in keys:
        released = decisions.get_column(f"__new_{k}")
        tables[k] = pl.Series(k, [None] * packing.space, dtype=released.dtype).scatter(at, released)

    def gather(batch: pl.DataFrame) -> pl.DataFrame:
        code = batch.select(packing.expr()).to_series()
        return batch.with_columns([tables[k].gather(code).alias(k) for k in keys])

    return gather


def _column_of(exc: Exception, names: list[str]) -> str | None:
    text = str(exc)
    return next((n for n in names if f"'{n}'" in text or f'"{n}"' in text), None)
